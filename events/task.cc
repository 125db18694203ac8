#include "events/task.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>

#include "events/canonical_json.h"
#include "events/hashes.h"
#include "events/types.h"
#include "infra/base/json.h"

namespace runlog::events {
namespace {

constexpr std::string_view kStatusNames[] = {"created",   "planned", "queued",   "running",
                                             "succeeded", "failed",  "cancelled"};

// Canonical JSON text of a member, or "" when absent or null.
std::string RawMember(const json::Value& payload, std::string_view key) {
  const json::Value* v = json::FindSet(payload, key);
  std::string out;
  if (v != nullptr && !events::WriteCanonical(*v, &out)) out.clear();
  return out;
}

// Who runs each of `steps` (index `first` on): 'w' for a worker step without a
// recorded output (a replay's), else 'e'.
void AddRunners(Task& task, const json::Value& steps, int64_t first) {
  json::Document recorded;
  if (!task.recorded_outputs.empty()) (void)json::Parse(task.recorded_outputs, &recorded);
  for (rapidjson::SizeType i = 0; i < steps.Size(); ++i) {
    const bool worker =
        IsWorkerTool(json::String(steps[i], "tool")) &&
        (!recorded.IsObject() || json::Find(recorded, std::to_string(first + i)) == nullptr);
    task.step_runners.push_back(worker ? 'w' : 'e');
  }
}

// The end of a task: its hashes, and the implied step of a worker-run task.
template <class End>
void Finish(Task& task, const End& end, const Event& e) {
  task.step_hashes = end.step_hashes;
  task.task_hash = end.task_hash;
  task.replay = end.replay;
  if (task.executor || !task.steps.empty() || task.attempt == 0) return;
  std::string error_code;
  if constexpr (requires { end.error_code; }) error_code = end.error_code;
  StepRecord step =
      ImpliedAgentStep(task, task.status == TaskStatus::kSucceeded ? "succeeded" : "failed",
                       task.result, task.error, error_code);
  json::ScratchDocument scratch;
  if (json::Parse(end.step_hashes, &scratch.doc()) && scratch.doc().IsArray() &&
      scratch.doc().Size() == 1 && scratch.doc()[0].IsString()) {
    step.step_hash = scratch.doc()[0].GetString();
  }
  step.usage = end.usage.value_or(Usage{});
  task.tokens_used += step.usage.tokens;
  task.cost_nanos += step.usage.cost_nanos;
  step.finished_at_ms = e.timestamp_ms;
  step.duration_ms = step.started_at_ms != 0 ? e.timestamp_ms - step.started_at_ms : 0;
  task.steps.push_back(std::move(step));
}

std::unexpected<Error> Illegal(const Task& task, const events::Event& e) {
  return Fail(codes::kFailedPrecondition, "event " + e.type + " is not legal for task " + task.id +
                                              " in state " + std::string(StatusName(task.status)));
}

// Moves a task by one typed event; each call returns its refusal, or {} once
// the task's status, lease and fields are set (the sequence is the caller's).
struct Applier {
  Task& task;
  const Event& e;
  const TaskStatus s = task.status;

  Status Leased() const {
    return s == TaskStatus::kRunning && !task.lease.lease_id.empty() ? Status{} : Illegal(task, e);
  }
  void SetError(const std::string& error, const std::string& code) {
    task.error = error;
    task.error_code = error.empty() ? "" : code;
  }

