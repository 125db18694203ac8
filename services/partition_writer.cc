#include "services/partition_writer.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "events/bytes.h"
#include "events/codec.h"
#include "events/payload.h"

namespace runlog::services {
namespace {

std::unexpected<Error> NotFound(const std::string& id) {
  return Fail(codes::kTaskNotFound, "no task " + id);
}

}  // namespace

PartitionWriter::PartitionWriter(Options options, ReadyListener on_ready)
    : options_(options),
      on_ready_(std::move(on_ready)),
      decider_({options.clock, options.ids, options.tools}),
      appender_({options.partition, options.log, options.on_append_latency,
                 [this](const ReadyCounts& ready) {
                   if (on_ready_) on_ready_(options_.partition, ready);
                 }}) {}

PartitionWriter::~PartitionWriter() { Stop(); }

namespace {
// Checkpoint entries: "t/" a live task that is not queued, "d/" an ended
// task remembered, "r/" a record of another aggregate, numbered; a queued
// task is two: "i/" its index entry, loaded at recovery, and "q/" its body,
// which recovery skips and reads one by one when a command needs it.
constexpr std::string_view kLive = "t/", kEnded = "d/", kRecord = "r/", kIndex = "i/",
                           kQueued = PartitionWriter::kSpilledBodies, kCounted = "c/";

// A tenant's counts: each counter's window start and count, 8 bytes LE each.
std::string CountedEntry(const Quotas::Slots& slots) {
  std::string out;
  for (const Quotas::Slot& slot : slots) {
    events::PutLittleEndian(out, static_cast<uint64_t>(slot.start), 8);
    events::PutLittleEndian(out, static_cast<uint64_t>(slot.count), 8);
  }
  return out;
}

// When queued `t` fails QUEUE_TIMEOUT unless claimed (limits.max_queue_seconds
// after it became ready), or 0.
int64_t QueueDeadline(const Task& t) {
  const int64_t seconds = events::LimitOf(t, "max_queue_seconds");
  return seconds > 0 ? t.queued_at_ms + seconds * 1000 : 0;
}

// An index entry: priority, queued_at_ms and queue deadline (8 bytes LE
// each), then the queue: tenant NUL type (both empty for executors).
std::string IndexEntry(const Task& t) {
  std::string out;
  events::PutLittleEndian(out, static_cast<uint64_t>(t.priority), 8);
  events::PutLittleEndian(out, static_cast<uint64_t>(t.queued_at_ms), 8);
  events::PutLittleEndian(out, static_cast<uint64_t>(QueueDeadline(t)), 8);
  const ReadyIndex::TenantType where = ReadyIndex::KeyOf(t);
  out += where.first;
  out.push_back('\0');
  out += where.second;
  return out;
}

std::string RecordKey(uint64_t n) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "r/%016llx", static_cast<unsigned long long>(n));
  return buf;
}
}  // namespace

Result<Task> PartitionWriter::ReadSpilled(const std::string& id) {
  auto entry = options_.snapshots->Get(options_.partition, std::string(kQueued) + id);
  if (!entry) {
    return Fail(codes::kUnavailable, "task " + id +
                                         " is spilled, and its checkpoint entry cannot be read: " +
                                         entry.error().message);
  }
  return events::TaskFromJson(*entry);
}

Result<Task*> PartitionWriter::Find(const std::string& id) {
  if (auto it = tasks_.find(id); it != tasks_.end()) return &it->second;
  if (options_.snapshots == nullptr || !ready_.Contains(id)) return nullptr;
  auto task = ReadSpilled(id);
  if (!task) return std::unexpected(task.error());
  // Rewritten, and spilled again, by the next checkpoint if it stays queued
  // (which is due even if no event follows: see wants_checkpoint()).
  dirty_.insert(id);
  read_back_.store(true);
  return &tasks_.emplace(id, std::move(*task)).first->second;
}

void PartitionWriter::CheckpointWritten(const SnapshotStore::Checkpoint& cp) {
  if (options_.snapshots == nullptr) return;
  std::lock_guard lock(mu_);
  for (const auto& [key, value] : cp.puts) {
    if (!key.starts_with(kQueued)) continue;
    const std::string id = key.substr(kQueued.size());
    // Queued, and unchanged since the checkpoint was prepared: its entry is current.
    auto it = tasks_.find(id);
    if (it != tasks_.end() && it->second.status == TaskStatus::kQueued && !dirty_.contains(id) &&
        ready_.Contains(id)) {
      tasks_.erase(it);
    }
  }
}

