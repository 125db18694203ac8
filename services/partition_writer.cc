#include "services/partition_writer.h"

#include <optional>

#include "events/canonical_json.h"
#include "events/hashes.h"
#include "events/payload.h"
#include "infra/base/json.h"
#include "services/plans.h"

namespace runlog::services {
namespace {

using events::Payload;

std::unexpected<Error> NotFound(const std::string& id) {
  return Fail(codes::kTaskNotFound, "no task " + id);
}

// A limit of the task (limits are a small canonical object), or 0 if unset.
int64_t LimitOf(const Task& t, std::string_view name) {
  json::ScratchDocument scratch;
  if (t.limits.empty() || !json::Parse(t.limits, &scratch.doc())) return 0;
  return json::Int(scratch.doc(), name);
}

// Text from outside the writer must be canonical JSON within the nesting limit
// before it goes into an event (the writer aborts on an event it cannot apply).
Status CheckCanonical(const std::string& text, const char* what) {
  if (text.empty()) return {};
  auto canonical = events::Canonicalize(text);
  if (!canonical || *canonical != text) {
    return Fail(runlog::codes::kInvalidArgument, std::string(what) + " is not canonical JSON");
  }
  return {};
}

// The running worker step of an executor-run plan, or 0.
int64_t RunningWorkerStep(const Task& t) {
  if (!t.executor || !events::WorkerRunsNext(t)) return 0;
  const int64_t index = events::NextStep(t);
  return index <= static_cast<int64_t>(t.steps.size()) && t.steps[index - 1].status == "running"
             ? index
             : 0;
}

// Milliseconds since step `index` of `t` started.
int64_t StepElapsedMs(const Task& t, int64_t index, const infra::Clock& clock) {
  return clock.NowMillis() - t.steps[index - 1].started_at_ms;
}

}  // namespace

std::unexpected<Error> EndedTaskError(const Task& t, bool lease_command) {
  if (lease_command && t.status == TaskStatus::kFailed && t.error_code == codes::kLeaseExpired) {
    return Fail(codes::kLeaseExpired, "the lease on task " + t.id + " expired");
  }
  if (lease_command && t.status == TaskStatus::kCancelled) {
    return Fail(codes::kTaskCancelled, "task " + t.id + " was cancelled");
  }
  return Fail(codes::kTaskTerminal,
              "task " + t.id + " is already " + std::string(StatusName(t.status)));
}

PartitionWriter::PartitionWriter(Options options, ReadyListener on_ready)
    : options_(options), on_ready_(std::move(on_ready)) {}

PartitionWriter::~PartitionWriter() { Stop(); }

Status PartitionWriter::Recover(const events::Event& event) {
  Task& task = tasks_[event.aggregate_id];
  if (auto s = ApplyEvent(task, event); !s) return s;
  if (IsTerminal(task.status)) Retire({event.aggregate_id});
  return {};
}

// How long an ended task is remembered: one with an idempotency key whole,
// for at least the promised 24 h; others as a stub for a minute, long enough
// for a late command to find it here, after which the API answers late
// commands from the task view (docs/decisions/0010-ended-tasks-leave-the-writer.md).
constexpr int64_t kEndedKeyedRetentionMs = 25LL * 3600 * 1000;
constexpr int64_t kEndedStubRetentionMs = 60 * 1000;

void PartitionWriter::Retire(const std::vector<std::string>& ids) {
  const int64_t now = options_.clock->NowMillis();
  for (const std::string& id : ids) {
    auto it = tasks_.find(id);
    if (it == tasks_.end() || !IsTerminal(it->second.status)) continue;
    Task& t = it->second;
    Unindex(t);
    Ended ended{t.tenant_id, t.status, t.error_code, t.execution_finished_at_ms, nullptr};
    const bool keyed = !t.idempotency_key.empty();
    // Recovery retires tasks that ended long ago: those are not kept at all.
    if (ended.ended_at_ms >= now - (keyed ? kEndedKeyedRetentionMs : kEndedStubRetentionMs)) {
      if (keyed) ended.keyed = std::make_unique<const Task>(std::move(t));
      (keyed ? keyed_order_ : stub_order_).emplace_back(ended.ended_at_ms, id);
      ended_[id] = std::move(ended);
    }
    tasks_.erase(it);
  }
}

void PartitionWriter::ForgetOldEnded(int64_t now_ms) {
  auto forget = [&](std::deque<std::pair<int64_t, std::string>>& order, int64_t retention) {
    while (!order.empty() && order.front().first < now_ms - retention) {
      auto it = ended_.find(order.front().second);
      if (it != ended_.end() && it->second.ended_at_ms == order.front().first) ended_.erase(it);
      order.pop_front();
    }
  };
  forget(keyed_order_, kEndedKeyedRetentionMs);
  forget(stub_order_, kEndedStubRetentionMs);
}

std::optional<Task> PartitionWriter::EndedStub(const std::string& id,
                                               const std::string& tenant) const {
  auto it = ended_.find(id);
  if (it == ended_.end() || it->second.tenant_id != tenant) return std::nullopt;
  Task t;
  t.id = id;
  t.tenant_id = it->second.tenant_id;
  t.status = it->second.status;
  t.error_code = it->second.error_code;
  return t;
}

void PartitionWriter::FinishRecovery(uint64_t end_offset) {
  // Ready tasks in log order, as they were queued; leases as recorded.
  std::vector<Task*> queued;
  for (auto& [id, task] : tasks_) {
    if (task.status == TaskStatus::kQueued) queued.push_back(&task);
    if (task.status == TaskStatus::kRunning && !task.lease.lease_id.empty()) {
      lease_expiry_.emplace(task.lease.expires_at_ms, id);
    }
  }
  std::sort(queued.begin(), queued.end(), [](const Task* a, const Task* b) {
    return a->queued_at_ms != b->queued_at_ms ? a->queued_at_ms < b->queued_at_ms : a->id < b->id;
  });
  for (Task* t : queued) Index(*t);
  PublishSummary();
  PublishNextExpiry();
  acked_end_.store(end_offset);
}

void PartitionWriter::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  std::unique_lock lock(pending_mu_);
  // Not only no append in flight: no OnAppended still delivering one (it reads
  // this writer's members until it ends).
  pending_cv_.wait(lock, [&] { return pending_.empty() && delivering_ == 0; });
}

