#pragma once
// The single writer of one log partition. It owns the live state of the
// partition's tasks, checks every command against the task state machine,
// turns it into events, appends them and answers once they are durable.
//
// Lifecycle: construct, Recover() from the log, FinishRecovery(); Stop()
// refuses new commands and waits for appends in flight.
//
// Thread contract: every public method is thread-safe. A command is decided
// on the caller's thread under the writer's lock, which also orders the
// appends, so a partition's events reach the log in the order they were
// decided (docs/decisions/0007-inline-writers.md). State changes are applied
// when a command is decided, but every answer — a refusal included — is sent
// only after all appends issued before it are durable, in order, so no client
// ever sees a state the log might not keep. Answers run on a log thread, or on
// the caller's thread after the lock is released; never under the lock
// (only a caller's PrepareCallback, which renders, runs under it). A
// failed append latches the writer: it answers WRITER_FAILED from then on, and
// runlogd must restart (recovery rebuilds the state from the log).

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>

#include "events/event_log.h"
#include "infra/base/clock.h"
#include "infra/base/ids.h"
#include "services/commands.h"
#include "services/tools.h"

namespace runlog::services {

class PartitionWriter {
 public:
  struct Options {
    uint32_t partition = 0;
    events::EventLog* log = nullptr;
    infra::Clock* clock = nullptr;
    infra::IdGenerator* ids = nullptr;
    std::function<void(double seconds)> on_append_latency;  // optional, for metrics
    // Checks the plans planner agents return; without it such plans fail PLAN_INVALID.
    const ToolRegistry* tools = nullptr;
  };
  // How many tasks became ready, by (tenant, type).
  using ReadyCounts = std::map<std::pair<std::string, std::string>, int>;
  // Called (on a log thread, must be quick) after tasks became ready.
  using ReadyListener = std::function<void(uint32_t partition, const ReadyCounts& ready)>;

  PartitionWriter(Options options, ReadyListener on_ready);
  ~PartitionWriter();

  // Applies one event of this partition from the log (before Start).
  [[nodiscard]] Status Recover(const events::Event& event);
  // After the last Recover: indexes ready tasks and leases, records `end`.
  void FinishRecovery(uint64_t end_offset);
  // Refuses new commands, then waits until every append in flight is answered.
  void Stop();

  // `prepare` (optional) renders the answer early: see PrepareCallback.
  void Submit(Command command, CommandCallback done, PrepareCallback prepare = nullptr);
  // Expires the leases whose time is up (commands do it too, for their task).
  void ExpireDue();
  // The clock time of the next lease expiry, or INT64_MAX if no lease is held.
  int64_t next_expiry_ms() const { return next_expiry_ms_.load(); }

  // queued_at_ms of the oldest ready task of `tenant` among `types` (any type
  // if empty), or INT64_MAX if none. A hint for choosing a partition to claim from.
  int64_t OldestReady(const std::string& tenant, const std::vector<std::string>& types) const;
  // One past the last offset whose append was acknowledged to clients.
  uint64_t acked_end() const { return acked_end_.load(); }
  bool failed() const { return failed_.load(); }
  // Ended tasks still remembered here (for tests: a bounded number).
  size_t remembered_ended() {
    std::lock_guard lock(mu_);
    return ended_.size();
  }

 private:
  struct ReadyKey {
    int64_t neg_priority;
    uint64_t ready_seq;
    std::string task_id;
    auto operator<=>(const ReadyKey&) const = default;
  };
  using TenantType = std::pair<std::string, std::string>;
  struct Answer {
    CommandCallback done;
    Result<CommandResult> result;
  };
  struct Pending {
    std::vector<Answer> answers;
    bool has_append = false;
    ReadyCounts made_ready;
    std::chrono::steady_clock::time_point appended_at{};
  };
  // Events decided within one batch.
  struct Batch {
    std::vector<events::Event> events;
    std::vector<Answer> answers;
    ReadyCounts made_ready;
    std::vector<std::string> ended;  // tasks that reached a terminal state
  };
  // A task that ended, kept small once it leaves `tasks_`: enough to answer a
  // late command (409, not 404). One created with an Idempotency-Key is kept
  // whole, to answer a repeated create with the task.
  struct Ended {
    std::string tenant_id;
    TaskStatus status;
    std::string error_code;
    int64_t ended_at_ms;
    std::unique_ptr<const Task> keyed;
  };