Status PartitionWriter::Recover(const events::Event& event) {
  if (!events::IsTaskEvent(event)) {
    if (events::IsStateRecord(event)) records_.push_back(events::EncodeEvent(event));
    return {};
  }
  auto it = tasks_.find(event.aggregate_id);
  if (it == tasks_.end()) {
    Task task;
    if (auto spilled = spilled_.find(event.aggregate_id); spilled != spilled_.end()) {
      auto read = ReadSpilled(event.aggregate_id);
      if (!read) return std::unexpected(read.error());
      task = std::move(*read);
      spilled_.erase(spilled);
    }
    it = tasks_.emplace(event.aggregate_id, std::move(task)).first;
  }
  const int64_t cost_before = it->second.cost_nanos;
  if (auto s = ApplyEvent(it->second, event); !s) return s;
  dirty_.insert(event.aggregate_id);
  if (const int64_t cost = it->second.cost_nanos - cost_before; cost != 0) {
    Quotas::Bump(counted_[event.tenant_id], Quotas::kCostPerMonth, event.timestamp_ms, cost);
    counted_dirty_.insert(event.tenant_id);
  }
  // This partition's share of the quotas' counts, as the live writer counted it.
  const bool worker_claim = event.type == "task.claimed" && !it->second.lease.key_id.empty();
  if (event.type == "task.created" || worker_claim) {
    Quotas::Bump(counted_[event.tenant_id],
                 worker_claim ? Quotas::kClaimsPerHour : Quotas::kTasksPerMonth,
                 event.timestamp_ms);
    counted_dirty_.insert(event.tenant_id);
  }
  if (IsTerminal(it->second.status)) {
    const std::string id = it->first;
    ended_.Add(std::move(it->second), options_.clock->NowMillis());
    tasks_.erase(it);
    // Ended long ago and not in the checkpoint: nothing to write or delete
    // for it (a whole-log read would otherwise mark every task ever).
    if (const Task * keyed; !ended_.Find(id, &keyed) && !checkpointed_live_.contains(id)) {
      dirty_.erase(id);
    }
  }
  return {};
}

Status PartitionWriter::LoadCheckpointEntry(
    std::string_view key, std::string_view value,
    const std::function<void(const events::Event&)>& other) {
  if (key.starts_with(kLive)) {
    auto task = events::TaskFromJson(value);
    if (!task) return std::unexpected(task.error());
    if (task->id != key.substr(kLive.size())) {
      return Fail(codes::kInvalidArgument, "a live task's entry holds another task");
    }
    checkpointed_live_.insert(task->id);
    std::string id = task->id;
    tasks_[std::move(id)] = std::move(*task);
    return {};
  }
  if (key.starts_with(kCounted)) {
    // Two counters before costs were counted, three since.
    if (value.size() != 32 && value.size() != 16 * Quotas::kCounters) {
      return Fail(codes::kInvalidArgument, "a count entry is malformed");
    }
    Quotas::Slots& slots = counted_[std::string(key.substr(kCounted.size()))];
    for (size_t i = 0; i < value.size() / 16; ++i) {
      slots[i] = {static_cast<int64_t>(events::GetLittleEndian(value.substr(16 * i, 8))),
                  static_cast<int64_t>(events::GetLittleEndian(value.substr(16 * i + 8, 8)))};
    }
    return {};
  }
  if (key.starts_with(kIndex)) {
    const auto nul = value.find('\0', 24);
    if (value.size() < 24 || nul == std::string_view::npos) {
      return Fail(codes::kInvalidArgument, "a queued task's index entry is malformed");
    }
    std::string id(key.substr(kIndex.size()));
    checkpointed_live_.insert(id);
    spilled_[std::move(id)] = {
        {std::string(value.substr(24, nul - 24)), std::string(value.substr(nul + 1))},
        static_cast<int64_t>(events::GetLittleEndian(value.substr(0, 8))),
        static_cast<int64_t>(events::GetLittleEndian(value.substr(8, 8))),
        static_cast<int64_t>(events::GetLittleEndian(value.substr(16, 8)))};
    return {};
  }
  if (key.starts_with(kEnded)) {
    if (auto s = ended_.Import(value, options_.clock->NowMillis()); !s) return s;
    // Past its retention it was not kept: the next checkpoint deletes it.
    if (const Task * keyed; !ended_.Find(std::string(key.substr(kEnded.size())), &keyed)) {
      dirty_.insert(std::string(key.substr(kEnded.size())));
    }
    return {};
  }
  if (key.starts_with(kRecord)) {
    auto event = events::DecodeEvent(value);
    if (!event) return std::unexpected(event.error());
    const std::string_view number = key.substr(kRecord.size());
    uint64_t n = 0;
    if (std::from_chars(number.data(), number.data() + number.size(), n, 16).ec != std::errc()) {
      return Fail(codes::kInvalidArgument, "a record entry's number is not hex");
    }
    next_record_ = std::max(next_record_, n + 1);
    if (other) other(*event);
    return {};
  }
  return Fail(codes::kInvalidArgument, "an unknown checkpoint entry " + std::string(key));
}