namespace {
// An append the log refused at once calls back on the appending thread, which
// holds the writer's lock: its result waits here until the lock is released.
struct InlineAppend {
  const void* writer;
  std::optional<Result<std::vector<uint64_t>>> result;
};
thread_local InlineAppend* t_inline_append = nullptr;
}  // namespace

void PartitionWriter::Submit(Command command, CommandCallback done, PrepareCallback prepare) {
  Run(&command, &done, &prepare);
}

void PartitionWriter::ExpireDue() {
  if (next_expiry_ms_.load() > options_.clock->NowMillis()) return;
  Run(nullptr, nullptr, nullptr);  // Run expires due leases before deciding anything
}

void PartitionWriter::Run(Command* command, CommandCallback* done, const PrepareCallback* prepare) {
  std::vector<Answer> now;
  InlineAppend inline_append{this, std::nullopt};
  {
    std::lock_guard lock(mu_);
    Batch batch;
    if (stopping_ || failed_.load()) {
      if (done != nullptr) {
        now.push_back({std::move(*done),
                       stopping_ ? Fail(runlog::codes::kUnavailable, "the server is stopping")
                                 : Fail(codes::kWriterFailed,
                                        "the log failed under this writer; runlogd must restart")});
      }
    } else {
      ForgetOldEnded(options_.clock->NowMillis());
      ExpireLeases(batch);
      if (command != nullptr) Decide(*command, *done, *prepare, batch);
      if (!batch.made_ready.empty()) PublishSummary();
      PublishNextExpiry();
      // Answers hold copies: ended tasks can leave the live state now.
      Retire(batch.ended);
      t_inline_append = &inline_append;
      Flush(batch, now);
      t_inline_append = nullptr;
    }
  }
  Deliver(now);
  if (inline_append.result) OnAppended(std::move(*inline_append.result));
}

int64_t PartitionWriter::OldestReady(const std::string& tenant,
                                     const std::vector<std::string>& types) const {
  std::lock_guard lock(summary_mu_);
  int64_t best = INT64_MAX;
  if (types.empty()) {
    for (auto it = summary_.lower_bound({tenant, ""});
         it != summary_.end() && it->first.first == tenant; ++it) {
      best = std::min(best, it->second);
    }
  } else {
    for (const std::string& type : types) {
      if (auto it = summary_.find({tenant, type}); it != summary_.end()) {
        best = std::min(best, it->second);
      }
    }
  }
  return best;
}

