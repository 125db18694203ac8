#pragma once
// The task aggregate: its state, and the one deterministic function that moves
// it by an event. Partition writers apply the events they decide, recovery
// applies the log, projections apply it to views; all through ApplyEvent, so
// live state, recovered state and views cannot disagree.
//
// JSON-valued fields (input, limits, plan, result, error, failure) hold
// canonical JSON text, or are empty for "none".

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "events/event.h"
#include "events/types.h"
#include "infra/base/result.h"

namespace runlog::events {

enum class TaskStatus { kCreated, kPlanned, kQueued, kRunning, kSucceeded, kFailed, kCancelled };

std::string_view StatusName(TaskStatus status);
bool ParseStatus(std::string_view name, TaskStatus* status);
inline bool IsTerminal(TaskStatus s) {
  return s == TaskStatus::kSucceeded || s == TaskStatus::kFailed || s == TaskStatus::kCancelled;
}

struct Lease {
  std::string lease_id;  // empty: no lease
  std::string worker_id;
  std::string key_id;
  int64_t expires_at_ms = 0;
  int64_t duration_ms = 0;  // what a heartbeat extends it by
};

// One step of a plan as it ran: set by step.started, finished by step.finished.
struct StepRecord {
  int64_t index = 0;  // 1-based
  std::string tool;
  std::string tool_version;
  std::string input;   // canonical JSON, after references were resolved
  std::string status;  // "running", "succeeded" or "failed"
  std::string output;  // canonical JSON, or empty
  std::string error;   // canonical {"code","message"}, or empty
  std::string error_code;
  std::string step_hash;
  int64_t attempt = 0;
  Usage usage;
  bool sandboxed = false;
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0;
  int64_t duration_ms = 0;
};

struct Task {
  std::string id;
  std::string tenant_id;
  std::string type;
  std::string agent_id;
  std::string input;   // canonical JSON
  std::string limits;  // canonical JSON object
  std::string plan;    // canonical JSON object, empty until planned
  int64_t max_attempts = 1;
  int64_t priority = 0;
  std::string concurrency_key;  // with max_concurrency: how many such tasks run at once
  int64_t max_concurrency = 0;
  std::string idempotency_key;
  std::string request_hash;
  std::string replay_of_task_id;
  std::string replay_of;         // canonical {"task_id","task_hash","step_hashes"}, or empty
  std::string recorded_outputs;  // canonical {"<step_index>": output} reused by a replay, or empty
  bool executor = false;         // the plan runs on runlog's executors, not external workers
  std::string plan_failures;     // canonical array of plan validation failures, or empty
  int64_t step_count = 0;        // steps in the plan
  std::string agent_step_input;  // for a plan of one agent step: its input and tool version
  std::string agent_step_version;
  // Who runs each step of an executor-run plan: 'w' an external worker (an
  // `agent` or `plan` step without a recorded output), 'e' the executors.
  std::string step_runners;
  bool handed_off = false;  // queued by task.handed_off: the next claim is not a new attempt

  TaskStatus status = TaskStatus::kCreated;
  uint64_t sequence = 0;  // of the last applied event
  int64_t attempt = 0;    // attempts started (claims)
  int64_t retry_count = 0;
  bool cancel_requested = false;
  Lease lease;
  Lease last_lease;        // the lease it ended under (a repeated complete is matched against it)
  std::string result;      // canonical JSON, on success
  std::string error;       // {"code","message"}, on failure or cancellation
  std::string error_code;  // error's code, for quick checks
  std::string failure;     // {"step","index","code","message"} for a failed step
  std::vector<StepRecord> steps;  // by step index - 1
  int64_t tokens_used = 0;
  int64_t cost_nanos = 0;   // what its steps and its worker cost (Usage::cost_nanos)
  std::string step_hashes;  // canonical array, on success or failure
  std::string task_hash;
  // For a replay: canonical {"first_divergent_step","matches","of_task_id","original_task_hash"}.
  std::string replay;
  std::vector<std::string> artifacts;  // ids, as task.artifact_created added them

  int64_t created_at_ms = 0;
  int64_t queued_at_ms = 0;  // last time it became ready
  int64_t first_queued_at_ms = 0;
  int64_t execution_started_at_ms = 0;  // first claim
  int64_t claimed_at_ms = 0;            // last claim
  int64_t execution_finished_at_ms = 0;
};

// A limit of the task (`limits` is a flat canonical object of integers), or 0
// if unset. Read without a parse: it runs on every create and claim.
int64_t LimitOf(const Task& task, std::string_view name);
// limits.max_cost_usd (a decimal) in nanodollars, or 0 if unset.
int64_t CostLimitOf(const Task& task);

// The index of the step a plan runs next: one past its leading succeeded steps.
int64_t NextStep(const Task& task);

// Tools whose steps external workers run through the claim protocol.
inline bool IsWorkerTool(std::string_view tool) { return tool == "agent" || tool == "plan"; }
// A step whose output is a plan, checked and appended after it: a planner
// agent's (`plan`) or the built-in planner's (`llm_plan`).
inline bool IsPlannerTool(std::string_view tool) { return tool == "plan" || tool == "llm_plan"; }
// A step whose output a replay reuses instead of running it again: what a
// worker or a model answered, or the decision a person made on an approval.
inline bool IsRecordedTool(std::string_view tool) {
  return IsWorkerTool(tool) || tool == "llm" || tool == "llm_plan" || tool == "approval";
}

// True when the task's next step is an external worker's: the whole task of a
// worker-run plan, or a worker step of an executor-run plan.
bool WorkerRunsNext(const Task& task);

// True for the events of a task (task.* and step.*), which ApplyEvent moves a
// task by; other records (keys, manifests) belong to other aggregates.
inline bool IsTaskEvent(const Event& e) {
  return e.type.starts_with("task.") || e.type.starts_with("step.");
}
// A record of another aggregate that a writer keeps in its checkpoint for
// the stores recovering from it (keys, agents, account plans); outputs and
// deletions of artifacts only feed the views.
inline bool IsStateRecord(const Event& e) {
  return e.type == "key.registered" || e.type == "agent.registered" ||
         e.type == "account.plan_set" || e.type == "webhook.registered" ||
         e.type == "webhook.removed" || e.type == "trigger.created" ||
         e.type == "trigger.state_set";
}

// Applies one event of this task. Refuses (FAILED_PRECONDITION) an event whose
// sequence is not the next one or whose type is not legal in the task's state
// (docs/events.md), and an unknown type or schema version (INVALID_ARGUMENT).
// The first form decodes the payload; the second applies a body already
// decoded or just built, and reads only the envelope of `event`.
[[nodiscard]] Status ApplyEvent(Task& task, const Event& event);
[[nodiscard]] Status ApplyEvent(Task& task, const Event& event, const EventBody& body);

// An estimate of the heap and inline memory `task` holds, in bytes.
int64_t TaskMemoryBytes(const Task& task);

// The task as stored in views: a JSON object of the fields above, those at
// their defaults left out (TaskFromJson reads them back as the defaults).
std::string TaskToJson(const Task& task);
[[nodiscard]] Result<Task> TaskFromJson(std::string_view json);

}  // namespace runlog::events