void PartitionWriter::Reset() {
  tasks_.clear();
  spilled_.clear();
  counted_.clear();
  counted_dirty_.clear();
  checkpointed_live_.clear();
  ended_ = EndedTasks();
  dirty_.clear();
  records_.clear();
  next_record_ = 0;
}

std::optional<SnapshotStore::Checkpoint> PartitionWriter::PrepareCheckpoint() {
  std::lock_guard lock(mu_);
  // Before recovery ends (cancelled, or failed) the state is partial and the
  // offset unknown; after a failed append the log may not hold what it says.
  if (!recovered_ || appender_.failed()) return std::nullopt;
  if (dirty_.empty() && records_.empty() && counted_dirty_.empty() &&
      decided_end_.load() == checkpointed_end_.load()) {
    return std::nullopt;
  }
  SnapshotStore::Checkpoint cp;
  cp.partition = options_.partition;
  cp.offset = decided_end_.load();
  for (const std::string& id : dirty_) {
    auto key = [&id](std::string_view kind) { return std::string(kind) + id; };
    auto it = tasks_.find(id);
    if (it != tasks_.end() && it->second.status == TaskStatus::kQueued &&
        options_.snapshots != nullptr) {
      cp.puts.emplace_back(key(kIndex), IndexEntry(it->second));
      cp.puts.emplace_back(key(kQueued), events::TaskToJson(it->second));
      cp.deletes.push_back(key(kLive));
      cp.deletes.push_back(key(kEnded));
      continue;
    }
    if (it != tasks_.end()) {
      cp.puts.emplace_back(key(kLive), events::TaskToJson(it->second));
      cp.deletes.push_back(key(kEnded));
    } else if (ready_.Contains(id)) {
      continue;  // spilled: its entries are current
    } else if (std::string entry = ended_.Export(id); !entry.empty()) {
      cp.puts.emplace_back(key(kEnded), std::move(entry));
      cp.deletes.push_back(key(kLive));
    } else {
      cp.deletes.push_back(key(kLive));
      cp.deletes.push_back(key(kEnded));
    }
    cp.deletes.push_back(key(kIndex));
    cp.deletes.push_back(key(kQueued));
  }
  for (const std::string& tenant : counted_dirty_) {
    cp.puts.emplace_back(std::string(kCounted) + tenant, CountedEntry(counted_[tenant]));
  }
  counted_dirty_.clear();
  for (std::string& record : records_)
    cp.puts.emplace_back(RecordKey(next_record_++), std::move(record));
  dirty_.clear();
  records_.clear();
  read_back_.store(false);
  checkpointed_end_.store(cp.offset);
  return cp;
}

PartitionWriter::Held PartitionWriter::HeldNow() {
  std::lock_guard lock(mu_);
  Held held;
  // A hash node per live task, with its key, and what the task holds.
  for (const auto& [id, task] : tasks_) {
    ++held.tasks[std::string(StatusName(task.status))];
    held.memory_bytes += events::TaskMemoryBytes(task) + 64 + static_cast<int64_t>(id.capacity());
  }
  int64_t queued_in_memory = 0;
  for (const auto& [id, task] : tasks_) queued_in_memory += task.status == TaskStatus::kQueued;
  held.tasks["queued"] += static_cast<int64_t>(ready_.size()) - queued_in_memory;  // spilled
  held.tasks["ended"] = static_cast<int64_t>(ended_.size());
  held.memory_bytes +=
      ended_.MemoryBytes() + ready_.MemoryBytes() + static_cast<int64_t>(dirty_.size() * 64);
  for (const std::string& r : records_) held.memory_bytes += static_cast<int64_t>(r.capacity());
  return held;
}