void PartitionWriter::Decide(Command& command, CommandCallback& done,
                             const PrepareCallback& prepare, Batch& batch) {
  prepare_ = prepare ? &prepare : nullptr;  // for Answered
  Result<CommandResult> result = std::visit(
      [&](auto& c) -> Result<CommandResult> {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, CreateTask>) return Create(c, batch);
        if constexpr (std::is_same_v<T, ClaimTask>) return Claim(c, batch);
        if constexpr (std::is_same_v<T, Heartbeat>) return DoHeartbeat(c, batch);
        if constexpr (std::is_same_v<T, CompleteTask>) return Complete(c, batch);
        if constexpr (std::is_same_v<T, FailTask>) return DoFail(c, batch);
        if constexpr (std::is_same_v<T, CancelTask>) return Cancel(c, batch);
        if constexpr (std::is_same_v<T, StartStep>) return DoStartStep(c, batch);
        if constexpr (std::is_same_v<T, FinishStep>) return DoFinishStep(c, batch);
      },
      command);
  prepare_ = nullptr;
  batch.answers.push_back({std::move(done), std::move(result)});
}

CommandResult PartitionWriter::Answered(const Task& task, bool replayed) {
  if (prepare_ == nullptr) return CommandResult{task, false, replayed};
  // Rendered here, on the caller's thread, and not on the log's thread, which
  // delivers every answer of the partition one after the other; and the
  // answer needs no copy of the whole task.
  (*prepare_)(task, replayed);
  prepare_ = nullptr;
  Task slim;
  slim.id = task.id;
  slim.tenant_id = task.tenant_id;
  slim.status = task.status;
  return CommandResult{std::move(slim), false, replayed};
}

void PartitionWriter::Emit(Task& task, const std::string& tenant, std::string type,
                           std::string payload, Batch& batch) {
  events::Event e;
  e.type = std::move(type);
  e.event_id = options_.ids->Next("evt_");
  e.aggregate_id = task.id;
  e.tenant_id = tenant;
  e.sequence = task.sequence + 1;
  e.timestamp_ms = options_.clock->NowMillis();
  e.payload = std::move(payload);
  if (auto s = ApplyEvent(task, e); !s) {
    // The writer decided an event its own state machine refuses: a bug.
    std::fprintf(stderr, "runlogd: writer bug: %s\n", s.error().message.c_str());
    std::abort();
  }
  if (IsTerminal(task.status)) batch.ended.push_back(task.id);
  batch.events.push_back(std::move(e));
}

Result<CommandResult> PartitionWriter::Create(CreateTask& c, Batch& batch) {
  if (auto it = tasks_.find(c.task_id); it != tasks_.end()) {
    const Task& existing = it->second;
    if (existing.tenant_id != c.caller.tenant_id || existing.request_hash != c.request_hash) {
      return Fail(codes::kIdempotencyConflict,
                  "Idempotency-Key " + c.idempotency_key +
                      " was used with a different request; use a new key for a new task");
    }
    return Answered(existing, true);
  }
  if (auto it = ended_.find(c.task_id); it != ended_.end()) {
    const Task* keyed = it->second.keyed.get();
    if (keyed == nullptr || keyed->tenant_id != c.caller.tenant_id ||
        keyed->request_hash != c.request_hash) {
      return Fail(codes::kIdempotencyConflict,
                  "Idempotency-Key " + c.idempotency_key +
                      " was used with a different request; use a new key for a new task");
    }
    return Answered(*keyed, true);
  }
  Task& task = tasks_[c.task_id];
  task.id = c.task_id;
  Payload created;
  created.Str("type", c.type)
      .Raw("input", c.input)
      .Raw("limits", c.limits)
      .Int("max_attempts", c.max_attempts)
      .Int("priority", c.priority)
      .Raw("plan", c.plan);
  if (!c.agent_id.empty()) created.Str("agent_id", c.agent_id);
  if (!c.idempotency_key.empty()) {
    created.Str("idempotency_key", c.idempotency_key).Str("request_hash", c.request_hash);
  }
  if (!c.replay_of_task_id.empty()) {
    created.Str("replay_of_task_id", c.replay_of_task_id)
        .Raw("replay_of", c.replay_of)
        .Raw("recorded_outputs", c.recorded_outputs.empty() ? "{}" : c.recorded_outputs);
  }
  Emit(task, c.caller.tenant_id, "task.created", created.Build(), batch);
  if (!c.plan_failures.empty()) {
    Emit(task, c.caller.tenant_id, "task.plan_rejected",
         Payload().Raw("failures", c.plan_failures).Build(), batch);
    End(task, "",
        ErrorJson(codes::kPlanInvalid, "the plan failed validation; see plan_validation_failures"),
        "", 0, batch);
    return Answered(task);
  }
  // Without a plan the task is one step done by an external worker (tool "agent").
  const bool agent = c.plan.empty();
  Emit(task, c.caller.tenant_id, "task.planned",
       Payload()
           .Raw("plan", agent ? kAgentPlan : c.plan)
           .Raw("limits", c.limits)
           .Str("source", agent ? "agent" : c.source)
           .Str("runner", c.executor && !agent ? "executor" : "worker")
           .Build(),
       batch);
  if (task.executor && events::WorkerRunsNext(task)) {
    // A plan that opens with a worker step: its input may only name /input.
    HandOff(task, 1, batch);
    return Answered(task);
  }
  Emit(task, c.caller.tenant_id, "task.queued", "{}", batch);
  Index(task);
  ++batch.made_ready[IndexKey(task)];
  return Answered(task);
}

