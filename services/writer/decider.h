#pragma once
// Decider: what a command means for one task. Given the task's state, a
// command, the clock and the id generator, it emits the events the command
// means, applying each to the task as it goes (events::ApplyEvent, the one
// function that moves a task), or it refuses with an error; a lease whose
// time is up is expired first, so a command can emit events and still be
// refused. It holds the task state machine's rules: leases and who holds
// them, attempts and retries, plan steps in order, limits, hashes.
//
// It touches nothing else: no log, no index, no lock, no thread. Finding the
// task (and answering TASK_NOT_FOUND or from the memory of ended tasks),
// choosing which ready task a claim takes, and what the emitted events mean
// for the writer's indexes are the writer's (services/partition_writer.h).
// Tested as "given these events, when this command, then these events or
// this error" (tests/services/decider_test.cc).
//
// Thread contract: none of its own; it uses the clock, ids and tools given.

#include <string>
#include <vector>

#include "events/event.h"
#include "infra/base/clock.h"
#include "infra/base/ids.h"
#include "services/commands.h"
#include "services/tools.h"

namespace runlog::services {

class Decider {
 public:
  struct Options {
    const infra::Clock* clock = nullptr;
    infra::IdGenerator* ids = nullptr;
    // Checks the plans planner agents return; without it they fail PLAN_INVALID.
    const ToolRegistry* tools = nullptr;
  };
  explicit Decider(Options options) : options_(options) {}

  // Each command appends the events it decided to `out`, already applied to
  // `task`, and returns its error if it refuses.
  // Create: `task` is new (only its id set).
  [[nodiscard]] Status Create(events::Task& task, const CreateTask& c,
                              std::vector<events::Event>& out);
  // Claim: `task` is the queued task the claim takes.
  [[nodiscard]] Status Claim(events::Task& task, const ClaimTask& c,
                             std::vector<events::Event>& out);
  [[nodiscard]] Status Heartbeat(events::Task& task, const services::Heartbeat& c,
                                 std::vector<events::Event>& out);
  [[nodiscard]] Status AddArtifacts(events::Task& task, const services::AddArtifacts& c,
                                    std::vector<events::Event>& out);
  [[nodiscard]] Status Complete(events::Task& task, const CompleteTask& c,
                                std::vector<events::Event>& out);
  [[nodiscard]] Status Fail(events::Task& task, const FailTask& c, std::vector<events::Event>& out);
  [[nodiscard]] Status Cancel(events::Task& task, const CancelTask& c,
                              std::vector<events::Event>& out);
  [[nodiscard]] Status StartStep(events::Task& task, const services::StartStep& c,
                                 std::vector<events::Event>& out);
  [[nodiscard]] Status FinishStep(events::Task& task, const services::FinishStep& c,
                                  std::vector<events::Event>& out);
  // The lease of running `task` ran out: a retry while attempts remain, else
  // the task fails LEASE_EXPIRED.
  void ExpireLease(events::Task& task, std::vector<events::Event>& out);
  // Nobody claimed queued `task` within its max_queue_seconds: it fails QUEUE_TIMEOUT.
  void QueueTimeout(events::Task& task, std::vector<events::Event>& out);

 private:
  struct StepEnd {
    bool ok = false;
    std::string output, error_code, error_message;
    events::Usage usage;  // priced
    int64_t duration_ms = 0;
    bool sandboxed = false;
  };
  // The limit on tokens or cost that `t`'s use now passes, as its failure
  // (TOKEN_LIMIT, COST_LIMIT) and message; an empty code if none. `adding`:
  // what a worker's end adds to what its steps used.
  static std::pair<const char*, std::string> OverLimit(const events::Task& t,
                                                       const events::Usage& adding);
  // The caller's lease on `task`, checked (expired first if its time is up).
  Status HeldLease(events::Task& task, const Caller& caller, const LeaseRef& ref,
                   std::vector<events::Event>& out);
  // What follows a finished step `index` of an executor-run plan: a planner's
  // plan checked and appended, the task's end, or the next step handed off.
  void AfterStep(events::Task& t, int64_t index, StepEnd end, std::vector<events::Event>& out);
  // Queues `task` for the runner of step `index`; a worker step's input must resolve.
  void HandOff(events::Task& t, int64_t index, std::vector<events::Event>& out);
  // Records step.started for the worker step a claim just took.
  void StartWorkerStep(events::Task& t, int64_t lease_expires_at_ms,
                       std::vector<events::Event>& out);
  void Requeue(events::Task& t, const std::string& reason, const std::string& error,
               std::vector<events::Event>& out);
  void EmitArtifacts(events::Task& t, const std::vector<NewArtifact>& artifacts,
                     const std::string& key_id, std::vector<events::Event>& out);
  // Ends `task` with task.failed, its error {code, message} and failure at step `index`.
  void EndFailed(events::Task& t, const std::string& code, int64_t index,
                 const std::string& message, const std::string& step, const events::Usage& usage,
                 std::vector<events::Event>& out);
  // Ends `task` with task.succeeded (empty `error`) or task.failed, with its hashes.
  void End(events::Task& t, const std::string& result, const std::string& error,
           const std::string& failure, const events::Usage& usage, std::vector<events::Event>& out);
  // Builds the task's next event, applies it, and appends it to `out`.
  void Emit(events::Task& t, const events::EventBody& body, std::vector<events::Event>& out);

  const Options options_;
};

}  // namespace runlog::services