void PartitionWriter::CheckpointFailed(const SnapshotStore::Checkpoint& cp) {
  std::lock_guard lock(mu_);
  std::vector<std::string> records;
  for (const std::string& key : cp.deletes) {
    for (std::string_view kind : {kLive, kEnded, kIndex, kQueued}) {
      if (key.starts_with(kind)) dirty_.insert(key.substr(kind.size()));
    }
  }
  for (const auto& [key, value] : cp.puts) {
    for (std::string_view kind : {kLive, kEnded, kIndex, kQueued}) {
      if (key.starts_with(kind)) dirty_.insert(key.substr(kind.size()));
    }
    if (key.starts_with(kCounted)) counted_dirty_.insert(key.substr(kCounted.size()));
    if (key.starts_with(kRecord)) records.push_back(value);  // in their order, before newer ones
  }
  records_.insert(records_.begin(), records.begin(), records.end());
  checkpointed_end_.store(0);  // so the next checkpoint is due
}

std::string PartitionWriter::StateForTest() {
  std::lock_guard lock(mu_);
  // What is remembered depends on when it was last pruned: prune it now.
  std::vector<std::string> forgotten;
  ended_.ForgetOld(options_.clock->NowMillis(), &forgotten);
  for (std::string& id : forgotten) dirty_.insert(std::move(id));
  std::vector<std::string> lines;
  for (const auto& [id, task] : tasks_) lines.push_back("live " + events::TaskToJson(task));
  for (const auto& [tenant, slots] : counted_) {
    std::string line = "counted " + tenant;
    for (const Quotas::Slot& slot : slots) {
      line += " " + std::to_string(slot.start) + " " + std::to_string(slot.count);
    }
    lines.push_back(std::move(line));
  }
  for (const std::string& id : ready_.Ids()) {
    if (tasks_.contains(id)) continue;
    auto spilled = ReadSpilled(id);
    lines.push_back(spilled ? "live " + events::TaskToJson(*spilled) : "unreadable " + id);
  }
  for (const std::string& id : ended_.Ids()) lines.push_back("ended " + ended_.Export(id));
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

void PartitionWriter::FinishRecovery(uint64_t end_offset, uint64_t checkpoint_offset) {
  // Ready tasks in the order they were queued, spilled ones too; leases as recorded.
  std::vector<std::pair<const std::string*, Spilled>> queued;
  for (auto& [id, task] : tasks_) {
    if (task.status == TaskStatus::kQueued) {
      queued.push_back(
          {&id, {ReadyIndex::KeyOf(task), task.priority, task.queued_at_ms, QueueDeadline(task)}});
    }
    if (task.status == TaskStatus::kRunning && !task.lease.lease_id.empty()) {
      ready_.AddExpiry(task.lease.expires_at_ms, id);
      if (options_.quotas != nullptr && !task.lease.key_id.empty()) {
        options_.quotas->Hold(task.tenant_id, task.lease.worker_id);
      }
      if (options_.quotas != nullptr &&
          (task.lease.key_id.empty() || !task.concurrency_key.empty())) {
        options_.quotas->Run(task.tenant_id, task.lease.key_id.empty(), task.concurrency_key);
      }
    }
  }
  if (options_.quotas != nullptr) {
    for (const auto& [tenant, slots] : counted_) {
      for (size_t i = 0; i < slots.size(); ++i) {
        options_.quotas->Add(tenant, static_cast<Quotas::Counter>(i), slots[i].start,
                             slots[i].count);
      }
    }
  }
  for (const auto& [id, spilled] : spilled_) queued.push_back({&id, spilled});
  std::sort(queued.begin(), queued.end(), [](const auto& a, const auto& b) {
    return a.second.queued_at_ms != b.second.queued_at_ms
               ? a.second.queued_at_ms < b.second.queued_at_ms
               : *a.first < *b.first;
  });
  for (const auto& [id, p] : queued) {
    ready_.Add(*id, p.where, p.priority, p.queued_at_ms);
    if (p.deadline != 0) ready_.AddQueueDeadline(p.deadline, *id);
  }
  std::unordered_map<std::string, Spilled>().swap(spilled_);
  ended_.SortAfterImport();
  ready_.Publish();
  next_expiry_ms_.store(ready_.next_expiry_ms());
  appender_.set_acked_end(end_offset);
  decided_end_.store(end_offset);
  checkpointed_end_.store(checkpoint_offset);
  recovered_ = true;
  checkpointed_live_ = {};  // only recovery needs it
}

void PartitionWriter::Stop(bool moving) {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    moving_ = moving;
  }
  appender_.Stop();
}