Result<CommandResult> PartitionWriter::Claim(const ClaimTask& c, Batch& batch) {
  const ReadyKey* best = nullptr;
  auto consider = [&](const std::set<ReadyKey>& keys) {
    if (!keys.empty() && (best == nullptr || *keys.begin() < *best)) best = &*keys.begin();
  };
  if (c.types.empty()) {
    for (auto it = ready_.lower_bound({c.caller.tenant_id, ""});
         it != ready_.end() && it->first.first == c.caller.tenant_id; ++it) {
      consider(it->second);
    }
  } else {
    for (const std::string& type : c.types) {
      if (auto it = ready_.find({c.caller.tenant_id, type}); it != ready_.end())
        consider(it->second);
    }
  }
  if (best == nullptr) return CommandResult{Task{}, true};
  Task& task = tasks_.at(best->task_id);
  Unindex(task);
  const int64_t expires = options_.clock->NowMillis() + c.lease_ms;
  Emit(task, task.tenant_id, "task.claimed",
       Payload()
           .Str("lease_id", options_.ids->Next("lease_"))
           .Str("worker_id", c.worker_id)
           .Str("key_id", c.caller.key_id)
           // A hand-off between runners continues the attempt; a retry starts one.
           .Int("attempt", task.handed_off ? task.attempt : task.attempt + 1)
           .Int("lease_expires_at_ms", expires)
           .Int("lease_ms", c.lease_ms)
           .Build(),
       batch);
  lease_expiry_.emplace(expires, task.id);
  if (task.executor && !c.executor) StartWorkerStep(task, expires, batch);
  PublishSummary();
  return Answered(task);
}

namespace {
// Step `index` of the task's plan, in `plan` (parsed here), or null.
const json::Value* PlanStep(const Task& t, int64_t index, json::Document& plan) {
  if (t.plan.empty() || !json::Parse(t.plan, &plan)) return nullptr;
  const json::Value* steps = json::Find(plan, "steps");
  if (steps == nullptr || !steps->IsArray() || index < 1 || index > steps->Size()) return nullptr;
  return &(*steps)[static_cast<rapidjson::SizeType>(index - 1)];
}

// The input of plan step `step` (number `index`) with its references resolved.
Result<std::string> StepInput(const Task& t, int64_t index, const json::Value* step) {
  const json::Value* input = step != nullptr ? json::FindSet(*step, "input") : nullptr;
  if (input == nullptr) return std::string("{}");
  return ResolveInput(*input, t, index);
}
}  // namespace

void PartitionWriter::StartWorkerStep(Task& t, int64_t expires, Batch& batch) {
  const int64_t index = events::NextStep(t);
  json::Document plan;
  const json::Value* step = PlanStep(t, index, plan);
  auto input = StepInput(t, index, step);  // resolved when it was handed off, so it resolves
  Emit(t, t.tenant_id, "step.started",
       Payload()
           .Int("step_index", index)
           .Str("tool", step != nullptr ? json::String(*step, "tool") : "agent")
           .Str("tool_version", step != nullptr ? json::String(*step, "tool_version", "1") : "1")
           .Raw("input", input ? *input : "{}")
           .Int("attempt", t.attempt)
           .Int("lease_expires_at_ms", expires)
           .Str("runner", "worker")
           .Build(),
       batch);
}

void PartitionWriter::HandOff(Task& t, int64_t index, Batch& batch) {
  const bool worker =
      index <= static_cast<int64_t>(t.step_runners.size()) && t.step_runners[index - 1] == 'w';
  if (worker) {
    json::Document plan;
    const json::Value* step = PlanStep(t, index, plan);
    if (auto input = StepInput(t, index, step); !input) {
      EndFailed(t, input.error().code, index, input.error().message,
                step != nullptr ? json::String(*step, "tool") : "", 0, batch);
      return;
    }
  }
  if (t.status == TaskStatus::kPlanned) {
    Emit(t, t.tenant_id, "task.queued", "{}", batch);
  } else {
    Emit(t, t.tenant_id, "task.handed_off",
         Payload().Int("step_index", index).Str("runner", worker ? "worker" : "executor").Build(),
         batch);
  }
  Index(t);
  ++batch.made_ready[IndexKey(t)];
}