  // Under the lock: expires due leases, decides `command` (if any), appends
  // what they emitted. Then answers what it can answer at once.
  void Run(Command* command, CommandCallback* done, const PrepareCallback* prepare);
  void Decide(Command& command, CommandCallback& done, const PrepareCallback& prepare,
              Batch& batch);
  Result<CommandResult> Create(CreateTask& c, Batch& batch);
  Result<CommandResult> Claim(const ClaimTask& c, Batch& batch);
  Result<Task*> HeldLease(const Caller& caller, const LeaseRef& ref, Batch& batch);
  Result<CommandResult> DoHeartbeat(const Heartbeat& c, Batch& batch);
  Result<CommandResult> Complete(const CompleteTask& c, Batch& batch);
  Result<CommandResult> DoFail(const FailTask& c, Batch& batch);
  Result<CommandResult> Cancel(const CancelTask& c, Batch& batch);
  Result<CommandResult> DoStartStep(const StartStep& c, Batch& batch);
  Result<CommandResult> DoFinishStep(const FinishStep& c, Batch& batch);
  // What follows a finished step `index` (of an executor-run plan): a planner's
  // plan checked and appended, the task's end, or the next step handed to its runner.
  struct StepEnd {
    bool ok = false;
    std::string output, error_code, error_message;
    int64_t tokens = 0, duration_ms = 0;
    bool sandboxed = false;
  };
  void AfterStep(Task& task, int64_t index, StepEnd end, Batch& batch);
  // Queues `task` for the runner of step `index`; a worker step's input must resolve.
  void HandOff(Task& task, int64_t index, Batch& batch);
  // Records step.started for the worker step a claim just took.
  void StartWorkerStep(Task& task, int64_t lease_expires_at_ms, Batch& batch);
  // Ends `task` with task.failed, its error {code, message} and failure at step `index`.
  void EndFailed(Task& task, const std::string& code, int64_t index, const std::string& message,
                 const std::string& step, int64_t tokens, Batch& batch);
  // Ends `task` with task.succeeded (empty `error`) or task.failed, with its hashes.
  void End(Task& task, const std::string& result, const std::string& error,
           const std::string& failure, int64_t tokens, Batch& batch);
  // Where a ready task waits: its tenant and type, or ("", "") for executors.
  static TenantType IndexKey(const Task& task);
  void ExpireLeases(Batch& batch);
  void ExpireLease(Task& task, Batch& batch);
  // The result of a command that succeeded with `task` (requires mu_). If its
  // caller prepares answers, that happens here, and the result then carries
  // only the task's id, tenant and status.
  CommandResult Answered(const Task& task, bool replayed = false);
  // Builds the next event of `task`, applies it, and adds it to the batch.
  void Emit(Task& task, const std::string& tenant, std::string type, std::string payload,
            Batch& batch);
  void Requeue(Task& task, const std::string& reason, const std::string& error, Batch& batch);
  // Moves ended tasks out of `tasks_` into `ended_`, and forgets ended ones
  // past their retention (requires mu_).
  void Retire(const std::vector<std::string>& ids);
  void ForgetOldEnded(int64_t now_ms);
  // An ended task of `tenant` as a stub (id, tenant, status, error code), if known.
  std::optional<Task> EndedStub(const std::string& id, const std::string& tenant) const;
  void Index(Task& task);
  void Unindex(const Task& task);
  void PublishSummary();
  void PublishNextExpiry();  // requires mu_
  // Appends the batch's events (requires mu_); answers it can give at once go to `now`.
  void Flush(Batch& batch, std::vector<Answer>& now);
  static void Deliver(std::vector<Answer>& answers);
  void OnAppended(Result<std::vector<uint64_t>> result);

  const Options options_;
  const ReadyListener on_ready_;

  // Guards the task state below and orders the appends.
  std::mutex mu_;
  std::unordered_map<std::string, Task> tasks_;  // live (unfinished) tasks
  std::unordered_map<std::string, Ended> ended_;
  // (ended_at_ms, id) of the ended tasks kept with a key and as stubs, oldest first.
  std::deque<std::pair<int64_t, std::string>> keyed_order_, stub_order_;
  std::map<TenantType, std::set<ReadyKey>> ready_;
  std::unordered_map<std::string, ReadyKey> ready_key_;  // task id -> its key in ready_
  std::multimap<int64_t, std::string> lease_expiry_;     // expires_at_ms -> task id
  uint64_t next_ready_seq_ = 0;
  bool stopping_ = false;
  const PrepareCallback* prepare_ = nullptr;        // the deciding command's, while Decide runs
  std::atomic<int64_t> next_expiry_ms_{INT64_MAX};  // lease_expiry_'s first key

  mutable std::mutex summary_mu_;
  std::map<TenantType, int64_t> summary_;  // guarded by summary_mu_: oldest queued_at_ms

  std::mutex pending_mu_;
  std::condition_variable pending_cv_;
  std::deque<Pending> pending_;  // guarded by pending_mu_
  int delivering_ = 0;           // guarded by pending_mu_: OnAppended calls under way

  std::atomic<uint64_t> acked_end_{0};
  std::atomic<bool> failed_{false};
};

}  // namespace runlog::services