void PartitionWriter::WithdrawQuotas() {
  if (options_.quotas == nullptr) return;
  std::lock_guard lock(mu_);
  for (const auto& [id, task] : tasks_) {
    if (task.status != TaskStatus::kRunning || task.lease.lease_id.empty()) continue;
    if (!task.lease.key_id.empty()) options_.quotas->Release(task.tenant_id, task.lease.worker_id);
    if (task.lease.key_id.empty() || !task.concurrency_key.empty()) {
      options_.quotas->EndRun(task.tenant_id, task.lease.key_id.empty(), task.concurrency_key);
    }
  }
  for (const auto& [tenant, slots] : counted_) {
    for (size_t i = 0; i < slots.size(); ++i) {
      options_.quotas->Add(tenant, static_cast<Quotas::Counter>(i), slots[i].start,
                           -slots[i].count);
    }
  }
}

void PartitionWriter::Submit(Command command, CommandCallback done, PrepareCallback prepare) {
  Run(&command, &done, &prepare);
}

void PartitionWriter::ExpireDue() {
  if (next_expiry_ms_.load() > options_.clock->NowMillis()) return;
  Run(nullptr, nullptr, nullptr);  // Run expires due leases before deciding anything
}

void PartitionWriter::Run(Command* command, CommandCallback* done, const PrepareCallback* prepare) {
  std::vector<Answer> now;
  std::optional<OrderedAppender::Refusal> refused;
  {
    std::lock_guard lock(mu_);
    if (stopping_ || appender_.failed()) {
      if (done != nullptr) {
        now.push_back({std::move(*done),
                       stopping_
                           ? (moving_ ? Fail(codes::kNotOwner,
                                             "partition " + std::to_string(options_.partition) +
                                                 " moved to another node; retry")
                                      : Fail(codes::kUnavailable, "the server is stopping"))
                           : Fail(codes::kWriterFailed,
                                  "the log failed under this writer; runlogd must restart")});
      }
    } else {
      std::vector<std::string> forgotten;
      ended_.ForgetOld(options_.clock->NowMillis(), &forgotten);
      for (std::string& id : forgotten) dirty_.insert(std::move(id));
      Batch batch;
      ExpireLeases(batch);
      if (command != nullptr) {
        auto result = Decide(*command, *prepare, batch);
        batch.answers.push_back({std::move(*done), std::move(result)});
      }
      if (batch.index_changed) ready_.Publish();
      next_expiry_ms_.store(ready_.next_expiry_ms());
      decided_end_.fetch_add(batch.events.size());
      refused =
          appender_.Add(batch.events, std::move(batch.answers), std::move(batch.made_ready), now);
    }
  }
  OrderedAppender::Deliver(now);
  if (refused) appender_.Refused(std::move(*refused));
}

Result<CommandResult> PartitionWriter::Decide(Command& command, const PrepareCallback& prepare,
                                              Batch& batch) {
  if (auto* c = std::get_if<CreateTask>(&command)) return Create(*c, prepare, batch);
  if (auto* c = std::get_if<ClaimTask>(&command)) return Claim(*c, prepare, batch);
  if (auto* c = std::get_if<RecordEvent>(&command)) {
    if (events::IsTaskEvent(c->event)) {
      return Fail(codes::kInvalidArgument, "a task's events are decided here, not recorded");
    }
    if (events::IsStateRecord(c->event)) records_.push_back(events::EncodeEvent(c->event));
    batch.events.push_back(std::move(c->event));
    return CommandResult{Task{}, true};
  }
  // The other commands name a live task; the decider decides.
  const bool cancel = std::holds_alternative<CancelTask>(command);
  const std::string& id = TargetOf(command);
  const std::string& tenant =
      std::visit([](const auto& c) -> const std::string& { return c.caller.tenant_id; }, command);
  auto live = Live(id, tenant, !cancel);
  if (!live) return std::unexpected(live.error());
  Task& task = **live;
  const events::Lease lease_before = task.lease;
  const int64_t cost_before = task.cost_nanos;
  Status decided = std::visit(
      [&](auto& c) -> Status {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, Heartbeat>)
          return decider_.Heartbeat(task, c, batch.events);
        if constexpr (std::is_same_v<T, AddArtifacts>) {
          return decider_.AddArtifacts(task, c, batch.events);
        }
        if constexpr (std::is_same_v<T, CompleteTask>) {
          return decider_.Complete(task, c, batch.events);
        }
        if constexpr (std::is_same_v<T, FailTask>) return decider_.Fail(task, c, batch.events);
        if constexpr (std::is_same_v<T, CancelTask>) return decider_.Cancel(task, c, batch.events);
        if constexpr (std::is_same_v<T, StartStep>)
          return decider_.StartStep(task, c, batch.events);
        if constexpr (std::is_same_v<T, FinishStep>) {
          return decider_.FinishStep(task, c, batch.events);
        }
        return Fail(codes::kInternal, "no such command");  // Create and Claim: above
      },
      command);
  Result<CommandResult> result =
      decided ? Result<CommandResult>(Answered(task, prepare)) : std::unexpected(decided.error());
  CountCost(task.tenant_id, task.cost_nanos - cost_before);
  Track(task, lease_before, batch);  // may retire the task: last
  return result;
}