// The task whose lease `ref` names, if the caller holds it now.
Result<Task*> PartitionWriter::HeldLease(const Caller& caller, const LeaseRef& ref, Batch& batch) {
  auto it = tasks_.find(ref.task_id);
  if (it == tasks_.end()) {
    std::optional<Task> ended = EndedStub(ref.task_id, caller.tenant_id);
    if (!ended) return NotFound(ref.task_id);
    return EndedTaskError(*ended, true);
  }
  if (it->second.tenant_id != caller.tenant_id) return NotFound(ref.task_id);
  Task& task = it->second;
  if (task.status == TaskStatus::kRunning && !task.lease.lease_id.empty() &&
      task.lease.expires_at_ms <= options_.clock->NowMillis()) {
    ExpireLease(task, batch);  // its time is up even if the timer has not fired yet
  }
  if (IsTerminal(task.status)) return EndedTaskError(task, true);
  if (const bool worker = events::WorkerRunsNext(task); worker == caller.key_id.empty()) {
    return Fail(codes::kLeaseMismatch, worker ? "task " + task.id + "'s next step is a worker's"
                                              : "task " + task.id + "'s next step is runlog's own");
  }
  const Lease& lease = task.lease;
  const bool holder = ref.lease_id.empty()
                          ? lease.key_id == caller.key_id && lease.worker_id == ref.worker_id
                          : lease.lease_id == ref.lease_id;
  if (task.status != TaskStatus::kRunning || lease.lease_id.empty()) {
    return Fail(codes::kLeaseExpired, "task " + task.id + " holds no lease now; claim again");
  }
  if (!holder) {
    return Fail(codes::kLeaseMismatch,
                "the lease on task " + task.id + " belongs to another claim");
  }
  return &task;
}

Result<CommandResult> PartitionWriter::DoHeartbeat(const Heartbeat& c, Batch& batch) {
  auto task = HeldLease(c.caller, c.lease, batch);
  if (!task) return std::unexpected(task.error());
  Task& t = **task;
  const int64_t expires = options_.clock->NowMillis() + t.lease.duration_ms;
  Emit(t, t.tenant_id, "task.heartbeat",
       Payload().Str("lease_id", t.lease.lease_id).Int("lease_expires_at_ms", expires).Build(),
       batch);
  lease_expiry_.emplace(expires, t.id);
  return Answered(t);
}

Result<CommandResult> PartitionWriter::Complete(const CompleteTask& c, Batch& batch) {
  auto task = HeldLease(c.caller, c.lease, batch);
  if (!task) return std::unexpected(task.error());
  Task& t = **task;
  if (const int64_t index = RunningWorkerStep(t); index > 0) {  // a worker step of a plan
    if (auto s = CheckCanonical(c.result, "the result"); !s) return std::unexpected(s.error());
    AfterStep(t, index,
              {true, c.result, "", "", c.tokens, StepElapsedMs(t, index, *options_.clock), false},
              batch);
    return Answered(t);
  }
  const int64_t max_tokens = LimitOf(t, "max_tokens");
  if (max_tokens > 0 && t.tokens_used + c.tokens > max_tokens) {
    const std::string message = "the step used " + std::to_string(t.tokens_used + c.tokens) +
                                " tokens; max_tokens is " + std::to_string(max_tokens);
    EndFailed(t, codes::kTokenLimit, 1, message, "agent", c.tokens, batch);
    return Answered(t);
  }
  End(t, c.result, "", "", c.tokens, batch);
  return Answered(t);
}

Result<CommandResult> PartitionWriter::DoFail(const FailTask& c, Batch& batch) {
  auto task = HeldLease(c.caller, c.lease, batch);
  if (!task) return std::unexpected(task.error());
  Task& t = **task;
  if (c.retryable && t.attempt < t.max_attempts) {
    Requeue(t, "retryable_failure", c.error, batch);
  } else if (const int64_t index = RunningWorkerStep(t); index > 0) {  // a worker step of a plan
    json::ScratchDocument scratch;
    (void)json::Parse(c.error, &scratch.doc());
    AfterStep(
        t, index,
        {false, "", json::String(scratch.doc(), "code"), json::String(scratch.doc(), "message"), 0,
         StepElapsedMs(t, index, *options_.clock), false},
        batch);
  } else {
    End(t, "", c.error, c.failure, 0, batch);
  }
  return Answered(t);
}

