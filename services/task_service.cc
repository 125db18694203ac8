#include "services/task_service.h"

#include <algorithm>
#include <thread>

#include "events/partitioner.h"
#include "events/sha256.h"

namespace runlog::services {

TaskService::TaskService(Options options)
    : options_(options),
      partitions_(options_.log->partition_count()),
      writers_(new std::atomic<std::shared_ptr<PartitionWriter>>[partitions_]) {
  for (uint32_t p = 0; p < partitions_; ++p) writers_[p].store(MakeWriter(p));
}

std::shared_ptr<PartitionWriter> TaskService::MakeWriter(uint32_t p) {
  PartitionWriter::Options w{p,
                             options_.log,
                             options_.clock,
                             options_.ids,
                             options_.on_append_latency,
                             options_.tools,
                             options_.snapshots,
                             &quotas_};
  return std::make_shared<PartitionWriter>(
      w, [this](uint32_t, const PartitionWriter::ReadyCounts& ready) { OnReady(ready); });
}

Error TaskService::NotOwner(uint32_t p) {
  return Error{codes::kNotOwner,
               "partition " + std::to_string(p) + " is written by another node; retry there",
               R"({"partition":)" + std::to_string(p) + "}"};
}

TaskService::~TaskService() { Stop(); }

uint64_t TaskService::LoadCheckpoint(uint32_t p, PartitionWriter& writer, uint64_t end,
                                     const std::function<void(const events::Event&)>& other,
                                     const events::ReadWatch& watch) {
  if (options_.snapshots == nullptr) return 0;
  auto loaded = options_.snapshots->Read(
      p,
      [&](std::string_view key, std::string_view value) {
        return writer.LoadCheckpointEntry(key, value, other);
      },
      PartitionWriter::kSpilledBodies);
  if (loaded && *loaded <= end) {
    if (watch.note) {
      watch.note("partition " + std::to_string(p) + ": the writer's checkpoint covers offset " +
                 std::to_string(*loaded) + " of " + std::to_string(end));
    }
    return *loaded;
  }
  if (!loaded && loaded.error().code == codes::kNotFound) return 0;
  const std::string why = loaded ? "it covers offset " + std::to_string(*loaded) +
                                       " but the log ends at " + std::to_string(end)
                                 : loaded.error().message;
  if (watch.note) {
    watch.note("partition " + std::to_string(p) + ": the writer's snapshot is not used (" + why +
               "); reading the whole log");
  }
  writer.Reset();
  (void)options_.snapshots->Drop(p);  // the next checkpoint writes it anew
  return 0;
}

Status TaskService::Recover(const std::function<void(const events::Event&)>& other,
                            const events::ReadWatch& watch) {
  events::ReadProgress progress(watch, "recovering");
  for (uint32_t p = 0; p < partitions_; ++p) {
    if (auto s = RecoverPartition(p, *Writer(p), other, progress, watch); !s) return s;
  }
  if (options_.cluster) {
    // Owned partitions come from the group (Acquire), recovered anew then.
    for (uint32_t p = 0; p < partitions_; ++p) {
      auto w = writers_[p].exchange(nullptr);
      w->Stop(true);
      w->WithdrawQuotas();   // Acquire counts what this node writes
      (void)Checkpoint(*w);  // the next Acquire or start reads less
    }
  }
  return {};
}

Status TaskService::RecoverPartition(uint32_t p, PartitionWriter& writer,
                                     const std::function<void(const events::Event&)>& other,
                                     events::ReadProgress& progress,
                                     const events::ReadWatch& watch) {
  {
    auto end = options_.log->EndOffset(p);
    if (!end) return std::unexpected(end.error());
    uint64_t from = LoadCheckpoint(p, writer, *end, other, watch);
    for (uint64_t offset = from; offset < *end;) {
      if (auto s = progress.At(p, offset, *end); !s) return s;
      auto records = options_.log->Read(p, offset, 4096);
      if (!records) return std::unexpected(records.error());
      if (records->empty()) {
        if (!options_.log->OffsetsContiguous()) break;  // nothing more before the end
        return Fail(runlog::codes::kLogCorrupt, "log ended early while recovering");
      }
      bool restart = false;
      for (const events::LogRecord& r : *records) {
        if (auto s = writer.Recover(r.event); !s) {
          // The checkpoint's part failed (a spilled task it cannot read back):
          // drop it and read the whole log, as for any unusable checkpoint.
          if (from > 0 && s.error().code == runlog::codes::kUnavailable) {
            if (watch.note) {
              watch.note("partition " + std::to_string(p) +
                         ": the writer's snapshot is not used (" + s.error().message +
                         "); reading the whole log");
            }
            writer.Reset();
            (void)options_.snapshots->Drop(p);
            from = offset = 0;
            restart = true;
            break;
          }
          return Fail(runlog::codes::kLogCorrupt, "partition " + std::to_string(p) + " offset " +
                                                      std::to_string(r.offset) + ": " +
                                                      s.error().message);
        }
        if (!events::IsTaskEvent(r.event) && other) other(r.event);
      }
      if (!restart) offset = records->back().offset + 1;
    }
    writer.FinishRecovery(*end, from);
  }
  return {};
}

Status TaskService::Acquire(uint32_t p, const events::ReadWatch& watch) {
  if (p >= partitions_) return Fail(codes::kInvalidArgument, "no such partition");
  Release(p);
  auto writer = MakeWriter(p);
  events::ReadProgress progress(watch, "recovering partition " + std::to_string(p));
  // Keys, manifests and hooks come from the views' feed in cluster mode.
  if (auto s = RecoverPartition(
          p, *writer, [](const events::Event&) {}, progress, watch);
      !s) {
    return s;
  }
  writers_[p].store(std::move(writer));
  return {};
}

void TaskService::Release(uint32_t p) {
  auto w = writers_[p].exchange(nullptr);
  if (w == nullptr) return;
  w->Stop(true);
  w->WithdrawQuotas();
  (void)Checkpoint(*w);
}

Status TaskService::Checkpoint(PartitionWriter& writer) {
  if (options_.snapshots == nullptr) return {};
  std::lock_guard lock(checkpoint_mu_);
  auto cp = writer.PrepareCheckpoint();
  if (!cp) return {};
  // What it covers must be durable first: the log may not keep the rest.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (writer.acked_end() < cp->offset && !writer.failed()) {
    if (std::chrono::steady_clock::now() > give_up) {
      writer.CheckpointFailed(*cp);
      return Fail(codes::kUnavailable, "partition " + std::to_string(cp->partition) +
                                           ": the events a checkpoint covers are not durable");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // A latched writer's log may not hold what the checkpoint covers: none is
  // written, and the next start reads the log from the last good one.
  if (writer.failed()) return Fail(codes::kWriterFailed, "the writer failed");
  if (auto s = options_.snapshots->Write(*cp); !s) {
    writer.CheckpointFailed(*cp);
    return s;
  }
  writer.CheckpointWritten(*cp);
  return {};
}

Status TaskService::CheckpointAll() {
  if (options_.snapshots == nullptr) return {};
  for (const auto& w : Writers()) {
    if (auto s = Checkpoint(*w); !s) return s;
  }
  return {};
}

void TaskService::CheckpointLoop() {
  std::vector<std::chrono::steady_clock::time_point> last(partitions_,
                                                          std::chrono::steady_clock::now());
  std::unique_lock lock(waiters_mu_);
  while (!stopping_) {
    waiters_cv_.wait_for(lock, std::chrono::milliseconds(100));
    if (stopping_) break;
    lock.unlock();
    const auto now = std::chrono::steady_clock::now();
    for (uint32_t p = 0; p < partitions_; ++p) {
      auto w = Writer(p);
      if (w == nullptr) continue;
      const uint64_t pending = w->uncheckpointed();
      if (pending >= options_.checkpoint_every_events ||
          ((pending > 0 || w->wants_checkpoint()) && now - last[p] >= options_.checkpoint_every)) {
        // A checkpoint that fails is retried by the next one; recovery
        // reads more of the log meanwhile.
        (void)Checkpoint(*w);
        last[p] = now;
      }
    }
    lock.lock();
  }
}

void TaskService::Start() {
  reaper_ = std::thread([this] { ReapLoop(); });
  if (options_.snapshots != nullptr) checkpointer_ = std::thread([this] { CheckpointLoop(); });
}

void TaskService::StopParking() {
  std::vector<std::shared_ptr<Waiter>> parked;
  {
    std::lock_guard lock(waiters_mu_);
    no_parking_ = true;
    parked.swap(waiters_);
  }
  for (auto& w : parked) w->done(CommandResult{Task{}, true});
}

void TaskService::Stop() {
  std::vector<std::shared_ptr<Waiter>> parked;
  {
    std::lock_guard lock(waiters_mu_);
    if (stopping_) return;
    stopping_ = true;
    parked.swap(waiters_);
  }
  waiters_cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
  if (checkpointer_.joinable()) checkpointer_.join();
  for (auto& w : parked) w->done(CommandResult{Task{}, true});
  for (auto& w : Writers()) w->Stop();
  // Every append is answered: a last checkpoint makes the next start short.
  (void)CheckpointAll();
}

std::string TaskService::TaskIdFor(const std::string& tenant_id,
                                   const std::string& idempotency_key) {
  // 26 base32 characters of SHA-256(tenant NUL key): as long as a random id.
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  const std::string hex = events::Sha256Hex(tenant_id + '\0' + idempotency_key);
  std::string id = "task_";
  for (size_t i = 0; i < 26; ++i) {
    id.push_back(kAlphabet[std::stoi(hex.substr(i * 2, 2), nullptr, 16) & 31]);
  }
  return id;
}

void TaskService::Record(events::Event event, std::function<void(Status)> done) {
  const uint32_t p = PartitionOf(event.aggregate_id);
  auto w = Writer(p);
  if (w == nullptr) return done(std::unexpected(NotOwner(p)));
  w->Submit(RecordEvent{{event.tenant_id, ""}, std::move(event)},
            [done = std::move(done)](Result<CommandResult> r) {
              done(r ? Status{} : Status(std::unexpected(r.error())));
            });
}

uint32_t TaskService::PartitionOf(const std::string& task_id) const {
  return events::PartitionFor(task_id, partitions_);
}

bool TaskService::healthy() const {
  if (options_.cluster) return true;  // a failed writer is recovered anew (Acquire)
  auto all = Writers();
  return std::none_of(all.begin(), all.end(), [](auto& w) { return w->failed(); });
}

size_t TaskService::parked_claims() const {
  std::lock_guard lock(waiters_mu_);
  return std::count_if(waiters_.begin(), waiters_.end(),
                       [](const auto& w) { return !w->command.executor; });
}

void TaskService::Create(CreateTask command, CommandCallback done, PrepareCallback prepare) {
  if (command.task_id.empty()) {
    command.task_id = command.idempotency_key.empty()
                          ? options_.ids->NextSortable("task_")
                          : TaskIdFor(command.caller.tenant_id, command.idempotency_key);
    // A task without a key may live anywhere: in a cluster, on a partition
    // this node writes (a node that writes none forwards the create, and the
    // owner picks).
    for (int tries = 0; options_.cluster && command.idempotency_key.empty() && tries < 256 &&
                        !owns(PartitionOf(command.task_id));
         ++tries) {
      command.task_id = options_.ids->NextSortable("task_");
    }
  }
  const uint32_t p = PartitionOf(command.task_id);
  auto w = Writer(p);
  if (w == nullptr) return done(std::unexpected(NotOwner(p)));
  w->Submit(std::move(command), std::move(done), std::move(prepare));
}

void TaskService::Submit(Command command, CommandCallback done, PrepareCallback prepare) {
  const uint32_t partition = PartitionOf(TargetOf(command));
  if (on_cancelled_ && std::holds_alternative<CancelTask>(command)) {
    done = [this, done = std::move(done)](Result<CommandResult> r) {
      if (r) on_cancelled_(r->task.id);
      done(std::move(r));
    };
  }
  auto w = Writer(partition);
  if (w == nullptr) return done(std::unexpected(NotOwner(partition)));
  w->Submit(std::move(command), std::move(done), std::move(prepare));
}

std::vector<TaskService::Candidate> TaskService::Candidates(const ClaimTask& command) {
  if (command.executor) return ExecutorCandidates();
  // Highest priority first, then oldest, across partitions as within one.
  std::vector<std::pair<ReadyIndex::Rank, uint32_t>> ranked;
  for (uint32_t p = 0; p < partitions_; ++p) {
    auto w = Writer(p);
    if (w == nullptr) continue;
    const ReadyIndex::Rank rank = w->FrontRank(command.caller.tenant_id, command.types);
    if (rank != ReadyIndex::kNone) ranked.emplace_back(rank, p);
  }
  std::sort(ranked.begin(), ranked.end());
  std::vector<Candidate> out;
  for (auto& [at, p] : ranked) out.push_back({p});
  return out;
}

const Plan* TaskService::PlanOf(const std::string& tenant) const {
  if (!plan_of_) return nullptr;
  const std::string name = plan_of_(tenant);
  return PlanExists(name) ? &PlanNamed(name) : nullptr;
}

namespace {
constexpr uint64_t kStride = uint64_t{1} << 20;  // a weight-1 tenant's pass per task
}  // namespace

std::vector<TaskService::Candidate> TaskService::ExecutorCandidates() {
  struct Ready {
    ReadyIndex::Rank rank;
    uint32_t partition;
    std::string queue;
  };
  std::unordered_map<std::string, std::vector<Ready>> by_tenant;
  for (uint32_t p = 0; p < partitions_; ++p) {
    auto w = Writer(p);
    if (w == nullptr) continue;
    for (auto& [key, rank] : w->ExecutorFronts()) {
      const ReadyIndex::Queue q = ReadyIndex::Parse(key);
      if (!q.concurrency_key.empty() && q.max_concurrency > 0 &&
          quotas_.KeyRuns(q.tenant, q.concurrency_key) >= q.max_concurrency) {
        continue;
      }
      by_tenant[q.tenant].push_back({rank, p, key.second});
    }
  }
  struct Turn {
    uint64_t pass;
    ReadyIndex::Rank best;
    const std::string* tenant;
    int64_t limit;
  };
  std::vector<Turn> turns;
  for (auto& [tenant, ready] : by_tenant) {
    const Plan* plan = PlanOf(tenant);
    const int64_t limit = plan != nullptr ? plan->max_concurrent_tasks : 0;
    if (limit > 0 && quotas_.ExecutorRuns(tenant) >= limit) continue;
    std::sort(ready.begin(), ready.end(),
              [](const Ready& a, const Ready& b) { return a.rank < b.rank; });
    turns.push_back({0, ready.front().rank, &tenant, limit});
  }
  {
    std::lock_guard lock(fair_mu_);
    for (Turn& turn : turns) {
      auto it = pass_.find(*turn.tenant);
      turn.pass = std::max(it == pass_.end() ? 0 : it->second, virtual_pass_);
    }
  }
  std::sort(turns.begin(), turns.end(), [](const Turn& a, const Turn& b) {
    return a.pass != b.pass ? a.pass < b.pass : a.best < b.best;
  });
  std::vector<Candidate> out;
  for (const Turn& turn : turns) {
    for (Ready& r : by_tenant[*turn.tenant]) {
      out.push_back({r.partition, std::move(r.queue), turn.limit});
    }
  }
  return out;
}

void TaskService::Charge(const std::string& tenant) {
  const Plan* plan = PlanOf(tenant);
  const uint64_t weight = plan != nullptr ? std::max<int64_t>(1, plan->weight) : 1;
  std::lock_guard lock(fair_mu_);
  uint64_t& pass = pass_[tenant];
  const uint64_t start = std::max(pass, virtual_pass_);
  pass = start + kStride / weight;
  virtual_pass_ = start;
}

void TaskService::Claim(ClaimTask command, std::chrono::milliseconds wait, CommandCallback done,
                        PrepareCallback prepare) {
  auto waiter =
      std::make_shared<Waiter>(Waiter{std::move(command), std::chrono::steady_clock::now() + wait,
                                      std::move(done), std::move(prepare)});
  TryClaim(std::move(waiter), {}, 0);
}

// Tries `candidates` from `next` on; when they run out, looks again and parks
// the claim if nothing is ready and its wait has not ended. A claim that went
// through two lists without a task parks too: what is ready is held back
// (its concurrency key is at its limit) or keeps being taken by others.
void TaskService::TryClaim(std::shared_ptr<Waiter> waiter, std::vector<Candidate> candidates,
                           size_t next) {
  if (next >= candidates.size()) {
    std::unique_lock lock(waiters_mu_);
    candidates.clear();
    if (waiter->rounds++ < 2) candidates = Candidates(waiter->command);
    if (candidates.empty()) {
      if (!stopping_ && !no_parking_ && std::chrono::steady_clock::now() < waiter->deadline) {
        waiters_.push_back(std::move(waiter));
        lock.unlock();
        waiters_cv_.notify_one();
        return;
      }
      lock.unlock();
      return waiter->done(CommandResult{Task{}, true});
    }
    next = 0;
  }
  const uint32_t partition = candidates[next].partition;
  ClaimTask command = waiter->command;
  command.queue = candidates[next].queue;
  command.tenant_running_limit = candidates[next].tenant_running_limit;
  // The writer prepares only a claim that took a task: that one is final.
  auto w = Writer(partition);
  if (w == nullptr) return TryClaim(std::move(waiter), std::move(candidates), next + 1);
  w->Submit(
      std::move(command),
      [this, waiter, candidates = std::move(candidates), next](Result<CommandResult> r) mutable {
        if (r && r->empty)
          return TryClaim(waiter, std::move(candidates), next + 1);  // try the next
        if (r && waiter->command.executor) Charge(r->task.tenant_id);
        waiter->done(std::move(r));
      },
      waiter->prepare);
}

// Wakes, oldest first, as many parked claims as tasks became ready, among
// those that would accept them (same tenant, a matching type). Waking them all
// would send every parked worker to the writers for each new task.
void TaskService::OnReady(const PartitionWriter::ReadyCounts& ready) {
  std::vector<std::shared_ptr<Waiter>> woken;
  {
    std::lock_guard lock(waiters_mu_);
    for (const auto& [tenant_type, count] : ready) {
      const std::string& tenant = tenant_type.first;
      // A queue by concurrency key is its type's: "type NUL key NUL max".
      const std::string type = tenant_type.second.substr(0, tenant_type.second.find('\0'));
      int left = count;
      std::erase_if(waiters_, [&](std::shared_ptr<Waiter>& w) {
        const auto& types = w->command.types;
        if (left == 0 || w->command.caller.tenant_id != tenant ||
            (!types.empty() && std::find(types.begin(), types.end(), type) == types.end())) {
          return false;
        }
        --left;
        woken.push_back(std::move(w));
        return true;
      });
    }
  }
  for (auto& w : woken) {
    w->rounds = 0;
    TryClaim(std::move(w), {}, 0);
  }
}

void TaskService::WakeParked(const std::string& tenant, int count) {
  std::vector<std::shared_ptr<Waiter>> woken;
  {
    std::lock_guard lock(waiters_mu_);
    std::erase_if(waiters_, [&](std::shared_ptr<Waiter>& w) {
      if (count == 0 || !w->command.wake_on_remote_work || w->command.caller.tenant_id != tenant) {
        return false;
      }
      --count;
      woken.push_back(std::move(w));
      return true;
    });
  }
  for (auto& w : woken) w->done(CommandResult{Task{}, true});
}

// Ends parked claims whose wait is over, and expires leases on time even when
// no command touches their partition.
void TaskService::ReapLoop() {
  std::unique_lock lock(waiters_mu_);
  while (!stopping_) {
    lock.unlock();
    int64_t next_expiry = INT64_MAX;
    for (auto& w : Writers()) {
      w->ExpireDue();
      next_expiry = std::min(next_expiry, w->next_expiry_ms());
    }
    lock.lock();
    auto now = std::chrono::steady_clock::now();
    auto next = now + std::chrono::milliseconds(
                          std::clamp<int64_t>(next_expiry - options_.clock->NowMillis(), 5, 1000));
    std::vector<std::shared_ptr<Waiter>> expired;
    std::erase_if(waiters_, [&](std::shared_ptr<Waiter>& w) {
      if (w->deadline <= now) {
        expired.push_back(std::move(w));
        return true;
      }
      next = std::min(next, w->deadline);
      return false;
    });
    if (!expired.empty()) {
      lock.unlock();
      for (auto& w : expired) w->done(CommandResult{Task{}, true});
      lock.lock();
      continue;
    }
    waiters_cv_.wait_until(lock, next);
  }
}

}  // namespace runlog::services