Result<CommandResult> PartitionWriter::Create(const CreateTask& c, const PrepareCallback& prepare,
                                              Batch& batch) {
  auto conflict = [&] {
    return Fail(codes::kIdempotencyConflict,
                "Idempotency-Key " + c.idempotency_key +
                    " was used with a different request; use a new key for a new task");
  };
  auto found = Find(c.task_id);
  if (!found) return std::unexpected(found.error());
  if (*found != nullptr) {
    const Task& existing = **found;
    if (existing.tenant_id != c.caller.tenant_id || existing.request_hash != c.request_hash) {
      return conflict();
    }
    return Answered(existing, prepare, true);
  }
  if (const Task* keyed = nullptr; ended_.Find(c.task_id, &keyed)) {
    if (keyed == nullptr || keyed->tenant_id != c.caller.tenant_id ||
        keyed->request_hash != c.request_hash) {
      return conflict();
    }
    return Answered(*keyed, prepare, true);
  }
  // Counted, and refused past the plan's tasks a month.
  const int64_t now = options_.clock->NowMillis();
  const std::string& tenant = c.caller.tenant_id;
  if (options_.quotas != nullptr) {
    const Plan* plan = c.caller.plan.empty() ? nullptr : &PlanNamed(c.caller.plan);
    const int64_t limit = plan != nullptr ? plan->tasks_per_month : 0;
    if (plan != nullptr && plan->monthly_budget_nanos > 0) {
      if (const int64_t spent = options_.quotas->Count(tenant, Quotas::kCostPerMonth, now);
          spent >= plan->monthly_budget_nanos) {
        return BudgetExceeded(*plan, spent, now);
      }
    }
    if (!options_.quotas->TryCount(tenant, Quotas::kTasksPerMonth, now, limit)) {
      return QuotaExceeded(*plan, Quotas::kTasksPerMonth, limit, now);
    }
  }
  Task& task = tasks_[c.task_id];
  if (auto s = decider_.Create(task, c, batch.events); !s) {
    tasks_.erase(c.task_id);
    if (options_.quotas != nullptr) options_.quotas->Uncount(tenant, Quotas::kTasksPerMonth, now);
    return std::unexpected(s.error());
  }
  Quotas::Bump(counted_[tenant], Quotas::kTasksPerMonth, now);
  counted_dirty_.insert(tenant);
  CommandResult result = Answered(task, prepare);
  Track(task, events::Lease{}, batch);
  return result;
}

std::unexpected<Error> PartitionWriter::QuotaExceeded(const Plan& plan, Quotas::Counter counter,
                                                      int64_t limit, int64_t now) {
  const int64_t resets_at = Quotas::Window(counter, now).second;
  const int64_t retry_after = (resets_at - now + 999) / 1000;
  const char* what = counter == Quotas::kTasksPerMonth ? "tasks a month" : "claims an hour";
  return Fail(
      codes::kQuotaExceeded,
      "plan " + plan.name + " allows " + std::to_string(limit) + " " + what +
          "; the count starts again in " + std::to_string(retry_after) + " s",
      events::Payload()
          .Str("plan", plan.name)
          .Str("quota", counter == Quotas::kTasksPerMonth ? "tasks_per_month" : "claims_per_hour")
          .Int("limit", limit)
          .Int("resets_at_ms", resets_at)
          .Int("retry_after_seconds", retry_after)
          .Build());
}

