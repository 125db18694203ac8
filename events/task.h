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

#include "events/event.h"
#include "infra/result.h"

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
  std::string idempotency_key;
  std::string request_hash;
  std::string replay_of_task_id;

  TaskStatus status = TaskStatus::kCreated;
  uint64_t sequence = 0;  // of the last applied event
  int64_t attempt = 0;    // attempts started (claims)
  int64_t retry_count = 0;
  bool cancel_requested = false;
  Lease lease;
  std::string result;      // canonical JSON, on success
  std::string error;       // {"code","message"}, on failure or cancellation
  std::string error_code;  // error's code, for quick checks
  std::string failure;     // {"step","index","code","message"} for a failed step

  int64_t created_at_ms = 0;
  int64_t queued_at_ms = 0;  // last time it became ready
  int64_t first_queued_at_ms = 0;
  int64_t execution_started_at_ms = 0;  // first claim
  int64_t execution_finished_at_ms = 0;
};

// Applies one event of this task. Refuses (FAILED_PRECONDITION) an event whose
// sequence is not the next one or whose type is not legal in the task's state
// (docs/events.md), and an unknown type or schema version (INVALID_ARGUMENT).
[[nodiscard]] Status ApplyEvent(Task& task, const Event& event);

// The task as stored in views: a JSON object with every field above.
std::string TaskToJson(const Task& task);
[[nodiscard]] Result<Task> TaskFromJson(std::string_view json);

}  // namespace runlog::events
