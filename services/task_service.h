#pragma once
// TaskService: the front of the partition writers. It routes each command to
// the writer of its task's partition, spreads claims over partitions (best
// ready task first), shares the executors out among tenants (weighted by
// plan, within each plan's max_concurrent_tasks; docs/decisions/0019) and
// parks long-polling claims until work arrives or their wait ends. It also
// recovers every writer from the log at start.
//
// Lifecycle: construct, Recover(), Start(); Stop() answers parked claims with
// nothing, then stops the writers.
// Thread contract: every public method is thread-safe; callbacks run on the
// caller's thread, a log thread or the reaper, and must be quick. The reaper
// thread ends parked claims whose wait is over and expires leases on time.

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "events/read_watch.h"
#include "services/partition_writer.h"

namespace runlog::services {

class TaskService {
 public:
  struct Options {
    events::EventLog* log = nullptr;
    infra::Clock* clock = nullptr;
    infra::IdGenerator* ids = nullptr;
    std::function<void(double seconds)> on_append_latency;  // optional, for metrics
    const ToolRegistry* tools = nullptr;  // checks planners' plans (PartitionWriter::Options)
    // Where the writers checkpoint their state; null: no checkpoints, and
    // recovery reads the whole log.
    SnapshotStore* snapshots = nullptr;
    // A writer checkpoints after this many events, or this long after its
    // last checkpoint if anything changed; and once more when it stops.
    uint64_t checkpoint_every_events = 50'000;
    std::chrono::milliseconds checkpoint_every{10'000};
    // Cluster mode (docs/kafka.md): this node writes only the partitions it
    // owns (Acquire, Release). Commands for the others answer NOT_OWNER.
    bool cluster = false;
  };
  explicit TaskService(Options options);
  ~TaskService();

  // Recovers every writer: from its checkpoint and the log after it, or from
  // the whole log if it has none or it cannot be read (said through
  // `watch.note`). Task events go to their writers, every other event (keys,
  // manifests) to `other` as well. Fails on a record the state machine
  // refuses; stops with CANCELLED once `watch` says so.
  [[nodiscard]] Status Recover(const std::function<void(const events::Event&)>& other,
                               const events::ReadWatch& watch = {});
  void Start();

  // Cluster mode. After Recover no partition is owned. Acquire makes this
  // node the writer of `partition`: a new writer recovered from its
  // checkpoint and the log up to its end (the caller fences the previous
  // writer first), then serving. Release refuses new commands (NOT_OWNER),
  // answers those in flight and checkpoints.
  [[nodiscard]] Status Acquire(uint32_t partition, const events::ReadWatch& watch = {});
  void Release(uint32_t partition);
  bool owns(uint32_t partition) const { return Writer(partition) != nullptr; }
  bool writer_failed(uint32_t partition) const {
    auto w = Writer(partition);
    return w != nullptr && w->failed();
  }
  uint32_t partition_count() const { return partitions_; }

  // Answers every parked claim now (with nothing) and parks no new ones: the
  // first step of a graceful stop, so no answer outlives the HTTP server.
  void StopParking();
  void Stop();

  // Chooses the task id (derived from the tenant and Idempotency-Key, so a
  // retried create reaches the same writer and finds the same task).
  void Create(CreateTask command, CommandCallback done, PrepareCallback prepare = nullptr);
  // Answers the oldest ready task, or waits up to `wait` for one; `empty` if none.
  void Claim(ClaimTask command, std::chrono::milliseconds wait, CommandCallback done,
             PrepareCallback prepare = nullptr);
  // Answers up to `count` parked claims of `tenant` that asked for it
  // (ClaimTask::wake_on_remote_work) with nothing, now: tasks became ready
  // on a partition another node writes.
  void WakeParked(const std::string& tenant, int count);
  // Heartbeat, complete, fail and cancel.
  void Submit(Command command, CommandCallback done, PrepareCallback prepare = nullptr);
  // Appends a record of another aggregate (a key, a manifest) through the
  // writer of its partition; `done` once it is durable.
  void Record(events::Event event, std::function<void(Status)> done);

  // Called (once, after it is durable) for every task a cancel ended; must be quick.
  void SetCancelListener(std::function<void(const std::string& task_id)> listener) {
    on_cancelled_ = std::move(listener);
  }
  // The plan of a tenant (services/account_plans.h), or "" for none: its
  // executor weight and max_concurrent_tasks. Set before Start; without it
  // every tenant weighs 1, uncapped.
  void SetPlanResolver(std::function<std::string(const std::string& tenant)> plan_of) {
    plan_of_ = std::move(plan_of);
  }

  // Checkpoints every writer now (waits until what it covers is durable).
  [[nodiscard]] Status CheckpointAll();