std::unexpected<Error> PartitionWriter::BudgetExceeded(const Plan& plan, int64_t spent,
                                                       int64_t now) {
  const int64_t resets_at = Quotas::Window(Quotas::kCostPerMonth, now).second;
  const int64_t retry_after = (resets_at - now + 999) / 1000;
  return Fail(codes::kBudgetExceeded,
              "plan " + plan.name + "'s monthly budget of " +
                  events::UsdJson(plan.monthly_budget_nanos) + " USD is spent (" +
                  events::UsdJson(spent) + " USD this month); new tasks are refused until " +
                  "the month ends, in " + std::to_string(retry_after) + " s, or the plan changes",
              events::Payload()
                  .Str("plan", plan.name)
                  .Raw("monthly_budget_usd", events::UsdJson(plan.monthly_budget_nanos))
                  .Raw("spent_usd", events::UsdJson(spent))
                  .Int("resets_at_ms", resets_at)
                  .Int("retry_after_seconds", retry_after)
                  .Build());
}

void PartitionWriter::CountCost(const std::string& tenant, int64_t nanos) {
  if (nanos == 0) return;
  const int64_t now = options_.clock->NowMillis();
  if (options_.quotas != nullptr) {
    options_.quotas->Add(tenant, Quotas::kCostPerMonth,
                         Quotas::Window(Quotas::kCostPerMonth, now).first, nanos);
  }
  Quotas::Bump(counted_[tenant], Quotas::kCostPerMonth, now, nanos);
  counted_dirty_.insert(tenant);
}

Result<CommandResult> PartitionWriter::Claim(const ClaimTask& c, const PrepareCallback& prepare,
                                             Batch& batch) {
  // A queue whose concurrency key is at its limit is passed over.
  ReadyIndex::Blocked blocked;
  if (options_.quotas != nullptr) {
    blocked = [this](const ReadyIndex::TenantType& key) {
      const ReadyIndex::Queue q = ReadyIndex::Parse(key);
      return !q.concurrency_key.empty() && q.max_concurrency > 0 &&
             options_.quotas->KeyRuns(q.tenant, q.concurrency_key) >= q.max_concurrency;
    };
  }
  const std::string* best = c.executor && !c.queue.empty()
                                ? ready_.BestIn({"", c.queue})
                                : ready_.Best(c.caller.tenant_id, c.types, blocked);
  if (best == nullptr) return CommandResult{Task{}, true};
  auto found = Find(std::string(*best));
  if (!found) {
    // A spilled body that cannot be read must not block the queue behind it:
    // it leaves the index (the log still has the task; a restart rebuilds it).
    std::fprintf(stderr, "runlogd: %s\n", found.error().message.c_str());
    ready_.Remove(std::string(*best));
    return std::unexpected(found.error());
  }
  Task& task = **found;
  // A worker's claim counts against the plan's claims an hour and workers.
  const int64_t now = options_.clock->NowMillis();
  const std::string& tenant = c.caller.tenant_id;
  const bool worker = !c.caller.key_id.empty() && options_.quotas != nullptr;
  if (worker) {
    const Plan* plan = c.caller.plan.empty() ? nullptr : &PlanNamed(c.caller.plan);
    const int64_t claims = plan != nullptr ? plan->claims_per_hour : 0;
    const int64_t workers = plan != nullptr ? plan->workers : 0;
    if (!options_.quotas->TryCount(tenant, Quotas::kClaimsPerHour, now, claims)) {
      return QuotaExceeded(*plan, Quotas::kClaimsPerHour, claims, now);
    }
    if (!options_.quotas->TryHold(tenant, c.worker_id, workers)) {
      options_.quotas->Uncount(tenant, Quotas::kClaimsPerHour, now);
      const int64_t in_use = options_.quotas->WorkersInUse(tenant);
      return Fail(codes::kWorkerLimit,
                  "plan " + plan->name + " allows " + std::to_string(workers) +
                      " workers holding leases at once, and " + std::to_string(in_use) +
                      " do; retry when one finishes",
                  events::Payload()
                      .Str("plan", plan->name)
                      .Int("workers_in_use", in_use)
                      .Int("workers_limit", workers)
                      .Int("retry_after_seconds", 30)
                      .Build());
    }
  }
  // A run of the task's concurrency key, and an executor's run of its
  // tenant; none left: nothing is claimed here (the claim looks elsewhere).
  const bool executor_run = c.caller.key_id.empty();
  const bool runs = options_.quotas != nullptr && (executor_run || !task.concurrency_key.empty());
  auto undo_worker = [&] {
    if (!worker) return;
    options_.quotas->Uncount(tenant, Quotas::kClaimsPerHour, now);
    options_.quotas->Release(tenant, c.worker_id);
  };
  if (runs && !options_.quotas->TryRun(task.tenant_id, executor_run, task.concurrency_key,
                                       task.max_concurrency, c.tenant_running_limit)) {
    undo_worker();
    return CommandResult{Task{}, true};
  }
  const events::Lease lease_before = task.lease;
  if (auto s = decider_.Claim(task, c, batch.events); !s) {
    undo_worker();
    if (runs) options_.quotas->EndRun(task.tenant_id, executor_run, task.concurrency_key);
    return std::unexpected(s.error());
  }
  if (worker) {
    Quotas::Bump(counted_[tenant], Quotas::kClaimsPerHour, now);
    counted_dirty_.insert(tenant);
  }
  CommandResult result = Answered(task, prepare);
  Track(task, lease_before, batch);
  return result;
}

