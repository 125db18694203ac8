#pragma once
// The typed events: one struct per event type, one Encode to the payload's
// canonical JSON (the bytes on the log, docs/hashing.md) and one Decode back.
// Both walk the same field table per type (types.cc), which is also the
// catalogue that docs/events.md is checked against (tests/events/types_test.cc).
//
// JSON-valued fields hold canonical JSON text, empty for "none" (null on the
// wire when the field is always written). `error_code` members are not on the
// wire: they are the code inside `error`, set by Decode and by whoever builds
// the event, so that applying it needs no parse.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "events/event.h"
#include "infra/base/json.h"
#include "infra/base/result.h"

namespace runlog::events {

// What a step, or a worker's task, used: `usage` on the log. Tokens are
// input + output when the split is known; cost is in billionths of a
// dollar (nanodollars), as reported or as priced (services/prices.h), and
// `cost_usd` on the wire. Only `tokens` is always written.
struct Usage {
  int64_t tokens = 0, input_tokens = 0, output_tokens = 0;
  std::string model;
  int64_t sandbox_cpu_ms = 0;
  int64_t cost_nanos = 0;
  bool operator==(const Usage&) const = default;
};
// `usage` as canonical JSON, and back (a missing member reads as 0 or ""),
// from the text or from a parsed value.
std::string UsageJson(const Usage& usage);
Usage UsageFromJson(std::string_view canonical);
Usage UsageOf(const json::Value& usage);
// Nanodollars as a decimal USD JSON number (canonical), and a USD number back.
std::string UsdJson(int64_t nanos);
int64_t NanosOfUsd(double usd);

struct TaskCreated {
  std::string type, agent_id, input, limits, plan;
  int64_t max_attempts = 1, priority = 0;
  std::string idempotency_key, request_hash;
  std::string replay_of_task_id, replay_of, recorded_outputs;  // a replay's
  std::string concurrency_key;  // tasks with the same key run at most max_concurrency at once
  int64_t max_concurrency = 0;
  bool operator==(const TaskCreated&) const = default;
};
struct TaskPlanned {
  std::string plan, limits, source, runner;
  bool operator==(const TaskPlanned&) const = default;
};
struct TaskPlanRejected {
  std::string failures;
  bool operator==(const TaskPlanRejected&) const = default;
};
struct TaskPlanExtended {
  std::string steps;  // a JSON array of the planner's checked steps
  bool operator==(const TaskPlanExtended&) const = default;
};
struct TaskHandedOff {
  int64_t step_index = 0;
  std::string runner;
  bool operator==(const TaskHandedOff&) const = default;
};
struct TaskQueued {
  int64_t ready_at_ms = 0;
  bool operator==(const TaskQueued&) const = default;
};
struct TaskClaimed {
  std::string lease_id, worker_id, key_id;
  int64_t attempt = 0, lease_expires_at_ms = 0, lease_ms = 0;
  bool operator==(const TaskClaimed&) const = default;
};
struct TaskHeartbeat {
  std::string lease_id;
  int64_t lease_expires_at_ms = 0;
  bool operator==(const TaskHeartbeat&) const = default;
};
struct StepStarted {
  int64_t step_index = 0;
  std::string tool, tool_version, input;
  int64_t attempt = 0, lease_expires_at_ms = 0;
  std::string runner;
  bool operator==(const StepStarted&) const = default;
};
struct StepFinished {
  int64_t step_index = 0;
  std::string status, output, error, error_code;
  std::optional<Usage> usage;
  int64_t duration_ms = 0;
  bool sandboxed = false;
  std::string step_hash;
  bool operator==(const StepFinished&) const = default;
};
struct TaskLeaseExpired {
  std::string lease_id;
  int64_t attempt = 0;
  bool operator==(const TaskLeaseExpired&) const = default;
};
struct TaskRetryScheduled {
  std::string reason;
  int64_t next_attempt = 0, retry_count = 0;
  std::string error, error_code;
  bool operator==(const TaskRetryScheduled&) const = default;
};
struct TaskSucceeded {
  std::string result, step_hashes, task_hash, replay;
  std::optional<Usage> usage;  // of a worker-run task
  bool operator==(const TaskSucceeded&) const = default;
};
struct TaskFailed {
  std::string error, error_code, failure, step_hashes, task_hash, replay;
  std::optional<Usage> usage;
  bool operator==(const TaskFailed&) const = default;
};
struct TaskCancelRequested {
  std::string reason, requested_by;
  bool operator==(const TaskCancelRequested&) const = default;
};
struct TaskCancelled {
  std::string error, error_code, revoked_lease_id;
  bool operator==(const TaskCancelled&) const = default;
};
// An artifact of a task, made by the worker holding its lease: its bytes are
// in the content store under `digest` (services/content_store.h).
struct TaskArtifactCreated {
  std::string artifact_id, type, digest, content_type;
  int64_t size = 0;
  std::string created_by;              // the key id
  int64_t approval_expires_at_ms = 0;  // its type requires approval: pending until then
  bool operator==(const TaskArtifactCreated&) const = default;
};
// An artifact without a task (Orchestrion's outputs); its aggregate is its id.
struct OutputCreated {
  std::string digest, content_type;
  int64_t size = 0;
  std::string created_by;
  bool operator==(const OutputCreated&) const = default;
};
// A decision on an artifact pending approval. Its aggregate is the
// artifact's task (an output's id for an output), so that it follows the
// artifact's creation in the same partition: the views apply them in order.
struct ArtifactApprovalDecided {
  std::string artifact_id;
  std::string decision;  // approved or rejected
  std::string comment, decided_by;
  bool operator==(const ArtifactApprovalDecided&) const = default;
};
// An artifact (or output) deleted; its aggregate as for a decision.
struct ArtifactDeleted {
  std::string artifact_id;
  std::string deleted_by;
  bool operator==(const ArtifactDeleted&) const = default;
};
struct KeyRegistered {
  std::string key_hash, scopes, plan;
  bool operator==(const KeyRegistered&) const = default;
};
struct AgentRegistered {
  std::string agent_id, manifest;
  bool operator==(const AgentRegistered&) const = default;
};
struct AccountPlanSet {
  std::string plan, set_by;
  bool operator==(const AccountPlanSet&) const = default;
};
// A webhook endpoint of a tenant; its aggregate is "webhook:<tenant>/<id>",
// and its later records (removal, attempts, redeliveries) share it.
struct WebhookRegistered {
  std::string webhook_id, url;
  std::string events;         // JSON array of the event names it receives
  std::string secret_sealed;  // its signing secret, sealed (services/secret_box.h)
  std::string created_by;
  bool operator==(const WebhookRegistered&) const = default;
};
// No more deliveries: deleted by a key, or gone (its receiver answered 410).
struct WebhookRemoved {
  std::string webhook_id, reason, removed_by;
  bool operator==(const WebhookRemoved&) const = default;
};
// One attempt to deliver one event to one webhook. The delivery's id is
// derived from the webhook and the source record, so it is stable across
// retries and restarts (it is the `webhook-id` header).
struct WebhookAttempted {
  std::string delivery_id, webhook_id, event;  // event: the webhook event's name
  int64_t source_partition = 0, source_offset = 0;
  int64_t attempt = 0, status_code = 0, latency_ms = 0;
  std::string error;
  std::string outcome;  // delivered, retrying, failed (gave up) or gone (410)
  int64_t next_attempt_at_ms = 0;
  bool operator==(const WebhookAttempted&) const = default;
};
// Asks the dispatcher to send a delivery once more.
struct WebhookRedeliverRequested {
  std::string delivery_id, webhook_id, event;
  int64_t source_partition = 0, source_offset = 0;
  std::string requested_by;
  bool operator==(const WebhookRedeliverRequested&) const = default;
};
// A trigger of a tenant (schedule, event or channel); aggregate "trigger:<tenant>/<id>".
struct TriggerCreated {
  std::string trigger_id, kind;
  std::string spec;           // canonical JSON, its secret left out
  std::string secret_sealed;  // a channel's secret, sealed
  std::string created_by;
  bool operator==(const TriggerCreated&) const = default;
};
// active, paused or deleted.
struct TriggerStateSet {
  std::string trigger_id, state, set_by;
  bool operator==(const TriggerStateSet&) const = default;
};
// A fire: its id is derived from the trigger and the occasion (a scheduled
// time, a source event's id, a message's digest); the task it started was
// created with that id as its idempotency key, so a fire repeated after a
// crash starts no second task.
struct TriggerFired {
  std::string trigger_id, fire_id, occasion, task_id;
  bool operator==(const TriggerFired&) const = default;
};

// A signed checkpoint of the whole log (docs/receipts.md): the C2SP
// tlog-checkpoint note, signed, and the verifier key that signed it.
// Aggregate kCheckpointAggregate.
struct CheckpointSigned {
  std::string note, key;
  bool operator==(const CheckpointSigned&) const = default;
};
inline constexpr char kCheckpointAggregate[] = "checkpoints";

// Every event type; the first seventeen are a task's (ApplyEvent's).
using EventBody = std::variant<
    TaskCreated, TaskPlanned, TaskPlanRejected, TaskPlanExtended, TaskHandedOff, TaskQueued,
    TaskClaimed, TaskHeartbeat, StepStarted, StepFinished, TaskLeaseExpired, TaskRetryScheduled,
    TaskSucceeded, TaskFailed, TaskCancelRequested, TaskCancelled, TaskArtifactCreated,
    KeyRegistered, AgentRegistered, AccountPlanSet, OutputCreated, ArtifactApprovalDecided,
    ArtifactDeleted, WebhookRegistered, WebhookRemoved, WebhookAttempted, WebhookRedeliverRequested,
    TriggerCreated, TriggerStateSet, TriggerFired, CheckpointSigned>;

// "task.created", … (docs/events.md).
std::string_view TypeOf(const EventBody& body);
// The schema version Encode writes and Decode reads.
constexpr uint32_t kSchemaVersion = 1;

// The payload: canonical JSON, members sorted.
std::string Encode(const EventBody& body);
// The body of `event` from its type and payload. An unknown type or schema
// version, or a payload that is not a JSON object, is INVALID_ARGUMENT.
// Missing members read as their defaults.
[[nodiscard]] Result<EventBody> Decode(const Event& event);

// The catalogue: each type's fields as the field table has them.
struct FieldSpec {
  std::string_view name;
  std::string_view kind;  // "string", "int", "bool", "json", "usage"
  bool optional;          // left out when unset
};
struct EventSpec {
  std::string_view type;
  uint32_t version;
  std::vector<FieldSpec> fields;
};
std::vector<EventSpec> Catalogue();

}  // namespace runlog::events
