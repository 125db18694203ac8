#include "services/writer/decider.h"

#include "events/canonical_json.h"
#include "events/hashes.h"
#include "events/payload.h"
#include "infra/base/json.h"
#include "services/plans.h"
#include "services/prices.h"

namespace runlog::services {
namespace {

using events::Payload;
using events::Task;
using events::TaskStatus;

using events::LimitOf;

// Text from outside the writer must be canonical JSON within the nesting limit
// before it goes into an event (the writer aborts on an event it cannot apply).
Status CheckCanonical(const std::string& text, const char* what) {
  if (text.empty()) return {};
  auto canonical = events::Canonicalize(text);
  if (!canonical || *canonical != text) {
    return runlog::Fail(codes::kInvalidArgument, std::string(what) + " is not canonical JSON");
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

// The code of a canonical {"code","message"} error, or "".
std::string CodeOf(const std::string& error) {
  json::ScratchDocument scratch;
  return !error.empty() && json::Parse(error, &scratch.doc()) ? json::String(scratch.doc(), "code")
                                                              : "";
}

}  // namespace

std::unexpected<Error> EndedTaskError(const Task& t, bool lease_command) {
  if (lease_command && t.status == TaskStatus::kFailed && t.error_code == codes::kLeaseExpired) {
    return runlog::Fail(codes::kLeaseExpired, "the lease on task " + t.id + " expired");
  }
  if (lease_command && t.status == TaskStatus::kCancelled) {
    return runlog::Fail(codes::kTaskCancelled, "task " + t.id + " was cancelled");
  }
  return runlog::Fail(codes::kTaskTerminal,
                      "task " + t.id + " is already " + std::string(StatusName(t.status)));
}

void Decider::Emit(Task& task, const events::EventBody& body, std::vector<events::Event>& out) {
  events::Event e;
  e.type = events::TypeOf(body);
  e.event_id = options_.ids->Next("evt_");
  e.aggregate_id = task.id;
  e.tenant_id = task.tenant_id;
  e.sequence = task.sequence + 1;
  e.timestamp_ms = options_.clock->NowMillis();
  e.payload = events::Encode(body);
  if (auto s = ApplyEvent(task, e, body); !s) {
    // The writer decided an event its own state machine refuses: a bug.
    std::fprintf(stderr, "runlogd: decider bug: %s\n", s.error().message.c_str());
    std::abort();
  }
  out.push_back(std::move(e));
}

Status Decider::Create(Task& task, const CreateTask& c, std::vector<events::Event>& out) {
  task.id = c.task_id;
  task.tenant_id = c.caller.tenant_id;  // Emit stamps each event with it
  events::TaskCreated created{.type = c.type,
                              .agent_id = c.agent_id,
                              .input = c.input,
                              .limits = c.limits,
                              .plan = c.plan,
                              .max_attempts = c.max_attempts,
                              .priority = c.priority,
                              .concurrency_key = c.concurrency_key,
                              .max_concurrency = c.max_concurrency};
  if (!c.idempotency_key.empty()) {
    created.idempotency_key = c.idempotency_key;
    created.request_hash = c.request_hash;
  }
  if (!c.replay_of_task_id.empty()) {
    created.replay_of_task_id = c.replay_of_task_id;
    created.replay_of = c.replay_of;
    created.recorded_outputs = c.recorded_outputs.empty() ? "{}" : c.recorded_outputs;
  }
  Emit(task, created, out);
  if (!c.plan_failures.empty()) {
    Emit(task, events::TaskPlanRejected{c.plan_failures}, out);
    End(task, "",
        ErrorJson(codes::kPlanInvalid, "the plan failed validation; see plan_validation_failures"),
        "", {}, out);
    return {};
  }
  // Without a plan the task is one step done by an external worker (tool "agent").
  const bool agent = c.plan.empty();
  Emit(task,
       events::TaskPlanned{.plan = agent ? kAgentPlan : c.plan,
                           .limits = c.limits,
                           .source = agent ? "agent" : c.source,
                           .runner = c.executor && !agent ? "executor" : "worker"},
       out);
  if (task.executor && events::WorkerRunsNext(task)) {
    // A plan that opens with a worker step: its input may only name /input.
    HandOff(task, 1, out);
    return {};
  }
  Emit(task, events::TaskQueued{}, out);
  return {};
}

Status Decider::Claim(Task& task, const ClaimTask& c, std::vector<events::Event>& out) {
  if (task.status != TaskStatus::kQueued) {
    return runlog::Fail(codes::kFailedPrecondition, "task " + task.id + " is not queued");
  }
  const int64_t expires = options_.clock->NowMillis() + c.lease_ms;
  Emit(task,
       events::TaskClaimed{.lease_id = options_.ids->Next("lease_"),
                           .worker_id = c.worker_id,
                           .key_id = c.caller.key_id,
                           // A hand-off between runners continues the attempt; a retry starts one.
                           .attempt = task.handed_off ? task.attempt : task.attempt + 1,
                           .lease_expires_at_ms = expires,
                           .lease_ms = c.lease_ms},
       out);
  if (task.executor && !c.executor) StartWorkerStep(task, expires, out);
  return {};
}

void Decider::StartWorkerStep(Task& t, int64_t expires, std::vector<events::Event>& out) {
  const int64_t index = events::NextStep(t);
  json::Document plan;
  const json::Value* step = PlanStep(t, index, plan);
  auto input = StepInput(t, index, step);  // resolved when it was handed off, so it resolves
  Emit(t,
       events::StepStarted{
           .step_index = index,
           .tool = step != nullptr ? json::String(*step, "tool") : "agent",
           .tool_version = step != nullptr ? json::String(*step, "tool_version", "1") : "1",
           .input = input ? *input : "{}",
           .attempt = t.attempt,
           .lease_expires_at_ms = expires,
           .runner = "worker"},
       out);
}

void Decider::HandOff(Task& t, int64_t index, std::vector<events::Event>& out) {
  const bool worker =
      index <= static_cast<int64_t>(t.step_runners.size()) && t.step_runners[index - 1] == 'w';
  if (worker) {
    json::Document plan;
    const json::Value* step = PlanStep(t, index, plan);
    if (auto input = StepInput(t, index, step); !input) {
      EndFailed(t, input.error().code, index, input.error().message,
                step != nullptr ? json::String(*step, "tool") : "", {}, out);
      return;
    }
  }
  if (t.status == TaskStatus::kPlanned) {
    Emit(t, events::TaskQueued{}, out);
  } else {
    Emit(t, events::TaskHandedOff{index, worker ? "worker" : "executor"}, out);
  }
}

Status Decider::HeldLease(Task& task, const Caller& caller, const LeaseRef& ref,
                          std::vector<events::Event>& out) {
  if (task.status == TaskStatus::kRunning && !task.lease.lease_id.empty() &&
      task.lease.expires_at_ms <= options_.clock->NowMillis()) {
    ExpireLease(task, out);  // its time is up even if the timer has not fired yet
  }
  if (IsTerminal(task.status)) return EndedTaskError(task, true);
  if (const bool worker = events::WorkerRunsNext(task); worker == caller.key_id.empty()) {
    return runlog::Fail(codes::kLeaseMismatch,
                        worker ? "task " + task.id + "'s next step is a worker's"
                               : "task " + task.id + "'s next step is runlog's own");
  }
  const events::Lease& lease = task.lease;
  const bool holder = ref.lease_id.empty()
                          ? lease.key_id == caller.key_id && lease.worker_id == ref.worker_id
                          : lease.lease_id == ref.lease_id;
  if (task.status != TaskStatus::kRunning || lease.lease_id.empty()) {
    return runlog::Fail(codes::kLeaseExpired,
                        "task " + task.id + " holds no lease now; claim again");
  }
  if (!holder) {
    return runlog::Fail(codes::kLeaseMismatch,
                        "the lease on task " + task.id + " belongs to another claim");
  }
  return {};
}

Status Decider::Heartbeat(Task& t, const services::Heartbeat& c, std::vector<events::Event>& out) {
  if (auto s = HeldLease(t, c.caller, c.lease, out); !s) return s;
  const int64_t expires = options_.clock->NowMillis() + t.lease.duration_ms;
  Emit(t, events::TaskHeartbeat{t.lease.lease_id, expires}, out);
  return {};
}

Status Decider::AddArtifacts(Task& t, const services::AddArtifacts& c,
                             std::vector<events::Event>& out) {
  if (auto s = HeldLease(t, c.caller, c.lease, out); !s) return s;
  EmitArtifacts(t, c.artifacts, c.caller.key_id, out);
  return {};
}

void Decider::EmitArtifacts(Task& t, const std::vector<NewArtifact>& artifacts,
                            const std::string& key_id, std::vector<events::Event>& out) {
  for (const NewArtifact& a : artifacts) {
    Emit(t,
         events::TaskArtifactCreated{.artifact_id = a.artifact_id,
                                     .type = a.type,
                                     .digest = a.digest,
                                     .content_type = a.content_type,
                                     .size = a.size,
                                     .created_by = key_id,
                                     .approval_expires_at_ms = a.approval_expires_at_ms},
         out);
  }
}

Status Decider::Complete(Task& t, const CompleteTask& c, std::vector<events::Event>& out) {
  if (auto s = HeldLease(t, c.caller, c.lease, out); !s) return s;
  const int64_t index = RunningWorkerStep(t);  // a worker step of a plan, or 0
  if (index > 0) {
    if (auto s = CheckCanonical(c.result, "the result"); !s) return s;
  }
  EmitArtifacts(t, c.artifacts, c.caller.key_id, out);
  const events::Usage usage = Priced(c.usage, c.cost_reported);
  if (index > 0) {
    const int64_t elapsed = options_.clock->NowMillis() - t.steps[index - 1].started_at_ms;
    AfterStep(t, index, {true, c.result, "", "", usage, elapsed, false}, out);
    return {};
  }
  if (auto [code, message] = OverLimit(t, usage); code != nullptr) {
    EndFailed(t, code, 1, message, "agent", usage, out);
    return {};
  }
  End(t, c.result, "", "", usage, out);
  return {};
}

Status Decider::Fail(Task& t, const FailTask& given, std::vector<events::Event>& out) {
  if (auto s = HeldLease(t, given.caller, given.lease, out); !s) return s;
  FailTask c = given;  // a failure without an error still fails the task
  if (c.error.empty()) c.error = ErrorJson(codes::kTaskFailed, "the worker reported a failure");
  const events::Usage usage = Priced(c.usage, c.cost_reported);
  if (c.retryable && t.attempt < t.max_attempts) {
    Requeue(t, "retryable_failure", c.error, out);
  } else if (const int64_t index = RunningWorkerStep(t); index > 0) {  // a worker step of a plan
    json::ScratchDocument scratch;
    (void)json::Parse(c.error, &scratch.doc());
    const int64_t elapsed = options_.clock->NowMillis() - t.steps[index - 1].started_at_ms;
    AfterStep(t, index,
              {false, "", json::String(scratch.doc(), "code"),
               json::String(scratch.doc(), "message"), usage, elapsed, false},
              out);
  } else {
    End(t, "", c.error, c.failure, usage, out);
  }
  return {};
}

Status Decider::Cancel(Task& t, const CancelTask& c, std::vector<events::Event>& out) {
  if (IsTerminal(t.status)) return EndedTaskError(t, false);
  const std::string revoked = t.lease.lease_id;
  Emit(t, events::TaskCancelRequested{c.reason, c.caller.key_id}, out);
  Emit(t,
       events::TaskCancelled{
           .error = ErrorJson(codes::kCancelled, c.reason.empty() ? "cancelled" : c.reason),
           .error_code = codes::kCancelled,
           .revoked_lease_id = revoked},
       out);
  return {};
}

void Decider::Requeue(Task& t, const std::string& reason, const std::string& error,
                      std::vector<events::Event>& out) {
  Emit(t,
       events::TaskRetryScheduled{.reason = reason,
                                  .next_attempt = t.attempt + 1,
                                  .retry_count = t.retry_count + 1,
                                  .error = error,
                                  .error_code = CodeOf(error)},
       out);
  Emit(t, events::TaskQueued{}, out);
}

void Decider::ExpireLease(Task& t, std::vector<events::Event>& out) {
  // An approval step's lease is its wait: past it, the step fails.
  for (size_t i = t.steps.size(); i > 0; --i) {
    const events::StepRecord& step = t.steps[i - 1];
    if (step.status != "running") continue;
    if (step.tool == "approval") {
      AfterStep(t, static_cast<int64_t>(i),
                {false,
                 "",
                 codes::kApprovalExpired,
                 "nobody approved or rejected the step's artifact in time",
                 {},
                 options_.clock->NowMillis() - step.started_at_ms,
                 false},
                out);
      return;
    }
    break;
  }
  Emit(t, events::TaskLeaseExpired{t.lease.lease_id, t.attempt}, out);
  const std::string error = ErrorJson(codes::kLeaseExpired, "the worker's lease expired");
  if (t.attempt < t.max_attempts) {
    Requeue(t, events::WorkerRunsNext(t) ? "lease_expired" : "executor_lost", error, out);
  } else {
    End(t, "", error, "", {}, out);
  }
}

void Decider::QueueTimeout(Task& t, std::vector<events::Event>& out) {
  End(t, "",
      ErrorJson(codes::kQueueTimeout, "nobody claimed the task within max_queue_seconds (" +
                                          std::to_string(LimitOf(t, "max_queue_seconds")) + ")"),
      "", {}, out);
}

Status Decider::StartStep(Task& t, const services::StartStep& c, std::vector<events::Event>& out) {
  if (auto s = CheckCanonical(c.input, "the step input"); !s) return s;
  if (auto s = HeldLease(t, c.caller, c.lease, out); !s) return s;
  if (const int64_t next = events::NextStep(t); c.step_index != next || next > t.step_count) {
    return runlog::Fail(codes::kStepOutOfOrder, "task " + t.id + " runs step " +
                                                    std::to_string(next) + " next, not step " +
                                                    std::to_string(c.step_index));
  }
  // A step starts once an attempt: a resent start is refused, not recorded twice.
  if (const auto index = static_cast<size_t>(c.step_index);
      index <= t.steps.size() && t.steps[index - 1].status == "running" &&
      t.steps[index - 1].attempt == t.attempt) {
    return runlog::Fail(codes::kStepOutOfOrder, "step " + std::to_string(c.step_index) +
                                                    " of task " + t.id + " already started");
  }
  const int64_t expires = options_.clock->NowMillis() + c.lease_ms;
  Emit(t,
       events::StepStarted{.step_index = c.step_index,
                           .tool = c.tool,
                           .tool_version = c.tool_version,
                           .input = c.input,
                           .attempt = t.attempt,
                           .lease_expires_at_ms = expires},
       out);
  return {};
}

Status Decider::FinishStep(Task& t, const services::FinishStep& c,
                           std::vector<events::Event>& out) {
  if (auto s = CheckCanonical(c.output, "the step output"); !s) return s;
  if (auto s = HeldLease(t, c.caller, c.lease, out); !s) return s;
  if (c.step_index < 1 || c.step_index > static_cast<int64_t>(t.steps.size()) ||
      t.steps[c.step_index - 1].status != "running") {
    return runlog::Fail(codes::kStepOutOfOrder, "step " + std::to_string(c.step_index) +
                                                    " of task " + t.id + " is not running");
  }
  AfterStep(t, c.step_index,
            {c.ok, c.output, c.error_code, c.error_message, Priced(c.usage, false), c.duration_ms,
             c.sandboxed},
            out);
  return {};
}
void Decider::AfterStep(Task& t, int64_t index, StepEnd end, std::vector<events::Event>& out) {
  events::StepRecord step = t.steps[index - 1];
  // A planner's plan is checked like a given one; its steps follow the plan step.
  std::string plan_steps, plan_failures;
  if (end.ok && events::IsPlannerTool(step.tool)) {
    json::Document returned;
    Result<PlanCheck> checked =
        options_.tools == nullptr
            ? runlog::Fail(codes::kPlanInvalid, "this runlogd cannot check plans")
            : (json::Parse(end.output, &returned)
                   ? CheckPlan(returned, LimitOf(t, "max_steps"), *options_.tools, {}, index + 1)
                   : runlog::Fail(codes::kValidationError, "the plan is not JSON"));
    if (!checked) {
      plan_failures = PlanFailureJson(checked.error().code, checked.error().message);
    } else if (!checked->failures.empty()) {
      plan_failures = checked->failures;
    } else {
      end.output = checked->plan;
      json::ScratchDocument scratch;  // checked->plan is canonical {"steps": [...]}
      (void)json::Parse(checked->plan, &scratch.doc());
      plan_steps = events::CanonicalText(scratch.doc()["steps"]);
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
  Emit(t,
       events::StepFinished{.step_index = index,
                            .status = step.status,
                            .output = end.output,
                            .error = end.ok ? "" : ErrorJson(end.error_code, end.error_message),
                            .error_code = step.error_code,
                            .usage = end.usage,
                            .duration_ms = end.duration_ms,
                            .sandboxed = end.sandboxed,
                            .step_hash = events::StepHash(step)},
       out);
  const auto [over, over_message] = OverLimit(t, {});
  if (!end.ok) {
    if (!plan_failures.empty()) {
      Emit(t, events::TaskPlanRejected{plan_failures}, out);
    }
    EndFailed(t, end.error_code, index, end.error_message, step.tool, {}, out);
  } else if (over != nullptr) {
    EndFailed(t, over, index, over_message, step.tool, {}, out);
  } else {
    if (!plan_steps.empty()) Emit(t, events::TaskPlanExtended{plan_steps}, out);
    if (index == t.step_count) {
      End(t, end.output, "", "", {}, out);
    } else if (t.step_runners[index - 1] == 'w' || t.step_runners[index] == 'w' ||
               step.tool == "approval") {
      // Executors run consecutive built-in steps themselves; none waits
      // through an approval, so the step after one is handed to them anew.
      HandOff(t, index + 1, out);
    }
  }
}

std::pair<const char*, std::string> Decider::OverLimit(const Task& t, const events::Usage& adding) {
  const int64_t tokens = t.tokens_used + adding.tokens;
  const int64_t cost = t.cost_nanos + adding.cost_nanos;
  const char* what = t.executor ? "the plan used " : "the task used ";
  if (const int64_t max_tokens = LimitOf(t, "max_tokens"); max_tokens > 0 && tokens > max_tokens) {
    return {codes::kTokenLimit,
            what + std::to_string(tokens) + " tokens; max_tokens is " + std::to_string(max_tokens)};
  }
  if (const int64_t max_cost = CostLimitOf(t); max_cost > 0 && cost > max_cost) {
    return {codes::kCostLimit,
            what + events::UsdJson(cost) + " USD; max_cost_usd is " + events::UsdJson(max_cost)};
  }
  return {nullptr, ""};
}

void Decider::EndFailed(Task& t, const std::string& code, int64_t index, const std::string& message,
                        const std::string& step, const events::Usage& usage,
                        std::vector<events::Event>& out) {
  End(t, "", ErrorJson(code, message), FailureJson(code, index, message, step), usage, out);
}

void Decider::End(Task& t, const std::string& result, const std::string& error,
                  const std::string& failure, const events::Usage& worker_usage,
                  std::vector<events::Event>& out) {
  const bool succeeded = error.empty();
  const std::string error_code = CodeOf(error);
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
  std::optional<events::Usage> usage;
  if (!t.executor) usage = worker_usage;
  std::string replay_json;
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
    replay_json = replay.Build();
  }
  if (succeeded) {
    Emit(t,
         events::TaskSucceeded{.result = result.empty() ? "{}" : result,
                               .step_hashes = step_hashes,
                               .task_hash = task_hash,
                               .replay = replay_json,
                               .usage = usage},
         out);
  } else {
    Emit(t,
         events::TaskFailed{.error = error,
                            .error_code = error_code,
                            .failure = failure,
                            .step_hashes = step_hashes,
                            .task_hash = task_hash,
                            .replay = replay_json,
                            .usage = usage},
         out);
  }
}

}  // namespace runlog::services