Result<Task*> PartitionWriter::Live(const std::string& id, const std::string& tenant,
                                    bool lease_command) {
  auto found = Find(id);
  if (!found) return std::unexpected(found.error());
  if (*found != nullptr) {
    if ((*found)->tenant_id != tenant) return NotFound(id);  // another tenant's: 404
    return *found;
  }
  std::optional<Task> ended = ended_.Stub(id, tenant);
  if (!ended) return NotFound(id);
  return EndedTaskError(*ended, lease_command);
}

void PartitionWriter::Track(Task& task, const events::Lease& before, Batch& batch) {
  dirty_.insert(task.id);
  // A lease that ended (or was replaced) frees its worker, and its run (an
  // executor's lease has no key: Claim).
  if (options_.quotas != nullptr && !before.lease_id.empty() &&
      before.lease_id != task.lease.lease_id) {
    if (!before.key_id.empty()) options_.quotas->Release(task.tenant_id, before.worker_id);
    if (before.key_id.empty() || !task.concurrency_key.empty()) {
      options_.quotas->EndRun(task.tenant_id, before.key_id.empty(), task.concurrency_key);
    }
  }
  const bool ready = task.status == TaskStatus::kQueued;
  if (ready && !ready_.Contains(task.id)) {
    ready_.Add(task);
    if (const int64_t deadline = QueueDeadline(task)) ready_.AddQueueDeadline(deadline, task.id);
    ++batch.made_ready[ReadyIndex::KeyOf(task)];
    batch.index_changed = true;
  } else if (!ready && ready_.Contains(task.id)) {
    ready_.Remove(task.id);
    batch.index_changed = true;
  }
  if (task.status == TaskStatus::kRunning && !task.lease.lease_id.empty() &&
      task.lease.expires_at_ms != before.expires_at_ms) {
    ready_.AddExpiry(task.lease.expires_at_ms, task.id);
  }
  if (IsTerminal(task.status)) {
    const std::string id = task.id;
    ended_.Add(std::move(task), options_.clock->NowMillis());
    tasks_.erase(id);
  }
}

void PartitionWriter::ExpireLeases(Batch& batch) {
  for (auto& [at, id] : ready_.TakeDue(options_.clock->NowMillis())) {
    auto it = tasks_.find(id);
    // Skip entries made stale by a heartbeat, a completion or a new claim.
    if (it == tasks_.end() || it->second.status != TaskStatus::kRunning ||
        it->second.lease.expires_at_ms != at) {
      continue;
    }
    const events::Lease lease_before = it->second.lease;
    decider_.ExpireLease(it->second, batch.events);
    Track(it->second, lease_before, batch);
  }
  for (auto& [at, id] : ready_.TakeDueDeadlines(options_.clock->NowMillis())) {
    // Skip entries made stale by a claim (or a claim and a requeue since).
    if (!ready_.Contains(id)) continue;
    auto found = Find(id);
    if (!found) {  // unreadable: tried again in a minute
      ready_.AddQueueDeadline(at + 60'000, id);
      continue;
    }
    if (*found == nullptr) continue;
    Task& task = **found;
    if (task.status != TaskStatus::kQueued || QueueDeadline(task) != at) continue;
    decider_.QueueTimeout(task, batch.events);
    Track(task, events::Lease{}, batch);
  }
}

CommandResult PartitionWriter::Answered(const Task& task, const PrepareCallback& prepare,
                                        bool replayed) {
  if (!prepare) return CommandResult{task, false, replayed};
  // Rendered here, on the caller's thread, and not on the log's thread, which
  // delivers every answer of the partition one after the other; and the
  // answer needs no copy of the whole task.
  prepare(task, replayed);
  Task slim;
  slim.id = task.id;
  slim.tenant_id = task.tenant_id;
  slim.status = task.status;
  return CommandResult{std::move(slim), false, replayed};
}

}  // namespace runlog::services
