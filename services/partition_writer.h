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
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "events/event_log.h"
#include "infra/base/clock.h"
#include "infra/base/ids.h"
#include "services/account_plans.h"
#include "services/commands.h"
#include "services/quotas.h"
#include "services/tools.h"
#include "services/writer/decider.h"
#include "services/writer/ended_tasks.h"
#include "services/writer/ordered_appender.h"
#include "services/writer/ready_index.h"
#include "services/writer/snapshot_store.h"

namespace runlog::services {

// The glue of four roles (services/writer/): the Decider decides, this class
// keeps the live tasks and keeps the ReadyIndex and EndedTasks in step with
// the events decided, and the OrderedAppender appends and answers.
//
// Memory: a queued task whose checkpoint entry is current is spilled: only
// its ReadyIndex entry stays in memory, and its body is read back from the
// checkpoint (SnapshotStore) when a command needs it, a claim mostly. So the
// writer holds in full only running tasks and those changed since the last
// checkpoint (docs/decisions/0018-spilled-queued-tasks.md).
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
    // Where its checkpoints go, and spilled tasks are read back from; without
    // it no task is spilled.
    SnapshotStore* snapshots = nullptr;
    // Where creates and claims are counted against account plans; null: no quotas.
    Quotas* quotas = nullptr;
  };
  using ReadyCounts = OrderedAppender::ReadyCounts;
  // Called (on a log thread, must be quick) after tasks became ready.
  using ReadyListener = std::function<void(uint32_t partition, const ReadyCounts& ready)>;

  PartitionWriter(Options options, ReadyListener on_ready);
  ~PartitionWriter();

  // Applies one event of this partition from the log (before Start): a
  // task's to the live state, any other (a key's, a manifest's) kept for
  // the next checkpoint.
  [[nodiscard]] Status Recover(const events::Event& event);
  // Loads one entry of a checkpoint (before Recover of the log after it); a
  // record's event goes to `other`. Reset() forgets what was loaded. Entries
  // under kSpilledBodies are not to be loaded: they are read when needed.
  static constexpr std::string_view kSpilledBodies = "q/";
  [[nodiscard]] Status LoadCheckpointEntry(std::string_view key, std::string_view value,
                                           const std::function<void(const events::Event&)>& other);
  void Reset();
  // After the last Recover: indexes ready tasks and leases, records `end`;
  // `checkpoint_offset` is the offset of the checkpoint loaded, if any.
  void FinishRecovery(uint64_t end_offset, uint64_t checkpoint_offset = 0);
  // Refuses new commands, then waits until every append in flight is
  // answered. `moving`: the partition goes to another node, and the refusals
  // say NOT_OWNER (retryable) rather than that the server stops.
  void Stop(bool moving = false);
  // Takes this partition's share out of the shared quotas (its counts, its
  // running tasks' worker holds and runs), as FinishRecovery put it in and
  // commands since kept it: the partition goes to another node (cluster
  // mode). After Stop.
  void WithdrawQuotas();

  // `prepare` (optional) renders the answer early: see PrepareCallback.
  void Submit(Command command, CommandCallback done, PrepareCallback prepare = nullptr);
  // Expires the leases whose time is up (commands do it too, for their task).
  void ExpireDue();
  // The clock time of the next lease expiry, or INT64_MAX if no lease is held.
  int64_t next_expiry_ms() const { return next_expiry_ms_.load(); }

  // Where the best ready task of `tenant` among `types` (any type if empty)
  // stands (ReadyIndex::Rank), or kNone. A hint for choosing a partition to claim from.
  ReadyIndex::Rank FrontRank(const std::string& tenant,
                             const std::vector<std::string>& types) const {
    return ready_.Front(tenant, types);
  }
  // The executors' queues with ready tasks here, and their ranks (ReadyIndex::ExecutorFronts).
  std::vector<std::pair<ReadyIndex::TenantType, ReadyIndex::Rank>> ExecutorFronts() const {
    return ready_.ExecutorFronts();
  }
  // One past the last offset whose append was acknowledged to clients.
  uint64_t acked_end() const { return appender_.acked_end(); }
  bool failed() const { return appender_.failed(); }
  // The changes since the last checkpoint, as the next one, covering every
  // event decided so far (SnapshotStore); nothing if nothing changed. Write
  // it only once acked_end() reaches its offset: before that the log may
  // not keep what it holds.
  std::optional<SnapshotStore::Checkpoint> PrepareCheckpoint();
  // A prepared checkpoint that could not be written: its changes go back to
  // be written by the next one.
  void CheckpointFailed(const SnapshotStore::Checkpoint& checkpoint);
  // A prepared checkpoint was written: the queued tasks it holds and that
  // have not changed since are spilled.
  void CheckpointWritten(const SnapshotStore::Checkpoint& checkpoint);
  // Events decided since the last PrepareCheckpoint.
  uint64_t uncheckpointed() const { return decided_end_.load() - checkpointed_end_.load(); }
  // Spilled tasks were read back since the last checkpoint: one is due even
  // without new events, to spill them again.
  bool wants_checkpoint() const { return read_back_.load(); }
  // The live tasks and the remembered ended ones (pruned to their retention
  // now), canonical and sorted (for tests).
  std::string StateForTest();

  // What this writer holds: tasks by state, and an estimate of its memory.
  struct Held {
    std::map<std::string, int64_t> tasks;  // by status name; "ended" for remembered ones
    int64_t memory_bytes = 0;
  };
  Held HeldNow();

  // Ended tasks still remembered here (for tests: a bounded number).
  size_t remembered_ended() {
    std::lock_guard lock(mu_);
    return ended_.size();
  }

 private:
  using Answer = OrderedAppender::Answer;
  // What one Run decided: its events, answers, and the tasks they touched.
  struct Batch {
    std::vector<events::Event> events;
    std::vector<Answer> answers;
    ReadyCounts made_ready;
    bool index_changed = false;
  };

  // Under the lock: expires due leases, decides `command` (if any), appends
  // what they emitted. Then answers what it can answer at once.
  void Run(Command* command, CommandCallback* done, const PrepareCallback* prepare);
  Result<CommandResult> Decide(Command& command, const PrepareCallback& prepare, Batch& batch);
  Result<CommandResult> Create(const CreateTask& c, const PrepareCallback& prepare, Batch& batch);
  Result<CommandResult> Claim(const ClaimTask& c, const PrepareCallback& prepare, Batch& batch);
  // The live task `id` in memory, read back if it was spilled; null if `id`
  // is not live, an error if its checkpoint entry cannot be read.
  Result<events::Task*> Find(const std::string& id);
  Result<events::Task> ReadSpilled(const std::string& id);
  // The live task `id` of `tenant` for a command, or the error a command on
  // it answers (TASK_NOT_FOUND, or by how the remembered ended task ended).
  Result<events::Task*> Live(const std::string& id, const std::string& tenant, bool lease_command);
  // Brings the index, the memory of ended tasks and the workers' leases in
  // step with `task` after the decider emitted events for it.
  void Track(events::Task& task, const events::Lease& lease_before, Batch& batch);
  // Counts `events` (this partition's share of the quotas' counts).
  // QUOTA_EXCEEDED for `counter` of `plan`, at `limit`, with when it resets.
  static std::unexpected<Error> QuotaExceeded(const Plan& plan, Quotas::Counter counter,
                                              int64_t limit, int64_t now);
  // BUDGET_EXCEEDED: `plan`'s monthly budget is spent.
  static std::unexpected<Error> BudgetExceeded(const Plan& plan, int64_t spent, int64_t now);
  // Counts what a command's events cost `tenant` against its monthly budget.
  void CountCost(const std::string& tenant, int64_t nanos);
  void ExpireLeases(Batch& batch);
  // The result of a command that succeeded with `task`: if its caller
  // prepares answers, that happens here, and the result then carries only
  // the task's id, tenant and status.
  static CommandResult Answered(const events::Task& task, const PrepareCallback& prepare,
                                bool replayed = false);

  const Options options_;
  const ReadyListener on_ready_;
  Decider decider_;
  OrderedAppender appender_;

  // Guards the state below and orders the appends.
  std::mutex mu_;
  std::unordered_map<std::string, events::Task> tasks_;  // live (unfinished) tasks
  EndedTasks ended_;
  ReadyIndex ready_;  // Front() is safe without mu_
  bool stopping_ = false;
  bool moving_ = false;
  // What changed since the last checkpoint: tasks (live, ended or forgotten)
  // and the encoded records of other aggregates.
  std::unordered_set<std::string> dirty_;
  std::vector<std::string> records_;
  uint64_t next_record_ = 0;  // the number of the next record's checkpoint entry
  bool recovered_ = false;    // FinishRecovery ran: the state matches decided_end_
  // During recovery: the live tasks the checkpoint held (their entries must
  // be rewritten or deleted even if they end in the tail).
  std::unordered_set<std::string> checkpointed_live_;
  // During recovery: the queued tasks of the checkpoint, spilled, as their
  // index entries; FinishRecovery indexes those still queued.
  struct Spilled {
    ReadyIndex::TenantType where;
    int64_t priority = 0, queued_at_ms = 0;
    int64_t deadline = 0;  // of its queue (max_queue_seconds), or 0
  };
  std::unordered_map<std::string, Spilled> spilled_;
  // What this partition counted for the quotas, by tenant; checkpointed
  // ("c/" entries) when changed, given to Quotas at FinishRecovery.
  std::unordered_map<std::string, Quotas::Slots> counted_;
  std::unordered_set<std::string> counted_dirty_;
  std::atomic<uint64_t> decided_end_{0};            // one past the last event decided
  std::atomic<uint64_t> checkpointed_end_{0};       // decided_end_ at the last checkpoint
  std::atomic<bool> read_back_{false};              // see wants_checkpoint()
  std::atomic<int64_t> next_expiry_ms_{INT64_MAX};  // the index's next lease expiry
};

}  // namespace runlog::services