Result<CommandResult> PartitionWriter::Cancel(const CancelTask& c, Batch& batch) {
  auto it = tasks_.find(c.task_id);
  if (it == tasks_.end() || it->second.tenant_id != c.caller.tenant_id) {
    std::optional<Task> ended = EndedStub(c.task_id, c.caller.tenant_id);
    if (!ended) return NotFound(c.task_id);
    return EndedTaskError(*ended, false);
  }
  Task& t = it->second;
  const std::string revoked = t.lease.lease_id;
  Unindex(t);
  Emit(t, t.tenant_id, "task.cancel_requested",
       Payload().Str("reason", c.reason).Str("requested_by", c.caller.key_id).Build(), batch);
  Payload cancelled;
  cancelled.Raw("error", ErrorJson(codes::kCancelled, c.reason.empty() ? "cancelled" : c.reason));
  if (!revoked.empty()) cancelled.Str("revoked_lease_id", revoked);
  Emit(t, t.tenant_id, "task.cancelled", cancelled.Build(), batch);
  PublishSummary();
  return Answered(t);
}

void PartitionWriter::Requeue(Task& t, const std::string& reason, const std::string& error,
                              Batch& batch) {
  Emit(t, t.tenant_id, "task.retry_scheduled",
       Payload()
           .Str("reason", reason)
           .Int("next_attempt", t.attempt + 1)
           .Int("retry_count", t.retry_count + 1)
           .Raw("error", error)
           .Build(),
       batch);
  Emit(t, t.tenant_id, "task.queued", "{}", batch);
  Index(t);
  ++batch.made_ready[IndexKey(t)];
}

void PartitionWriter::ExpireLeases(Batch& batch) {
  const int64_t now = options_.clock->NowMillis();
  while (!lease_expiry_.empty() && lease_expiry_.begin()->first <= now) {
    auto [at, id] = *lease_expiry_.begin();
    lease_expiry_.erase(lease_expiry_.begin());
    auto it = tasks_.find(id);
    // Skip entries made stale by a heartbeat, a completion or a new claim.
    if (it == tasks_.end() || it->second.status != TaskStatus::kRunning ||
        it->second.lease.expires_at_ms != at) {
      continue;
    }
    ExpireLease(it->second, batch);
  }
}

void PartitionWriter::ExpireLease(Task& t, Batch& batch) {
  Emit(t, t.tenant_id, "task.lease_expired",
       Payload().Str("lease_id", t.lease.lease_id).Int("attempt", t.attempt).Build(), batch);
  const std::string error = ErrorJson(codes::kLeaseExpired, "the worker's lease expired");
  if (t.attempt < t.max_attempts) {
    Requeue(t, events::WorkerRunsNext(t) ? "lease_expired" : "executor_lost", error, batch);
  } else {
    End(t, "", error, "", 0, batch);
  }
}

Result<CommandResult> PartitionWriter::DoStartStep(const StartStep& c, Batch& batch) {
  if (auto s = CheckCanonical(c.input, "the step input"); !s) return std::unexpected(s.error());
  auto task = HeldLease(c.caller, c.lease, batch);
  if (!task) return std::unexpected(task.error());
  Task& t = **task;
  if (const int64_t next = events::NextStep(t); c.step_index != next || next > t.step_count) {
    return Fail(codes::kStepOutOfOrder, "task " + t.id + " runs step " + std::to_string(next) +
                                            " next, not step " + std::to_string(c.step_index));
  }
  const int64_t expires = options_.clock->NowMillis() + c.lease_ms;
  Emit(t, t.tenant_id, "step.started",
       Payload()
           .Int("step_index", c.step_index)
           .Str("tool", c.tool)
           .Str("tool_version", c.tool_version)
           .Raw("input", c.input)
           .Int("attempt", t.attempt)
           .Int("lease_expires_at_ms", expires)
           .Build(),
       batch);
  lease_expiry_.emplace(expires, t.id);
  return Answered(t);
}

Result<CommandResult> PartitionWriter::DoFinishStep(const FinishStep& c, Batch& batch) {
  if (auto s = CheckCanonical(c.output, "the step output"); !s) return std::unexpected(s.error());
  auto task = HeldLease(c.caller, c.lease, batch);
  if (!task) return std::unexpected(task.error());
  Task& t = **task;
  if (c.step_index < 1 || c.step_index > static_cast<int64_t>(t.steps.size()) ||
      t.steps[c.step_index - 1].status != "running") {
    return Fail(codes::kStepOutOfOrder,
                "step " + std::to_string(c.step_index) + " of task " + t.id + " is not running");
  }
  AfterStep(t, c.step_index,
            {c.ok, c.output, c.error_code, c.error_message, c.tokens, c.duration_ms, c.sandboxed},
            batch);
  return Answered(t);
}