  Status operator()(const TaskCreated& c) {
    if (task.sequence != 0) return Illegal(task, e);
    task.id = e.aggregate_id;
    task.tenant_id = e.tenant_id;
    task.type = c.type;
    task.agent_id = c.agent_id;
    task.input = c.input;
    task.limits = c.limits;
    task.max_attempts = c.max_attempts;
    task.priority = c.priority;
    task.concurrency_key = c.concurrency_key;
    task.max_concurrency = c.max_concurrency;
    task.idempotency_key = c.idempotency_key;
    task.request_hash = c.request_hash;
    task.replay_of_task_id = c.replay_of_task_id;
    task.replay_of = c.replay_of;
    task.recorded_outputs = c.recorded_outputs;
    task.status = TaskStatus::kCreated;
    task.created_at_ms = e.timestamp_ms;
    return {};
  }
  Status operator()(const TaskPlanned& c) {
    if (s != TaskStatus::kCreated || !task.plan_failures.empty()) return Illegal(task, e);
    task.plan = c.plan;
    task.limits = c.limits;
    task.executor = c.runner == "executor";
    json::ScratchDocument scratch;
    const json::Value* steps = nullptr;
    if (!c.plan.empty() && json::Parse(c.plan, &scratch.doc())) {
      steps = json::Find(scratch.doc(), "steps");
    }
    task.step_count = steps != nullptr && steps->IsArray() ? steps->Size() : 0;
    if (!task.executor && task.step_count == 1) {
      task.agent_step_input = RawMember((*steps)[0], "input");
      task.agent_step_version = json::String((*steps)[0], "tool_version", "1");
    }
    task.step_runners.clear();
    if (task.executor && steps != nullptr && steps->IsArray()) AddRunners(task, *steps, 1);
    task.status = TaskStatus::kPlanned;
    return {};
  }
  Status operator()(const TaskPlanRejected& c) {
    // At creation, or when a planner's plan fails validation.
    if ((s != TaskStatus::kCreated && s != TaskStatus::kRunning) || !task.plan_failures.empty()) {
      return Illegal(task, e);
    }
    task.plan_failures = c.failures;
    return {};
  }
  Status operator()(const TaskPlanExtended& c) {
    // A planner step's plan, validated, appended after it.
    json::Document steps, plan;
    if (!Leased() || !task.executor || task.plan.empty() || !json::Parse(c.steps, &steps) ||
        !steps.IsArray() || steps.Empty() || !json::Parse(task.plan, &plan) ||
        !json::Find(plan, "steps") || !plan["steps"].IsArray()) {
      return Illegal(task, e);
    }
    for (const json::Value& step : steps.GetArray()) {
      plan["steps"].PushBack(json::Value(step, plan.GetAllocator()), plan.GetAllocator());
    }
    task.plan = events::CanonicalText(plan);
    AddRunners(task, steps, task.step_count + 1);
    task.step_count += steps.Size();
    return {};
  }
  Status operator()(const TaskHandedOff& c) {
    // The next step goes to another runner (an external worker or the
    // executors): the lease ends and the task waits for that runner's claim.
    if (!Leased() || !task.executor || c.step_index != NextStep(task)) return Illegal(task, e);
    task.lease = Lease{};
    task.status = TaskStatus::kQueued;
    task.queued_at_ms = e.timestamp_ms;
    task.handed_off = true;
    return {};
  }
  Status operator()(const StepStarted& c) {
    const int64_t index = c.step_index;
    // Under a held lease, the next step, and not twice in one attempt.
    if (!Leased() || index < 1 || index > task.step_count || index != NextStep(task) ||
        (index <= static_cast<int64_t>(task.steps.size()) &&
         task.steps[index - 1].status == "running" &&
         task.steps[index - 1].attempt == task.attempt)) {
      return Illegal(task, e);
    }
    if (static_cast<int64_t>(task.steps.size()) < index) task.steps.resize(index);
    StepRecord& step = task.steps[index - 1];
    step = StepRecord{};
    step.index = index;
    step.tool = c.tool;
    step.tool_version = c.tool_version;
    step.input = c.input;
    step.status = "running";
    step.attempt = c.attempt;
    step.started_at_ms = e.timestamp_ms;
    if (c.lease_expires_at_ms != 0) task.lease.expires_at_ms = c.lease_expires_at_ms;
    return {};
  }
  Status operator()(const StepFinished& c) {
    const int64_t index = c.step_index;
    if (!Leased() || index < 1 || index > static_cast<int64_t>(task.steps.size()) ||
        task.steps[index - 1].status != "running" ||
        (c.status != "succeeded" && c.status != "failed")) {
      return Illegal(task, e);
    }
    StepRecord& step = task.steps[index - 1];
    step.status = c.status;
    step.output = c.output;
    step.error = c.error;
    step.error_code = c.error.empty() ? "" : c.error_code;
    step.step_hash = c.step_hash;
    step.usage = c.usage.value_or(Usage{});
    task.tokens_used += step.usage.tokens;
    task.cost_nanos += step.usage.cost_nanos;
    step.sandboxed = c.sandboxed;
    step.duration_ms = c.duration_ms;
    step.finished_at_ms = e.timestamp_ms;
    return {};
  }
  Status operator()(const TaskQueued&) {
    if (s != TaskStatus::kPlanned) return Illegal(task, e);
    task.status = TaskStatus::kQueued;
    task.queued_at_ms = e.timestamp_ms;
    if (task.first_queued_at_ms == 0) task.first_queued_at_ms = e.timestamp_ms;
    return {};
  }
  Status operator()(const TaskClaimed& c) {
    if (s != TaskStatus::kQueued) return Illegal(task, e);
    task.status = TaskStatus::kRunning;
    task.attempt = c.attempt;
    task.handed_off = false;
    task.claimed_at_ms = e.timestamp_ms;
    task.lease = Lease{c.lease_id, c.worker_id, c.key_id, c.lease_expires_at_ms, c.lease_ms};
    if (task.execution_started_at_ms == 0) task.execution_started_at_ms = e.timestamp_ms;
    return {};
  }
  Status operator()(const TaskHeartbeat& c) {
    if (!Leased() || task.lease.lease_id != c.lease_id) return Illegal(task, e);
    task.lease.expires_at_ms = c.lease_expires_at_ms;
    return {};
  }
  Status operator()(const TaskLeaseExpired& c) {
    if (!Leased() || task.lease.lease_id != c.lease_id) return Illegal(task, e);
    task.lease = Lease{};
    return {};
  }
  Status operator()(const TaskRetryScheduled& c) {
    if (s != TaskStatus::kRunning) return Illegal(task, e);
    task.lease = Lease{};
    task.retry_count = c.retry_count;
    SetError(c.error, c.error_code);
    task.status = TaskStatus::kPlanned;  // an explicit, counted step back; task.queued follows
    return {};
  }
  Status operator()(const TaskSucceeded& c) {
    if (!Leased()) return Illegal(task, e);
    task.last_lease = task.lease;
    task.status = TaskStatus::kSucceeded;
    task.result = c.result;
    SetError("", "");
    task.lease = Lease{};
    task.execution_finished_at_ms = e.timestamp_ms;
    Finish(task, c, e);
    return {};
  }
  Status operator()(const TaskFailed& c) {
    if (!task.lease.lease_id.empty()) task.last_lease = task.lease;
    task.status = TaskStatus::kFailed;
    SetError(c.error, c.error_code);
    task.failure = c.failure;
    task.lease = Lease{};
    task.execution_finished_at_ms = e.timestamp_ms;
    Finish(task, c, e);
    return {};
  }
  Status operator()(const TaskCancelRequested&) {
    task.cancel_requested = true;
    return {};
  }
  Status operator()(const TaskCancelled& c) {
    if (!task.cancel_requested) return Illegal(task, e);
    task.status = TaskStatus::kCancelled;
    SetError(c.error, c.error_code);
    task.lease = Lease{};
    task.execution_finished_at_ms = e.timestamp_ms;
    return {};
  }
  Status operator()(const TaskArtifactCreated& c) {
    // Made by the worker holding the lease (or with its complete).
    if (s != TaskStatus::kRunning || task.lease.lease_id.empty()) return Illegal(task, e);
    task.artifacts.push_back(c.artifact_id);
    return {};
  }
  Status operator()(const OutputCreated&) { return NotATaskEvent(); }
  Status operator()(const ArtifactApprovalDecided&) { return NotATaskEvent(); }
  Status operator()(const ArtifactDeleted&) { return NotATaskEvent(); }
  Status operator()(const KeyRegistered&) { return NotATaskEvent(); }
  Status operator()(const AgentRegistered&) { return NotATaskEvent(); }
  Status operator()(const AccountPlanSet&) { return NotATaskEvent(); }
  Status operator()(const WebhookRegistered&) { return NotATaskEvent(); }
  Status operator()(const WebhookRemoved&) { return NotATaskEvent(); }
  Status operator()(const WebhookAttempted&) { return NotATaskEvent(); }
  Status operator()(const WebhookRedeliverRequested&) { return NotATaskEvent(); }
  Status operator()(const TriggerCreated&) { return NotATaskEvent(); }
  Status operator()(const TriggerStateSet&) { return NotATaskEvent(); }
  Status operator()(const TriggerFired&) { return NotATaskEvent(); }
  Status operator()(const CheckpointSigned&) { return NotATaskEvent(); }
  Status NotATaskEvent() const {
    return Fail(codes::kInvalidArgument, "unknown task event type " + e.type);
  }
};
}  // namespace

int64_t LimitOf(const Task& task, std::string_view name) {
  // Canonical JSON has no spaces, and no key is another's suffix with quotes.
  std::string key;
  key.reserve(name.size() + 3);
  key.append("\"").append(name).append("\":");
  const size_t at = task.limits.find(key);
  if (at == std::string::npos) return 0;
  int64_t value = 0;
  const char* begin = task.limits.data() + at + key.size();
  const auto [end, ec] = std::from_chars(begin, task.limits.data() + task.limits.size(), value);
  return ec == std::errc() ? value : 0;
}

int64_t CostLimitOf(const Task& task) {
  constexpr std::string_view kKey = "\"max_cost_usd\":";
  const size_t at = task.limits.find(kKey);
  if (at == std::string::npos) return 0;
  double usd = 0;
  const char* begin = task.limits.data() + at + kKey.size();
  const auto [end, ec] = std::from_chars(begin, task.limits.data() + task.limits.size(), usd);
  return ec == std::errc() ? NanosOfUsd(usd) : 0;
}

int64_t NextStep(const Task& task) {
  int64_t n = 0;
  while (n < static_cast<int64_t>(task.steps.size()) && task.steps[n].status == "succeeded") ++n;
  return n + 1;
}

bool WorkerRunsNext(const Task& task) {
  if (!task.executor) return true;
  const int64_t next = NextStep(task);
  return next <= static_cast<int64_t>(task.step_runners.size()) &&
         task.step_runners[next - 1] == 'w';
}

std::string_view StatusName(TaskStatus status) { return kStatusNames[static_cast<int>(status)]; }

bool ParseStatus(std::string_view name, TaskStatus* status) {
  for (int i = 0; i < 7; ++i) {
    if (kStatusNames[i] == name) {
      *status = static_cast<TaskStatus>(i);
      return true;
    }
  }
  return false;
}

Status ApplyEvent(Task& task, const Event& e, const EventBody& body) {
  if (e.sequence != task.sequence + 1) {
    return Fail(codes::kFailedPrecondition, "event " + e.event_id + " has sequence " +
                                                std::to_string(e.sequence) + ", expected " +
                                                std::to_string(task.sequence + 1));
  }
  if (!std::holds_alternative<TaskCreated>(body) && IsTerminal(task.status)) {
    return Illegal(task, e);
  }
  if (auto s = std::visit(Applier{task, e}, body); !s) return s;
  task.sequence = e.sequence;
  return {};
}

Status ApplyEvent(Task& task, const Event& e) {
  auto body = Decode(e);
  if (!body) return std::unexpected(body.error());
  return ApplyEvent(task, e, *body);
}

std::string TaskToJson(const Task& t) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  // A field at its default (empty, 0, false, no JSON) is left out: TaskFromJson
  // reads it back as that default. Views are rewritten on every state change,
  // and most fields are empty most of the time.
  auto str = [&](const char* key, const std::string& v) {
    if (v.empty()) return;
    w.Key(key);
    w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
  };
  auto num = [&](const char* key, int64_t v) {
    if (v == 0) return;
    w.Key(key);
    w.Int64(v);
  };
  auto raw = [&](const char* key, const std::string& v) {
    if (v.empty()) return;
    w.Key(key);
    w.RawValue(v.data(), v.size(), rapidjson::kObjectType);
  };
  auto flag = [&](const char* key, bool v) {
    if (!v) return;
    w.Key(key);
    w.Bool(true);
  };
  w.StartObject();
  str("id", t.id);
  str("tenant_id", t.tenant_id);
  str("type", t.type);
  str("agent_id", t.agent_id);
  raw("input", t.input);
  raw("limits", t.limits);
  raw("plan", t.plan);
  w.Key("max_attempts");  // always: it reads back as 1 when left out
  w.Int64(t.max_attempts);
  num("priority", t.priority);
  str("concurrency_key", t.concurrency_key);
  num("max_concurrency", t.max_concurrency);
  str("idempotency_key", t.idempotency_key);
  str("request_hash", t.request_hash);
  str("replay_of_task_id", t.replay_of_task_id);
  str("status", std::string(StatusName(t.status)));
  num("sequence", static_cast<int64_t>(t.sequence));
  num("attempt", t.attempt);
  num("retry_count", t.retry_count);
  flag("cancel_requested", t.cancel_requested);
  str("lease_id", t.lease.lease_id);
  str("lease_worker_id", t.lease.worker_id);
  str("lease_key_id", t.lease.key_id);
  num("lease_expires_at_ms", t.lease.expires_at_ms);
  num("lease_ms", t.lease.duration_ms);
  str("last_lease_id", t.last_lease.lease_id);
  str("last_lease_worker_id", t.last_lease.worker_id);
  str("last_lease_key_id", t.last_lease.key_id);
  raw("result", t.result);
  raw("error", t.error);
  raw("failure", t.failure);
  num("created_at_ms", t.created_at_ms);
  num("queued_at_ms", t.queued_at_ms);
  num("first_queued_at_ms", t.first_queued_at_ms);
  num("execution_started_at_ms", t.execution_started_at_ms);
  num("execution_finished_at_ms", t.execution_finished_at_ms);
  num("claimed_at_ms", t.claimed_at_ms);
  raw("replay_of", t.replay_of);
  raw("recorded_outputs", t.recorded_outputs);
  flag("executor", t.executor);
  raw("plan_failures", t.plan_failures);
  num("step_count", t.step_count);
  raw("agent_step_input", t.agent_step_input);
  str("agent_step_version", t.agent_step_version);
  str("step_runners", t.step_runners);
  flag("handed_off", t.handed_off);
  num("tokens_used", t.tokens_used);
  num("cost_nanos", t.cost_nanos);
  raw("step_hashes", t.step_hashes);
  str("task_hash", t.task_hash);
  raw("replay", t.replay);
  if (!t.artifacts.empty()) {
    w.Key("artifacts");
    w.StartArray();
    for (const std::string& id : t.artifacts)
      w.String(id.data(), static_cast<rapidjson::SizeType>(id.size()));
    w.EndArray();
  }
  if (!t.steps.empty()) {
    w.Key("steps");
    w.StartArray();
    for (const StepRecord& step : t.steps) {
      w.StartObject();
      num("index", step.index);
      str("tool", step.tool);
      str("tool_version", step.tool_version);
      raw("input", step.input);
      str("status", step.status);
      raw("output", step.output);
      raw("error", step.error);
      str("error_code", step.error_code);
      str("step_hash", step.step_hash);
      num("attempt", step.attempt);
      raw("usage", UsageJson(step.usage));
      flag("sandboxed", step.sandboxed);
      num("started_at_ms", step.started_at_ms);
      num("finished_at_ms", step.finished_at_ms);
      num("duration_ms", step.duration_ms);
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

Result<Task> TaskFromJson(std::string_view text) {
  json::ScratchDocument scratch;
  json::Document& d = scratch.doc();
  if (!json::Parse(text, &d) || !d.IsObject()) {
    return Fail(codes::kInternal, "stored task is not a JSON object");
  }
  Task t;
  t.id = json::String(d, "id");
  t.tenant_id = json::String(d, "tenant_id");
  t.type = json::String(d, "type");
  t.agent_id = json::String(d, "agent_id");
  t.input = RawMember(d, "input");
  t.limits = RawMember(d, "limits");
  t.plan = RawMember(d, "plan");
  t.max_attempts = json::Int(d, "max_attempts", 1);
  t.priority = json::Int(d, "priority");
  t.concurrency_key = json::String(d, "concurrency_key");
  t.max_concurrency = json::Int(d, "max_concurrency");
  t.idempotency_key = json::String(d, "idempotency_key");
  t.request_hash = json::String(d, "request_hash");
  t.replay_of_task_id = json::String(d, "replay_of_task_id");
  if (!ParseStatus(json::String(d, "status"), &t.status)) {
    return Fail(codes::kInternal, "stored task has an unknown status");
  }
  t.sequence = static_cast<uint64_t>(json::Int(d, "sequence"));
  t.attempt = json::Int(d, "attempt");
  t.retry_count = json::Int(d, "retry_count");
  t.cancel_requested = json::Bool(d, "cancel_requested");
  t.lease = Lease{json::String(d, "lease_id"), json::String(d, "lease_worker_id"),
                  json::String(d, "lease_key_id"), json::Int(d, "lease_expires_at_ms"),
                  json::Int(d, "lease_ms")};
  t.last_lease = Lease{json::String(d, "last_lease_id"), json::String(d, "last_lease_worker_id"),
                       json::String(d, "last_lease_key_id"), 0, 0};
  t.result = RawMember(d, "result");
  t.error = RawMember(d, "error");
  t.failure = RawMember(d, "failure");
  if (const json::Value* error = json::FindSet(d, "error"))
    t.error_code = json::String(*error, "code");
  t.created_at_ms = json::Int(d, "created_at_ms");
  t.queued_at_ms = json::Int(d, "queued_at_ms");
  t.first_queued_at_ms = json::Int(d, "first_queued_at_ms");
  t.execution_started_at_ms = json::Int(d, "execution_started_at_ms");
  t.execution_finished_at_ms = json::Int(d, "execution_finished_at_ms");
  t.claimed_at_ms = json::Int(d, "claimed_at_ms");
  t.replay_of = RawMember(d, "replay_of");
  t.recorded_outputs = RawMember(d, "recorded_outputs");
  t.executor = json::Bool(d, "executor");
  t.plan_failures = RawMember(d, "plan_failures");
  t.step_count = json::Int(d, "step_count");
  t.agent_step_input = RawMember(d, "agent_step_input");
  t.agent_step_version = json::String(d, "agent_step_version");
  t.step_runners = json::String(d, "step_runners");
  t.handed_off = json::Bool(d, "handed_off");
  t.tokens_used = json::Int(d, "tokens_used");
  t.cost_nanos = json::Int(d, "cost_nanos");
  t.step_hashes = RawMember(d, "step_hashes");
  t.task_hash = json::String(d, "task_hash");
  t.replay = RawMember(d, "replay");
  if (const json::Value* ids = json::Find(d, "artifacts"); ids != nullptr && ids->IsArray()) {
    for (const json::Value& id : ids->GetArray()) {
      if (id.IsString()) t.artifacts.emplace_back(id.GetString(), id.GetStringLength());
    }
  }
  if (const json::Value* steps = json::Find(d, "steps"); steps != nullptr && steps->IsArray()) {
    for (const json::Value& v : steps->GetArray()) {
      StepRecord step;
      step.index = json::Int(v, "index");
      step.tool = json::String(v, "tool");
      step.tool_version = json::String(v, "tool_version");
      step.input = RawMember(v, "input");
      step.status = json::String(v, "status");
      step.output = RawMember(v, "output");
      step.error = RawMember(v, "error");
      step.error_code = json::String(v, "error_code");
      step.step_hash = json::String(v, "step_hash");
      step.attempt = json::Int(v, "attempt");
      if (const json::Value* usage = json::FindSet(v, "usage"); usage != nullptr) {
        step.usage = UsageOf(*usage);
      } else {
        step.usage.tokens = json::Int(v, "tokens");  // a checkpoint written before usage
      }
      step.sandboxed = json::Bool(v, "sandboxed");
      step.started_at_ms = json::Int(v, "started_at_ms");
      step.finished_at_ms = json::Int(v, "finished_at_ms");
      step.duration_ms = json::Int(v, "duration_ms");
      t.steps.push_back(std::move(step));
    }
  }
  return t;
}

int64_t TaskMemoryBytes(const Task& t) {
  // Strings longer than the small-string buffer own a heap block of their capacity.
  auto heap = [](const std::string& s) -> int64_t {
    return s.capacity() > 15 ? static_cast<int64_t>(s.capacity()) + 1 : 0;
  };
  int64_t bytes = sizeof(Task);
  for (const std::string* s : {&t.id,
                               &t.tenant_id,
                               &t.type,
                               &t.agent_id,
                               &t.input,
                               &t.limits,
                               &t.plan,
                               &t.idempotency_key,
                               &t.request_hash,
                               &t.replay_of_task_id,
                               &t.replay_of,
                               &t.recorded_outputs,
                               &t.plan_failures,
                               &t.agent_step_input,
                               &t.agent_step_version,
                               &t.step_runners,
                               &t.concurrency_key,
                               &t.lease.lease_id,
                               &t.lease.worker_id,
                               &t.lease.key_id,
                               &t.last_lease.lease_id,
                               &t.last_lease.worker_id,
                               &t.last_lease.key_id,
                               &t.result,
                               &t.error,
                               &t.error_code,
                               &t.failure,
                               &t.step_hashes,
                               &t.task_hash,
                               &t.replay}) {
    bytes += heap(*s);
  }
  bytes += static_cast<int64_t>(t.artifacts.capacity() * sizeof(std::string));
  for (const std::string& id : t.artifacts) bytes += heap(id);
  bytes += static_cast<int64_t>(t.steps.capacity() * sizeof(StepRecord));
  for (const StepRecord& s : t.steps) {
    for (const std::string* f : {&s.tool, &s.tool_version, &s.input, &s.status, &s.output, &s.error,
                                 &s.error_code, &s.step_hash, &s.usage.model}) {
      bytes += heap(*f);
    }
  }
  return bytes;
}

}  // namespace runlog::events