  uint32_t PartitionOf(const std::string& task_id) const;
  // One past the last offset acknowledged to a client on `partition`.
  uint64_t AckedEnd(uint32_t partition) const {
    auto w = Writer(partition);
    return w != nullptr ? w->acked_end() : 0;
  }
  bool healthy() const;
  size_t parked_claims() const;  // of workers (executors park too, and are not counted)
  // What the writers hold, summed: tasks by state, and their memory estimate.
  PartitionWriter::Held HeldNow() const {
    PartitionWriter::Held all;
    for (const auto& w : Writers()) {
      PartitionWriter::Held one = w->HeldNow();
      for (const auto& [state, n] : one.tasks) all.tasks[state] += n;
      all.memory_bytes += one.memory_bytes;
    }
    return all;
  }
  // Every writer's live and remembered state, canonical (for tests).
  std::string StateForTest() const {
    std::string out;
    for (const auto& w : Writers()) out += w->StateForTest() + "--\n";
    return out;
  }
  // Ended tasks the writers still remember (for tests).
  size_t remembered_ended() const {
    size_t n = 0;
    for (const auto& w : Writers()) n += w->remembered_ended();
    return n;
  }

  static std::string TaskIdFor(const std::string& tenant_id, const std::string& idempotency_key);

  // The accounts' quota counts (tasks this month, claims this hour, workers).
  const Quotas& quotas() const { return quotas_; }

 private:
  struct Waiter {
    ClaimTask command;
    std::chrono::steady_clock::time_point deadline;
    CommandCallback done;
    PrepareCallback prepare;
    int rounds = 0;  // lists of candidates tried since it last woke: bounds a claim's retries
  };
  // Where a claim may find a task: a partition, and for an executor one
  // queue there and the cap on its tenant's running tasks.
  struct Candidate {
    uint32_t partition = 0;
    std::string queue;
    int64_t tenant_running_limit = 0;
  };
  void TryClaim(std::shared_ptr<Waiter> waiter, std::vector<Candidate> candidates, size_t next);
  std::vector<Candidate> Candidates(const ClaimTask& command);
  // An executor's candidates: tenants by fair share (least served for their
  // weight first), each tenant's queues best first; tenants at their
  // max_concurrent_tasks and keys at their max_concurrency left out.
  std::vector<Candidate> ExecutorCandidates();
  // An executor took a task of `tenant`: its share moves on by 1/weight.
  void Charge(const std::string& tenant);
  const Plan* PlanOf(const std::string& tenant) const;
  void OnReady(const PartitionWriter::ReadyCounts& ready);
  void ReapLoop();
  void CheckpointLoop();
  // Checkpoints `writer` if anything changed; waits for durability first.
  [[nodiscard]] Status Checkpoint(PartitionWriter& writer);
  // Loads partition `p`'s checkpoint into `writer`; the offset it covers (0 if none or unusable).
  uint64_t LoadCheckpoint(uint32_t p, PartitionWriter& writer, uint64_t end,
                          const std::function<void(const events::Event&)>& other,
                          const events::ReadWatch& watch);
  // Recovers `writer` of partition `p` from its checkpoint and the log.
  [[nodiscard]] Status RecoverPartition(uint32_t p, PartitionWriter& writer,
                                        const std::function<void(const events::Event&)>& other,
                                        events::ReadProgress& progress,
                                        const events::ReadWatch& watch);
  std::shared_ptr<PartitionWriter> MakeWriter(uint32_t p);
  // Partition `p`'s writer; null where this node does not own it (cluster mode).
  std::shared_ptr<PartitionWriter> Writer(uint32_t p) const { return writers_[p].load(); }
  // The writers there are now.
  std::vector<std::shared_ptr<PartitionWriter>> Writers() const {
    std::vector<std::shared_ptr<PartitionWriter>> out;
    for (uint32_t p = 0; p < partitions_; ++p) {
      if (auto w = Writer(p)) out.push_back(std::move(w));
    }
    return out;
  }
  static Error NotOwner(uint32_t p);

  Options options_;
  Quotas quotas_;  // before the writers, which count into it
  const uint32_t partitions_;
  std::unique_ptr<std::atomic<std::shared_ptr<PartitionWriter>>[]> writers_;

  mutable std::mutex waiters_mu_;
  std::condition_variable waiters_cv_;
  std::vector<std::shared_ptr<Waiter>> waiters_;  // guarded by waiters_mu_
  bool stopping_ = false;                         // guarded by waiters_mu_
  bool no_parking_ = false;                       // guarded by waiters_mu_
  std::thread reaper_;
  std::thread checkpointer_;
  std::mutex checkpoint_mu_;                                // one checkpoint at a time, in order
  std::function<void(const std::string&)> on_cancelled_;    // set before Start
  std::function<std::string(const std::string&)> plan_of_;  // set before Start
  // Stride scheduling of the executors among tenants: each tenant's pass
  // (what it was served, over its weight) and the pass of the last served.
  std::mutex fair_mu_;
  std::unordered_map<std::string, uint64_t> pass_;  // guarded by fair_mu_
  uint64_t virtual_pass_ = 0;                       // guarded by fair_mu_
};

}  // namespace runlog::services