void PartitionWriter::AfterStep(Task& t, int64_t index, StepEnd end, Batch& batch) {
  events::StepRecord step = t.steps[index - 1];
  // A planner's plan is checked like a given one; its steps follow the plan step.
  std::string plan, plan_failures;
  if (end.ok && step.tool == "plan") {
    json::Document returned;
    Result<PlanCheck> checked =
        options_.tools == nullptr
            ? Fail(codes::kPlanInvalid, "this runlogd cannot check plans")
            : (json::Parse(end.output, &returned)
                   ? CheckPlan(returned, LimitOf(t, "max_steps"), *options_.tools, {}, index + 1)
                   : Fail(codes::kValidationError, "the plan is not JSON"));
    if (!checked) {
      plan_failures = PlanFailureJson(checked.error().code, checked.error().message);
    } else if (!checked->failures.empty()) {
      plan_failures = checked->failures;
    } else {
      plan = checked->plan;
      end.output = plan;
    }
    if (!plan_failures.empty()) {
      end.ok = false;
      end.error_code = codes::kPlanInvalid;
      end.error_message = "the planner's plan failed validation; see plan_validation_failures";
    }
  }
  step.status = end.ok ? "succeeded" : "failed";
  step.output = end.output;
  step.error_code = end.ok ? "" : end.error_code;
  Emit(t, t.tenant_id, "step.finished",
       Payload()
           .Int("step_index", index)
           .Str("status", step.status)
           .Raw("output", end.output)
           .Raw("error", end.ok ? "" : ErrorJson(end.error_code, end.error_message))
           .Raw("usage", Payload().Int("tokens", end.tokens).Build())
           .Int("duration_ms", end.duration_ms)
           .Bool("sandboxed", end.sandboxed)
           .Str("step_hash", events::StepHash(step))
           .Build(),
       batch);
  const int64_t max_tokens = LimitOf(t, "max_tokens");
  if (!end.ok) {
    if (!plan_failures.empty()) {
      Emit(t, t.tenant_id, "task.plan_rejected", Payload().Raw("failures", plan_failures).Build(),
           batch);
    }
    EndFailed(t, end.error_code, index, end.error_message, step.tool, 0, batch);
  } else if (max_tokens > 0 && t.tokens_used > max_tokens) {
    const std::string message = "the plan used " + std::to_string(t.tokens_used) +
                                " tokens; max_tokens is " + std::to_string(max_tokens);
    EndFailed(t, codes::kTokenLimit, index, message, step.tool, 0, batch);
  } else {
    if (!plan.empty()) Emit(t, t.tenant_id, "task.plan_extended", plan, batch);
    if (index == t.step_count) {
      End(t, end.output, "", "", 0, batch);
    } else if (t.step_runners[index - 1] == 'w' || t.step_runners[index] == 'w') {
      HandOff(t, index + 1, batch);  // executors run consecutive built-in steps themselves
    }
  }
}

void PartitionWriter::EndFailed(Task& t, const std::string& code, int64_t index,
                                const std::string& message, const std::string& step, int64_t tokens,
                                Batch& batch) {
  End(t, "", ErrorJson(code, message), FailureJson(code, index, message, step), tokens, batch);
}

void PartitionWriter::End(Task& t, const std::string& result, const std::string& error,
                          const std::string& failure, int64_t tokens, Batch& batch) {
  const bool succeeded = error.empty();
  std::string error_code;
  if (!succeeded) {
    json::ScratchDocument scratch;
    if (json::Parse(error, &scratch.doc())) error_code = json::String(scratch.doc(), "code");
  }
  // A worker-run task's one step is implied by its claim and its end.
  std::vector<std::string> mine;
  if (!t.executor && t.steps.empty() && t.attempt > 0) {
    mine.push_back(events::StepHash(events::ImpliedAgentStep(t, succeeded ? "succeeded" : "failed",
                                                             result, error, error_code)));
  } else {
    for (const events::StepRecord& s : t.steps) {
      if (!s.step_hash.empty()) mine.push_back(s.step_hash);
    }
  }
  const std::string step_hashes = events::HashListJson(mine);
  const std::string task_hash =
      events::TaskHash(t, succeeded ? "succeeded" : "failed", step_hashes, error_code);
  Payload p;
  p.Raw("step_hashes", step_hashes).Str("task_hash", task_hash);
  if (succeeded) {
    p.Raw("result", result.empty() ? "{}" : result);
  } else {
    p.Raw("error", error).Raw("failure", failure);
  }
  if (!t.executor) p.Raw("usage", Payload().Int("tokens", tokens).Build());
  if (!t.replay_of.empty()) {
    json::Document of;
    (void)json::Parse(t.replay_of, &of);
    int64_t diverged = 0;
    const json::Value* theirs = json::Find(of, "step_hashes");
    const size_t n = theirs != nullptr && theirs->IsArray() ? theirs->Size() : 0;
    for (size_t i = 0; i < std::max(n, mine.size()) && diverged == 0; ++i) {
      if (i >= n || i >= mine.size() || !(*theirs)[i].IsString() ||
          mine[i] != (*theirs)[i].GetString()) {
        diverged = static_cast<int64_t>(i) + 1;
      }
    }
    Payload replay;
    replay.Str("of_task_id", t.replay_of_task_id)
        .Bool("matches", task_hash == json::String(of, "task_hash"))
        .Str("original_task_hash", json::String(of, "task_hash"));
    if (diverged > 0) {
      replay.Int("first_divergent_step", diverged);
    } else {
      replay.Raw("first_divergent_step", "");
    }
    p.Raw("replay", replay.Build());
  }
  Emit(t, t.tenant_id, succeeded ? "task.succeeded" : "task.failed", p.Build(), batch);
}

