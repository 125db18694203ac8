#include "events/types.h"

#include <array>
#include <charconv>
#include <cmath>

#include "events/canonical_json.h"
#include "events/payload.h"
#include "infra/base/json.h"

namespace runlog::events {
namespace {

enum class Kind { kString, kInt, kBool, kJson, kUsage };

// One member of a type's payload: its name, how it is written, and where it
// lives in the struct. An optional member is left out while unset (empty, 0,
// false, no value); another is always written (an empty JSON value as null).
template <class T>
struct Field {
  std::string_view name;
  Kind kind;
  bool optional = false;
  std::string T::*text = nullptr;
  int64_t T::*number = nullptr;
  bool T::*flag = nullptr;
  std::optional<Usage> T::*usage = nullptr;
  int64_t fallback = 0;            // an int read when missing
  std::string_view text_fallback;  // a string read when missing
};

template <class T>
constexpr Field<T> Str(std::string_view name, std::string T::*m, bool optional = false,
                       std::string_view fallback = {}) {
  Field<T> f{name, Kind::kString, optional};
  f.text = m;
  f.text_fallback = fallback;
  return f;
}
template <class T>
constexpr Field<T> Json(std::string_view name, std::string T::*m, bool optional = false) {
  Field<T> f{name, Kind::kJson, optional};
  f.text = m;
  return f;
}
template <class T>
constexpr Field<T> Int(std::string_view name, int64_t T::*m, bool optional = false,
                       int64_t fallback = 0) {
  Field<T> f{name, Kind::kInt, optional};
  f.number = m;
  f.fallback = fallback;
  return f;
}
template <class T>
constexpr Field<T> Bool(std::string_view name, bool T::*m) {
  Field<T> f{name, Kind::kBool, false};
  f.flag = m;
  return f;
}
template <class T>
constexpr Field<T> UsageField(std::optional<Usage> T::*m) {
  Field<T> f{"usage", Kind::kUsage, true};
  f.usage = m;
  return f;
}

// Each type's name and field table.
template <class T>
struct Schema;

#define RUNLOG_SCHEMA(T, NAME, ...)                                         \
  template <>                                                               \
  struct Schema<T> {                                                        \
    static constexpr std::string_view kType = NAME;                         \
    static constexpr auto kFields = std::to_array<Field<T>>({__VA_ARGS__}); \
  }

constexpr bool kOptional = true;

RUNLOG_SCHEMA(TaskCreated, "task.created", Str("type", &TaskCreated::type),
              Str("agent_id", &TaskCreated::agent_id, kOptional),
              Json("input", &TaskCreated::input), Json("limits", &TaskCreated::limits),
              Json("plan", &TaskCreated::plan),
              Int("max_attempts", &TaskCreated::max_attempts, false, 1),
              Int("priority", &TaskCreated::priority),
              Str("idempotency_key", &TaskCreated::idempotency_key, kOptional),
              Str("request_hash", &TaskCreated::request_hash, kOptional),
              Str("replay_of_task_id", &TaskCreated::replay_of_task_id, kOptional),
              Json("replay_of", &TaskCreated::replay_of, kOptional),
              Json("recorded_outputs", &TaskCreated::recorded_outputs, kOptional),
              Str("concurrency_key", &TaskCreated::concurrency_key, kOptional),
              Int("max_concurrency", &TaskCreated::max_concurrency, kOptional));
RUNLOG_SCHEMA(TaskPlanned, "task.planned", Json("plan", &TaskPlanned::plan),
              Json("limits", &TaskPlanned::limits), Str("source", &TaskPlanned::source),
              Str("runner", &TaskPlanned::runner));
RUNLOG_SCHEMA(TaskPlanRejected, "task.plan_rejected",
              Json("failures", &TaskPlanRejected::failures));
RUNLOG_SCHEMA(TaskPlanExtended, "task.plan_extended", Json("steps", &TaskPlanExtended::steps));
RUNLOG_SCHEMA(TaskHandedOff, "task.handed_off", Int("step_index", &TaskHandedOff::step_index),
              Str("runner", &TaskHandedOff::runner));
RUNLOG_SCHEMA(TaskQueued, "task.queued", Int("ready_at_ms", &TaskQueued::ready_at_ms, kOptional));
RUNLOG_SCHEMA(TaskClaimed, "task.claimed", Str("lease_id", &TaskClaimed::lease_id),
              Str("worker_id", &TaskClaimed::worker_id), Str("key_id", &TaskClaimed::key_id),
              Int("attempt", &TaskClaimed::attempt),
              Int("lease_expires_at_ms", &TaskClaimed::lease_expires_at_ms),
              Int("lease_ms", &TaskClaimed::lease_ms));
RUNLOG_SCHEMA(TaskHeartbeat, "task.heartbeat", Str("lease_id", &TaskHeartbeat::lease_id),
              Int("lease_expires_at_ms", &TaskHeartbeat::lease_expires_at_ms));
RUNLOG_SCHEMA(StepStarted, "step.started", Int("step_index", &StepStarted::step_index),
              Str("tool", &StepStarted::tool), Str("tool_version", &StepStarted::tool_version),
              Json("input", &StepStarted::input), Int("attempt", &StepStarted::attempt),
              Int("lease_expires_at_ms", &StepStarted::lease_expires_at_ms),
              Str("runner", &StepStarted::runner, kOptional));
RUNLOG_SCHEMA(StepFinished, "step.finished", Int("step_index", &StepFinished::step_index),
              Str("status", &StepFinished::status), Json("output", &StepFinished::output),
              Json("error", &StepFinished::error), UsageField(&StepFinished::usage),
              Int("duration_ms", &StepFinished::duration_ms),
              Bool("sandboxed", &StepFinished::sandboxed),
              Str("step_hash", &StepFinished::step_hash));
RUNLOG_SCHEMA(TaskLeaseExpired, "task.lease_expired", Str("lease_id", &TaskLeaseExpired::lease_id),
              Int("attempt", &TaskLeaseExpired::attempt));
RUNLOG_SCHEMA(TaskRetryScheduled, "task.retry_scheduled",
              Str("reason", &TaskRetryScheduled::reason),
              Int("next_attempt", &TaskRetryScheduled::next_attempt),
              Int("retry_count", &TaskRetryScheduled::retry_count),
              Json("error", &TaskRetryScheduled::error));
RUNLOG_SCHEMA(TaskSucceeded, "task.succeeded", Json("result", &TaskSucceeded::result),
              Json("step_hashes", &TaskSucceeded::step_hashes),
              Str("task_hash", &TaskSucceeded::task_hash), UsageField(&TaskSucceeded::usage),
              Json("replay", &TaskSucceeded::replay, kOptional));
RUNLOG_SCHEMA(TaskFailed, "task.failed", Json("error", &TaskFailed::error),
              Json("failure", &TaskFailed::failure), Json("step_hashes", &TaskFailed::step_hashes),
              Str("task_hash", &TaskFailed::task_hash), UsageField(&TaskFailed::usage),
              Json("replay", &TaskFailed::replay, kOptional));
RUNLOG_SCHEMA(TaskCancelRequested, "task.cancel_requested",
              Str("reason", &TaskCancelRequested::reason),
              Str("requested_by", &TaskCancelRequested::requested_by));
RUNLOG_SCHEMA(TaskCancelled, "task.cancelled", Json("error", &TaskCancelled::error),
              Str("revoked_lease_id", &TaskCancelled::revoked_lease_id, kOptional));
RUNLOG_SCHEMA(TaskArtifactCreated, "task.artifact_created",
              Str("artifact_id", &TaskArtifactCreated::artifact_id),
              Str("type", &TaskArtifactCreated::type), Str("digest", &TaskArtifactCreated::digest),
              Str("content_type", &TaskArtifactCreated::content_type),
              Int("size", &TaskArtifactCreated::size),
              Str("created_by", &TaskArtifactCreated::created_by, kOptional),
              Int("approval_expires_at_ms", &TaskArtifactCreated::approval_expires_at_ms,
                  kOptional));
RUNLOG_SCHEMA(OutputCreated, "output.created", Str("digest", &OutputCreated::digest),
              Str("content_type", &OutputCreated::content_type), Int("size", &OutputCreated::size),
              Str("created_by", &OutputCreated::created_by, kOptional));
RUNLOG_SCHEMA(ArtifactApprovalDecided, "artifact.approval_decided",
              Str("artifact_id", &ArtifactApprovalDecided::artifact_id),
              Str("decision", &ArtifactApprovalDecided::decision),
              Str("comment", &ArtifactApprovalDecided::comment, kOptional),
              Str("decided_by", &ArtifactApprovalDecided::decided_by, kOptional));
RUNLOG_SCHEMA(ArtifactDeleted, "artifact.deleted",
              Str("artifact_id", &ArtifactDeleted::artifact_id),
              Str("deleted_by", &ArtifactDeleted::deleted_by, kOptional));
RUNLOG_SCHEMA(KeyRegistered, "key.registered", Str("key_hash", &KeyRegistered::key_hash),
              Json("scopes", &KeyRegistered::scopes),
              Str("plan", &KeyRegistered::plan, false, "free"));
RUNLOG_SCHEMA(AgentRegistered, "agent.registered", Str("agent_id", &AgentRegistered::agent_id),
              Json("manifest", &AgentRegistered::manifest));

RUNLOG_SCHEMA(AccountPlanSet, "account.plan_set", Str("plan", &AccountPlanSet::plan),
              Str("set_by", &AccountPlanSet::set_by));
RUNLOG_SCHEMA(WebhookRegistered, "webhook.registered",
              Str("webhook_id", &WebhookRegistered::webhook_id),
              Str("url", &WebhookRegistered::url), Json("events", &WebhookRegistered::events),
              Str("secret_sealed", &WebhookRegistered::secret_sealed),
              Str("created_by", &WebhookRegistered::created_by, kOptional));
RUNLOG_SCHEMA(WebhookRemoved, "webhook.removed", Str("webhook_id", &WebhookRemoved::webhook_id),
              Str("reason", &WebhookRemoved::reason),
              Str("removed_by", &WebhookRemoved::removed_by, kOptional));
RUNLOG_SCHEMA(
    WebhookAttempted, "webhook.attempted", Str("delivery_id", &WebhookAttempted::delivery_id),
    Str("webhook_id", &WebhookAttempted::webhook_id), Str("event", &WebhookAttempted::event),
    Int("source_partition", &WebhookAttempted::source_partition),
    Int("source_offset", &WebhookAttempted::source_offset),
    Int("attempt", &WebhookAttempted::attempt), Int("status_code", &WebhookAttempted::status_code),
    Int("latency_ms", &WebhookAttempted::latency_ms),
    Str("error", &WebhookAttempted::error, kOptional), Str("outcome", &WebhookAttempted::outcome),
    Int("next_attempt_at_ms", &WebhookAttempted::next_attempt_at_ms, kOptional));
RUNLOG_SCHEMA(WebhookRedeliverRequested, "webhook.redeliver_requested",
              Str("delivery_id", &WebhookRedeliverRequested::delivery_id),
              Str("webhook_id", &WebhookRedeliverRequested::webhook_id),
              Str("event", &WebhookRedeliverRequested::event),
              Int("source_partition", &WebhookRedeliverRequested::source_partition),
              Int("source_offset", &WebhookRedeliverRequested::source_offset),
              Str("requested_by", &WebhookRedeliverRequested::requested_by, kOptional));
RUNLOG_SCHEMA(TriggerCreated, "trigger.created", Str("trigger_id", &TriggerCreated::trigger_id),
              Str("kind", &TriggerCreated::kind), Json("spec", &TriggerCreated::spec),
              Str("secret_sealed", &TriggerCreated::secret_sealed, kOptional),
              Str("created_by", &TriggerCreated::created_by, kOptional));
RUNLOG_SCHEMA(TriggerStateSet, "trigger.state_set", Str("trigger_id", &TriggerStateSet::trigger_id),
              Str("state", &TriggerStateSet::state),
              Str("set_by", &TriggerStateSet::set_by, kOptional));
RUNLOG_SCHEMA(TriggerFired, "trigger.fired", Str("trigger_id", &TriggerFired::trigger_id),
              Str("fire_id", &TriggerFired::fire_id), Str("occasion", &TriggerFired::occasion),
              Str("task_id", &TriggerFired::task_id));
RUNLOG_SCHEMA(CheckpointSigned, "checkpoint.signed", Str("note", &CheckpointSigned::note),
              Str("key", &CheckpointSigned::key));

#undef RUNLOG_SCHEMA

template <class T>
std::string EncodeAs(const T& v) {
  Payload p;
  for (const Field<T>& f : Schema<T>::kFields) {
    switch (f.kind) {
      case Kind::kString:
        if (!f.optional || !(v.*f.text).empty()) p.Str(f.name, v.*f.text);
        break;
      case Kind::kJson:
        if (!f.optional || !(v.*f.text).empty()) p.Raw(f.name, v.*f.text);
        break;
      case Kind::kInt:
        if (!f.optional || v.*f.number != 0) p.Int(f.name, v.*f.number);
        break;
      case Kind::kBool:
        p.Bool(f.name, v.*f.flag);
        break;
      case Kind::kUsage:
        if ((v.*f.usage).has_value()) p.Raw(f.name, UsageJson(*(v.*f.usage)));
        break;
    }
  }
  return p.Build();
}

// Canonical JSON text of a member, or "" when absent or null.
std::string RawMember(const json::Value& payload, std::string_view key) {
  const json::Value* v = json::FindSet(payload, key);
  std::string out;
  if (v != nullptr && !WriteCanonical(*v, &out)) out.clear();
  return out;
}

template <class T>
T DecodeAs(const json::Value& p) {
  T v;
  for (const Field<T>& f : Schema<T>::kFields) {
    switch (f.kind) {
      case Kind::kString:
        v.*f.text = json::String(p, f.name, std::string(f.text_fallback));
        break;
      case Kind::kJson:
        v.*f.text = RawMember(p, f.name);
        break;
      case Kind::kInt:
        v.*f.number = json::Int(p, f.name, f.fallback);
        break;
      case Kind::kBool:
        v.*f.flag = json::Bool(p, f.name);
        break;
      case Kind::kUsage:
        if (const json::Value* usage = json::FindSet(p, f.name)) v.*f.usage = UsageOf(*usage);
        break;
    }
  }
  if constexpr (requires { v.error_code; }) {
    if (const json::Value* error = json::FindSet(p, "error")) {
      v.error_code = json::String(*error, "code");
    }
  }
  return v;
}

template <class T>
EventSpec SpecOf() {
  EventSpec spec{Schema<T>::kType, kSchemaVersion, {}};
  constexpr std::string_view kKinds[] = {"string", "int", "bool", "json", "usage"};
  for (const Field<T>& f : Schema<T>::kFields) {
    spec.fields.push_back({f.name, kKinds[static_cast<int>(f.kind)], f.optional});
  }
  return spec;
}

// Calls `fn` with a default value of each type of EventBody, in order.
template <class Fn, size_t... I>
void ForEachType(Fn&& fn, std::index_sequence<I...>) {
  (fn(std::variant_alternative_t<I, EventBody>{}), ...);
}
template <class Fn>
void ForEachType(Fn&& fn) {
  ForEachType(fn, std::make_index_sequence<std::variant_size_v<EventBody>>{});
}

}  // namespace

Usage UsageOf(const json::Value& v) {
  Usage u;
  u.tokens = json::Int(v, "tokens");
  u.input_tokens = json::Int(v, "input_tokens");
  u.output_tokens = json::Int(v, "output_tokens");
  u.model = json::String(v, "model");
  u.sandbox_cpu_ms = json::Int(v, "sandbox_cpu_ms");
  if (const json::Value* cost = json::FindSet(v, "cost_usd"); cost != nullptr && cost->IsNumber()) {
    u.cost_nanos = NanosOfUsd(cost->GetDouble());
  }
  return u;
}

std::string UsageJson(const Usage& u) {
  Payload p;
  p.Int("tokens", u.tokens);
  if (u.input_tokens != 0) p.Int("input_tokens", u.input_tokens);
  if (u.output_tokens != 0) p.Int("output_tokens", u.output_tokens);
  if (!u.model.empty()) p.Str("model", u.model);
  if (u.sandbox_cpu_ms != 0) p.Int("sandbox_cpu_ms", u.sandbox_cpu_ms);
  if (u.cost_nanos != 0) p.Raw("cost_usd", UsdJson(u.cost_nanos));
  return p.Build();
}

Usage UsageFromJson(std::string_view canonical) {
  json::ScratchDocument scratch;
  if (!json::Parse(canonical, &scratch.doc()) || !scratch.doc().IsObject()) return {};
  return UsageOf(scratch.doc());
}

std::string UsdJson(int64_t nanos) {
  // What the canonical writer prints for the same double; NanosOfUsd reads it back exactly.
  return FormatDouble(static_cast<double>(nanos) / 1e9);
}

int64_t NanosOfUsd(double usd) {
  const double nanos = usd * 1e9;
  if (!(nanos > -9e18 && nanos < 9e18)) return nanos > 0 ? INT64_MAX : 0;
  return std::llround(nanos);
}

std::string_view TypeOf(const EventBody& body) {
  return std::visit([](const auto& v) { return Schema<std::decay_t<decltype(v)>>::kType; }, body);
}

std::string Encode(const EventBody& body) {
  return std::visit([](const auto& v) { return EncodeAs(v); }, body);
}

Result<EventBody> Decode(const Event& e) {
  if (e.schema_version != kSchemaVersion) {
    return Fail(codes::kInvalidArgument,
                "unknown schema_version " + std::to_string(e.schema_version) + " of " + e.type);
  }
  json::ScratchDocument scratch;
  json::Document& p = scratch.doc();
  if (!json::Parse(e.payload, &p) || !p.IsObject()) {
    return Fail(codes::kInvalidArgument, "payload of " + e.event_id + " is not a JSON object");
  }
  std::optional<EventBody> body;
  ForEachType([&](auto none) {
    using T = decltype(none);
    if (!body && e.type == Schema<T>::kType) body = DecodeAs<T>(p);
  });
  if (!body) return Fail(codes::kInvalidArgument, "unknown event type " + e.type);
  return std::move(*body);
}

std::vector<EventSpec> Catalogue() {
  std::vector<EventSpec> out;
  ForEachType([&](auto none) { out.push_back(SpecOf<decltype(none)>()); });
  return out;
}

}  // namespace runlog::events
