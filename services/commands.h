#pragma once
// Commands a partition writer accepts, and what it answers. Every command
// carries the caller's tenant: a task of another tenant is TASK_NOT_FOUND.
// JSON-valued fields hold canonical JSON text.

#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "events/task.h"
#include "infra/base/result.h"

namespace runlog::services {

using events::IsTerminal;
using events::Lease;
using events::StatusName;
using events::Task;
using events::TaskStatus;

struct Caller {
  std::string tenant_id;
  std::string key_id;
  // The account's plan, whose quotas a create or a claim counts against
  // (services/account_plans.h); empty: none (runlog's own callers).
  std::string plan;
};

struct CreateTask {
  Caller caller;
  std::string task_id;  // chosen by the service (derived from an Idempotency-Key, if any)
  std::string type;
  std::string agent_id;
  std::string input;   // canonical JSON
  std::string limits;  // canonical JSON object
  std::string plan;  // canonical JSON object (services/plans.h), or empty for a one-step agent plan
  std::string plan_failures;       // canonical array: the plan is rejected and the task fails
  bool executor = false;           // the plan runs on runlog's executors
  std::string source = "request";  // where the plan came from: request, template, planner
  int64_t max_attempts = 1;
  int64_t priority = 0;
  std::string concurrency_key;  // and how many tasks with it may run at once
  int64_t max_concurrency = 0;
  std::string idempotency_key;
  std::string request_hash;
  // A replay: the task replayed, its hashes, and the agent outputs to reuse.
  std::string replay_of_task_id;
  std::string replay_of;         // canonical {"step_hashes","task_hash","task_id"}
  std::string recorded_outputs;  // canonical {"<step_index>": output}
};

struct ClaimTask {
  Caller caller;
  std::string worker_id;
  std::vector<std::string> types;  // empty: any type
  int64_t lease_ms = 300'000;
  bool executor = false;  // an executor's claim: tasks whose plans runlog runs, of any tenant
  // An executor's claim: the one queue to take from (ReadyIndex::KeyOf), and
  // the cap on its tenant's tasks running on executors (0: none); chosen by
  // the TaskService's fair share. Empty: any executor queue.
  std::string queue;
  int64_t tenant_running_limit = 0;
  // Cluster mode: while parked, work that appears on another node answers it
  // empty at once, so the caller can claim there (TaskService::WakeParked).
  bool wake_on_remote_work = false;
};

// Heartbeat, complete and fail must come from the lease holder: the lease_id
// if given, else the same key and worker_id.
struct LeaseRef {
  std::string task_id;
  std::string lease_id;
  std::string worker_id;
};

struct Heartbeat {
  Caller caller;
  LeaseRef lease;
};

// An artifact whose bytes are already in the content store.
struct NewArtifact {
  std::string artifact_id, type, digest, content_type;
  int64_t size = 0;
  int64_t approval_expires_at_ms = 0;  // its type requires approval: pending until then
};

// Artifacts made by the worker holding the task's lease.
struct AddArtifacts {
  Caller caller;
  LeaseRef lease;
  std::vector<NewArtifact> artifacts;
};

struct CompleteTask {
  Caller caller;
  LeaseRef lease;
  std::string result;                  // canonical JSON
  events::Usage usage;                 // what the worker reports (usage: tokens, model, cost_usd)
  bool cost_reported = false;          // usage.cost_usd was given: it is not priced
  std::vector<NewArtifact> artifacts;  // recorded before the task ends
};

struct FailTask {
  Caller caller;
  LeaseRef lease;
  std::string error;  // canonical JSON {"code","message"}
  bool retryable = false;
  std::string failure;  // canonical {"code","index","message","step"}, or empty
  events::Usage usage;  // as CompleteTask's
  bool cost_reported = false;
};

// An executor records a step before it runs it (the lease is extended to
// cover the step) and its result after; both under the task's lease.
struct StartStep {
  Caller caller;
  LeaseRef lease;
  int64_t step_index = 0;
  std::string tool, tool_version;
  std::string input;  // canonical, references resolved
  int64_t lease_ms = 0;
};

struct FinishStep {
  Caller caller;
  LeaseRef lease;
  int64_t step_index = 0;
  bool ok = false;
  std::string output;  // canonical JSON object, or empty
  std::string error_code, error_message;
  events::Usage usage;  // the tool's: tokens and model, sandbox CPU time; priced by the writer
  int64_t duration_ms = 0;
  bool sandboxed = false;
};

struct CancelTask {
  Caller caller;
  std::string task_id;
  std::string reason;
};

// A record of another aggregate (a key, a manifest) appended by the writer
// of its partition, so that every partition has one writer; answered (with
// an empty result) once durable.
struct RecordEvent {
  Caller caller;
  events::Event event;
};

using Command = std::variant<CreateTask, ClaimTask, Heartbeat, CompleteTask, FailTask, CancelTask,
                             StartStep, FinishStep, RecordEvent, AddArtifacts>;

// The aggregate a command is about, which decides its partition: the task
// (a create's chosen id), a record's aggregate, or "" for a claim.
inline const std::string& TargetOf(const Command& command) {
  return std::visit(
      [](const auto& c) -> const std::string& {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, CreateTask> || std::is_same_v<T, CancelTask>) {
          return c.task_id;
        } else if constexpr (std::is_same_v<T, RecordEvent>) {
          return c.event.aggregate_id;
        } else if constexpr (std::is_same_v<T, ClaimTask>) {
          static const std::string kNone;
          return kNone;
        } else {
          return c.lease.task_id;
        }
      },
      command);
}

struct CommandResult {
  Task task;              // the task after the command
  bool empty = false;     // a claim that found no ready task
  bool replayed = false;  // a create answered from an earlier identical request
};

using CommandCallback = std::function<void(Result<CommandResult>)>;

// Optional: lets a caller render its answer before the command is durable, on
// the thread that decided it, so the log's thread (which delivers answers)
// only sends it. Called at most once, under the writer's lock, with the task
// of a command that succeeded (never for an empty claim) and `replayed`: it
// must only compute, and take no lock of the services. The answer still goes
// out through the CommandCallback once durable: with a result whose task then
// holds only its id, tenant and status, or with an error (WRITER_FAILED)
// that was not prepared. docs/decisions/0015-answers-rendered-where-decided.md
using PrepareCallback = std::function<void(const Task& task, bool replayed)>;

// What a command on the ended task `t` answers: a lease command (heartbeat,
// complete, fail) LEASE_EXPIRED, TASK_CANCELLED or TASK_TERMINAL by how the
// task ended; a cancel TASK_TERMINAL.
std::unexpected<Error> EndedTaskError(const Task& t, bool lease_command);

}  // namespace runlog::services