PartitionWriter::TenantType PartitionWriter::IndexKey(const Task& t) {
  return events::WorkerRunsNext(t) ? TenantType{t.tenant_id, t.type} : TenantType{};
}

void PartitionWriter::PublishNextExpiry() {
  next_expiry_ms_.store(lease_expiry_.empty() ? INT64_MAX : lease_expiry_.begin()->first);
}

void PartitionWriter::Index(Task& t) {
  ReadyKey key{-t.priority, next_ready_seq_++, t.id};
  ready_[IndexKey(t)].insert(key);
  ready_key_[t.id] = key;
}

void PartitionWriter::Unindex(const Task& t) {
  auto it = ready_key_.find(t.id);
  if (it == ready_key_.end()) return;
  auto set = ready_.find(IndexKey(t));
  set->second.erase(it->second);
  if (set->second.empty()) ready_.erase(set);
  ready_key_.erase(it);
}

void PartitionWriter::PublishSummary() {
  std::map<TenantType, int64_t> summary;
  for (const auto& [tenant_type, keys] : ready_) {
    summary[tenant_type] = tasks_.at(keys.begin()->task_id).queued_at_ms;
  }
  std::lock_guard lock(summary_mu_);
  summary_.swap(summary);
}

void PartitionWriter::Flush(Batch& batch, std::vector<Answer>& now) {
  std::unique_lock lock(pending_mu_);
  if (batch.events.empty()) {
    if (pending_.empty()) {
      now = std::move(batch.answers);
    } else {
      pending_.push_back(Pending{std::move(batch.answers), false, {}});
    }
    return;
  }
  pending_.push_back(
      Pending{std::move(batch.answers), true, batch.made_ready, std::chrono::steady_clock::now()});
  lock.unlock();
  options_.log->AppendAsync(options_.partition, batch.events,
                            [this](Result<std::vector<uint64_t>> r) {
                              if (t_inline_append != nullptr && t_inline_append->writer == this) {
                                t_inline_append->result = std::move(r);
                                return;
                              }
                              OnAppended(std::move(r));
                            });
}

void PartitionWriter::OnAppended(Result<std::vector<uint64_t>> result) {
  if (result) {
    acked_end_.store(result->back() + 1);
  } else {
    failed_.store(true);
  }
  std::vector<Pending> ready;
  {
    std::lock_guard lock(pending_mu_);
    ++delivering_;
    ready.push_back(std::move(pending_.front()));  // this append's batch
    pending_.pop_front();
    while (!pending_.empty() && !pending_.front().has_append) {
      ready.push_back(std::move(pending_.front()));
      pending_.pop_front();
    }
  }
  if (options_.on_append_latency) {
    options_.on_append_latency(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - ready.front().appended_at)
            .count());
  }
  ReadyCounts made_ready;
  for (Pending& p : ready) {
    if (!result) {
      for (Answer& a : p.answers) {
        a.result =
            Fail(codes::kWriterFailed, "the log append failed (" + result.error().message +
                                           "); the outcome is unknown and runlogd must restart");
      }
    }
    for (const auto& [tenant_type, n] : p.made_ready) made_ready[tenant_type] += n;
    Deliver(p.answers);
  }
  if (!made_ready.empty() && result && on_ready_) on_ready_(options_.partition, made_ready);
  std::lock_guard lock(pending_mu_);
  --delivering_;
  if (pending_.empty() && delivering_ == 0) pending_cv_.notify_all();
}

void PartitionWriter::Deliver(std::vector<Answer>& answers) {
  for (Answer& a : answers) a.done(std::move(a.result));
}

}  // namespace runlog::services
