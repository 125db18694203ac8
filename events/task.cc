#include "events/task.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "events/canonical_json.h"
#include "events/hashes.h"
#include "infra/base/json.h"

namespace runlog::events {
namespace {

constexpr std::string_view kStatusNames[] = {"created",   "planned", "queued",   "running",
                                             "succeeded", "failed",  "cancelled"};

// Canonical JSON text of a member, or "" when absent or null.
std::string Raw(const json::Value& payload, std::string_view key) {
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
void Finish(Task& task, const json::Value& p, const Event& e) {
  task.step_hashes = Raw(p, "step_hashes");
  task.task_hash = json::String(p, "task_hash");
  task.replay = Raw(p, "replay");
  if (task.executor || !task.steps.empty() || task.attempt == 0) return;
  const json::Value* error = json::FindSet(p, "error");
  StepRecord step = ImpliedAgentStep(
      task, task.status == TaskStatus::kSucceeded ? "succeeded" : "failed", task.result, task.error,
      error != nullptr ? json::String(*error, "code") : "");
  const json::Value* hashes = json::Find(p, "step_hashes");
  if (hashes != nullptr && hashes->IsArray() && hashes->Size() == 1 && (*hashes)[0].IsString()) {
    step.step_hash = (*hashes)[0].GetString();
  }
  const json::Value* usage = json::FindSet(p, "usage");
  step.tokens = usage != nullptr ? json::Int(*usage, "tokens") : 0;
  task.tokens_used += step.tokens;
  step.finished_at_ms = e.timestamp_ms;
  step.duration_ms = step.started_at_ms != 0 ? e.timestamp_ms - step.started_at_ms : 0;
  task.steps.push_back(std::move(step));
}

std::unexpected<Error> Illegal(const Task& task, const events::Event& e) {
  return Fail(codes::kFailedPrecondition, "event " + e.type + " is not legal for task " + task.id +
                                              " in state " + std::string(StatusName(task.status)));
}

}  // namespace

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

Status ApplyEvent(Task& task, const events::Event& e) {
  if (e.schema_version != 1) {
    return Fail(codes::kInvalidArgument,
                "unknown schema_version " + std::to_string(e.schema_version) + " of " + e.type);
  }
  if (e.sequence != task.sequence + 1) {
    return Fail(codes::kFailedPrecondition, "event " + e.event_id + " has sequence " +
                                                std::to_string(e.sequence) + ", expected " +
                                                std::to_string(task.sequence + 1));
  }
  json::ScratchDocument scratch;
  json::Document& p = scratch.doc();
  if (!json::Parse(e.payload, &p) || !p.IsObject()) {
    return Fail(codes::kInvalidArgument, "payload of " + e.event_id + " is not a JSON object");
  }
  const TaskStatus s = task.status;
  const std::string_view type = e.type;
  if (type == "task.created") {
    if (task.sequence != 0) return Illegal(task, e);
    task.id = e.aggregate_id;
    task.tenant_id = e.tenant_id;
    task.type = json::String(p, "type");
    task.agent_id = json::String(p, "agent_id");
    task.input = Raw(p, "input");
    task.limits = Raw(p, "limits");
    task.max_attempts = json::Int(p, "max_attempts", 1);
    task.priority = json::Int(p, "priority", 0);
    task.idempotency_key = json::String(p, "idempotency_key");
    task.request_hash = json::String(p, "request_hash");
    task.replay_of_task_id = json::String(p, "replay_of_task_id");
    task.replay_of = Raw(p, "replay_of");
    task.recorded_outputs = Raw(p, "recorded_outputs");
    task.status = TaskStatus::kCreated;
    task.created_at_ms = e.timestamp_ms;
  } else if (IsTerminal(s)) {
    return Illegal(task, e);
  } else if (type == "task.planned") {
    if (s != TaskStatus::kCreated || !task.plan_failures.empty()) return Illegal(task, e);
    task.plan = Raw(p, "plan");
    task.limits = Raw(p, "limits");
    task.executor = json::String(p, "runner") == "executor";
    const json::Value* plan = json::FindSet(p, "plan");
    const json::Value* steps = plan != nullptr ? json::Find(*plan, "steps") : nullptr;
    task.step_count = steps != nullptr && steps->IsArray() ? steps->Size() : 0;
    if (!task.executor && task.step_count == 1) {
      task.agent_step_input = Raw((*steps)[0], "input");
      task.agent_step_version = json::String((*steps)[0], "tool_version", "1");
    }
    task.step_runners.clear();
    if (task.executor && steps != nullptr && steps->IsArray()) AddRunners(task, *steps, 1);
    task.status = TaskStatus::kPlanned;
  } else if (type == "task.plan_rejected") {
    // At creation, or when a planner's plan fails validation.
    if ((s != TaskStatus::kCreated && s != TaskStatus::kRunning) || !task.plan_failures.empty()) {
      return Illegal(task, e);
    }
    task.plan_failures = Raw(p, "failures");
  } else if (type == "task.plan_extended") {
    // A planner step's plan, validated, appended after it.
    const json::Value* steps = json::Find(p, "steps");
    if (s != TaskStatus::kRunning || task.lease.lease_id.empty() || !task.executor ||
        steps == nullptr || !steps->IsArray() || steps->Empty() || task.plan.empty()) {
      return Illegal(task, e);
    }
    json::Document plan;
    if (!json::Parse(task.plan, &plan) || !json::Find(plan, "steps") || !plan["steps"].IsArray()) {
      return Illegal(task, e);
    }
    for (const json::Value& step : steps->GetArray()) {
      plan["steps"].PushBack(json::Value(step, plan.GetAllocator()), plan.GetAllocator());
    }
    task.plan = events::CanonicalText(plan);
    AddRunners(task, *steps, task.step_count + 1);
    task.step_count += steps->Size();
  } else if (type == "task.handed_off") {
    // The next step goes to another runner (an external worker or the
    // executors): the lease ends and the task waits for that runner's claim.
    if (s != TaskStatus::kRunning || task.lease.lease_id.empty() || !task.executor ||
        json::Int(p, "step_index") != NextStep(task)) {
      return Illegal(task, e);
    }
    task.lease = Lease{};
    task.status = TaskStatus::kQueued;
    task.queued_at_ms = e.timestamp_ms;
    task.handed_off = true;
  } else if (type == "step.started") {
    const int64_t index = json::Int(p, "step_index");
    // Under a held lease, the next step, and not twice in one attempt.
    if (s != TaskStatus::kRunning || task.lease.lease_id.empty() || index < 1 ||
        index > task.step_count || index != NextStep(task) ||
        (index <= static_cast<int64_t>(task.steps.size()) &&
         task.steps[index - 1].status == "running" &&
         task.steps[index - 1].attempt == task.attempt)) {
      return Illegal(task, e);
    }
    if (static_cast<int64_t>(task.steps.size()) < index) task.steps.resize(index);
    StepRecord& step = task.steps[index - 1];
    step = StepRecord{};
    step.index = index;
    step.tool = json::String(p, "tool");
    step.tool_version = json::String(p, "tool_version");
    step.input = Raw(p, "input");
    step.status = "running";
    step.attempt = json::Int(p, "attempt");
    step.started_at_ms = e.timestamp_ms;
    if (int64_t expires = json::Int(p, "lease_expires_at_ms"); expires != 0) {
      task.lease.expires_at_ms = expires;
    }
    task.sequence = e.sequence;
    return {};
  } else if (type == "step.finished") {
    const int64_t index = json::Int(p, "step_index");
    const std::string status = json::String(p, "status");
    if (s != TaskStatus::kRunning || task.lease.lease_id.empty() || index < 1 ||
        index > static_cast<int64_t>(task.steps.size()) ||
        task.steps[index - 1].status != "running" ||
        (status != "succeeded" && status != "failed")) {
      return Illegal(task, e);
    }
    StepRecord& step = task.steps[index - 1];
    step.status = status;
    step.output = Raw(p, "output");
    step.error = Raw(p, "error");
    const json::Value* error = json::FindSet(p, "error");
    step.error_code = error != nullptr ? json::String(*error, "code") : "";
    step.step_hash = json::String(p, "step_hash");
    const json::Value* usage = json::FindSet(p, "usage");
    step.tokens = usage != nullptr ? json::Int(*usage, "tokens") : 0;
    task.tokens_used += step.tokens;
    step.sandboxed = json::Bool(p, "sandboxed");
    step.duration_ms = json::Int(p, "duration_ms");
    step.finished_at_ms = e.timestamp_ms;
    task.sequence = e.sequence;
    return {};
  } else if (type == "task.queued") {
    if (s != TaskStatus::kPlanned) return Illegal(task, e);
    task.status = TaskStatus::kQueued;
    task.queued_at_ms = e.timestamp_ms;
    if (task.first_queued_at_ms == 0) task.first_queued_at_ms = e.timestamp_ms;
  } else if (type == "task.claimed") {
    if (s != TaskStatus::kQueued) return Illegal(task, e);
    task.status = TaskStatus::kRunning;
    task.attempt = json::Int(p, "attempt");
    task.handed_off = false;
    task.claimed_at_ms = e.timestamp_ms;
    task.lease =
        Lease{json::String(p, "lease_id"), json::String(p, "worker_id"), json::String(p, "key_id"),
              json::Int(p, "lease_expires_at_ms"), json::Int(p, "lease_ms")};
    if (task.execution_started_at_ms == 0) task.execution_started_at_ms = e.timestamp_ms;
  } else if (type == "task.heartbeat") {
    if (s != TaskStatus::kRunning || task.lease.lease_id.empty() ||
        task.lease.lease_id != json::String(p, "lease_id")) {
      return Illegal(task, e);
    }
    task.lease.expires_at_ms = json::Int(p, "lease_expires_at_ms");
  } else if (type == "task.lease_expired") {
    if (s != TaskStatus::kRunning || task.lease.lease_id.empty() ||
        task.lease.lease_id != json::String(p, "lease_id")) {
      return Illegal(task, e);
    }
    task.lease = Lease{};
  } else if (type == "task.retry_scheduled") {
    if (s != TaskStatus::kRunning) return Illegal(task, e);
    task.lease = Lease{};
    task.retry_count = json::Int(p, "retry_count");
    task.error = Raw(p, "error");
    task.status = TaskStatus::kPlanned;  // an explicit, counted step back; task.queued follows
  } else if (type == "task.succeeded") {
    if (s != TaskStatus::kRunning || task.lease.lease_id.empty()) return Illegal(task, e);
    task.status = TaskStatus::kSucceeded;
    task.result = Raw(p, "result");
    task.error.clear();
    task.lease = Lease{};
    task.execution_finished_at_ms = e.timestamp_ms;
    Finish(task, p, e);
  } else if (type == "task.failed") {
    task.status = TaskStatus::kFailed;
    task.error = Raw(p, "error");
    task.failure = Raw(p, "failure");
    task.lease = Lease{};
    task.execution_finished_at_ms = e.timestamp_ms;
    Finish(task, p, e);
  } else if (type == "task.cancel_requested") {
    task.cancel_requested = true;
  } else if (type == "task.cancelled") {
    if (!task.cancel_requested) return Illegal(task, e);
    task.status = TaskStatus::kCancelled;
    task.error = Raw(p, "error");
    task.lease = Lease{};
    task.execution_finished_at_ms = e.timestamp_ms;
  } else {
    return Fail(codes::kInvalidArgument, "unknown task event type " + e.type);
  }
  const json::Value* error = json::FindSet(p, "error");
  if (error != nullptr) task.error_code = json::String(*error, "code");
  if (task.error.empty()) task.error_code.clear();
  task.sequence = e.sequence;
  return {};
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
  raw("step_hashes", t.step_hashes);
  str("task_hash", t.task_hash);
  raw("replay", t.replay);
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
      num("tokens", step.tokens);
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
  t.input = Raw(d, "input");
  t.limits = Raw(d, "limits");
  t.plan = Raw(d, "plan");
  t.max_attempts = json::Int(d, "max_attempts", 1);
  t.priority = json::Int(d, "priority");
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
  t.result = Raw(d, "result");
  t.error = Raw(d, "error");
  t.failure = Raw(d, "failure");
  if (const json::Value* error = json::FindSet(d, "error"))
    t.error_code = json::String(*error, "code");
  t.created_at_ms = json::Int(d, "created_at_ms");
  t.queued_at_ms = json::Int(d, "queued_at_ms");
  t.first_queued_at_ms = json::Int(d, "first_queued_at_ms");
  t.execution_started_at_ms = json::Int(d, "execution_started_at_ms");
  t.execution_finished_at_ms = json::Int(d, "execution_finished_at_ms");
  t.claimed_at_ms = json::Int(d, "claimed_at_ms");
  t.replay_of = Raw(d, "replay_of");
  t.recorded_outputs = Raw(d, "recorded_outputs");
  t.executor = json::Bool(d, "executor");
  t.plan_failures = Raw(d, "plan_failures");
  t.step_count = json::Int(d, "step_count");
  t.agent_step_input = Raw(d, "agent_step_input");
  t.agent_step_version = json::String(d, "agent_step_version");
  t.step_runners = json::String(d, "step_runners");
  t.handed_off = json::Bool(d, "handed_off");
  t.tokens_used = json::Int(d, "tokens_used");
  t.step_hashes = Raw(d, "step_hashes");
  t.task_hash = json::String(d, "task_hash");
  t.replay = Raw(d, "replay");
  if (const json::Value* steps = json::Find(d, "steps"); steps != nullptr && steps->IsArray()) {
    for (const json::Value& v : steps->GetArray()) {
      StepRecord step;
      step.index = json::Int(v, "index");
      step.tool = json::String(v, "tool");
      step.tool_version = json::String(v, "tool_version");
      step.input = Raw(v, "input");
      step.status = json::String(v, "status");
      step.output = Raw(v, "output");
      step.error = Raw(v, "error");
      step.error_code = json::String(v, "error_code");
      step.step_hash = json::String(v, "step_hash");
      step.attempt = json::Int(v, "attempt");
      step.tokens = json::Int(v, "tokens");
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
                               &t.lease.lease_id,
                               &t.lease.worker_id,
                               &t.lease.key_id,
                               &t.result,
                               &t.error,
                               &t.error_code,
                               &t.failure,
                               &t.step_hashes,
                               &t.task_hash,
                               &t.replay}) {
    bytes += heap(*s);
  }
  bytes += static_cast<int64_t>(t.steps.capacity() * sizeof(StepRecord));
  for (const StepRecord& s : t.steps) {
    for (const std::string* f : {&s.tool, &s.tool_version, &s.input, &s.status, &s.output, &s.error,
                                 &s.error_code, &s.step_hash}) {
      bytes += heap(*f);
    }
  }
  return bytes;
}

}  // namespace runlog::events
