// The Decider alone, as a table: given these commands (each must be
// accepted), when this command, then these events (in order, with the payload
// fields that matter) or this error, and this status. No log, no writer, no
// thread: a ManualClock, SequentialIds and the built-in tools.
//
// Besides each row's expectations, every row proves three properties:
// - the events are well formed: dense sequences after the given task's, the
//   task's id and tenant, the clock's time, distinct event ids;
// - the task afterwards is exactly the given task with the emitted events
//   applied by events::ApplyEvent (the decider moves a task by nothing else);
// - a refusal emits nothing and leaves the task as it was, except that a lease
//   whose time is up is expired first (task.lease_expired, then a retry or
//   task.failed).

#include "services/writer/decider.h"

#include <gtest/gtest.h>
#include <rapidjson/pointer.h>

#include <cstdlib>
#include <ostream>
#include <set>
#include <variant>

#include "events/canonical_json.h"
#include "events/types.h"
#include "services/plans.h"

namespace runlog::services {
namespace {

using events::Event;

constexpr int64_t kT0 = 1'700'000'000'000;  // ManualClock's start
constexpr int64_t kLeaseMs = 30'000;        // every claim's lease
constexpr int64_t kStepLeaseMs = 60'000;    // every StartStep's lease
constexpr char kHeld[] = "$lease";          // in a LeaseRef: the task's lease id at that moment

const Caller kWorker{"acct_a", "key_a"};
const Caller kOtherKey{"acct_a", "key_b"};
const Caller kExecutor{"acct_a", ""};  // executors act with no key

const ToolRegistry& Tools() {
  static const ToolRegistry tools(nullptr);
  return tools;
}

// ---- Commands, as the table names them -------------------------------------

struct Advance {  // the clock moves on
  int64_t ms;
};
struct Expire {};  // the writer's lease timer fires: Decider::ExpireLease
using Step = std::variant<CreateTask, ClaimTask, Heartbeat, CompleteTask, FailTask, CancelTask,
                          StartStep, FinishStep, Advance, Expire>;
using Steps = std::vector<Step>;

Steps operator+(Steps a, const Steps& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A worker-run task: no plan, one implied `agent` step.
CreateTask Agent(int64_t max_attempts = 1, std::string limits = "{}") {
  CreateTask c{kWorker, "task_1", "email", "", R"({"n":1})", std::move(limits)};
  c.max_attempts = max_attempts;
  return c;
}

// A task with `plan`, checked as the API checks it (runner and failures from CheckPlan).
CreateTask Plan(std::string_view plan, int64_t max_attempts = 1,
                std::string limits = R"({"max_steps":5})") {
  json::Document d;
  d.Parse(plan.data(), plan.size());
  auto checked = CheckPlan(d, 5, Tools());
  if (!checked) {
    std::fprintf(stderr, "bad test plan %s: %s\n", plan.data(), checked.error().ToString().c_str());
    std::abort();
  }
  CreateTask c = Agent(max_attempts, std::move(limits));
  c.plan = checked->plan;
  c.plan_failures = checked->failures;
  c.executor = checked->executor;
  return c;
}

CreateTask Planner() {
  CreateTask c = Agent(1, R"({"max_steps":5})");
  c.plan = kPlannerPlan;
  c.executor = true;
  c.source = "planner";
  return c;
}

// Plans as a request gives them (Plan() checks them as the API does).
constexpr char kTwoMath[] = R"({"steps":[{"tool":"math","input":{"expression":"1+1"}},)"
                            R"({"tool":"math","input":{"expression":"2*3"}}]})";
constexpr char kAgentThenMath[] = R"({"steps":[{"tool":"agent","input":{"q":{"$ref":"/input/n"}}},)"
                                  R"({"tool":"math","input":{"expression":"1"}}]})";
constexpr char kMathThenAgent[] =
    R"({"steps":[{"tool":"math","input":{"expression":"1+1"}},)"
    R"({"tool":"agent","input":{"x":{"$ref":"/steps/1/output/result"}}}]})";
constexpr char kAgentOfMissingInput[] =
    R"({"steps":[{"tool":"agent","input":{"q":{"$ref":"/input/missing"}}},)"
    R"({"tool":"math","input":{"expression":"1"}}]})";
constexpr char kUnknownTool[] = R"({"steps":[{"tool":"nope","input":{}}]})";

ClaimTask WorkerClaim() { return {kWorker, "w1", {}, kLeaseMs, false}; }
ClaimTask ExecutorClaim() { return {Caller{}, "exec-1", {}, kLeaseMs, true}; }

LeaseRef Held(std::string worker = "w1") { return {"", kHeld, std::move(worker)}; }
LeaseRef ByWorker(std::string worker = "w1") { return {"", "", std::move(worker)}; }
const LeaseRef kWrongLease{"", "lease_bogus", "w1"};

Heartbeat Beat(Caller who = kWorker, LeaseRef ref = Held()) { return {who, ref}; }
CompleteTask Done(Caller who = kWorker, LeaseRef ref = Held(),
                  std::string result = R"({"ok":true})", int64_t tokens = 0) {
  CompleteTask c{who, ref, std::move(result)};
  c.usage.tokens = tokens;
  return c;
}
FailTask Failed(bool retryable, Caller who = kWorker, LeaseRef ref = Held()) {
  return {who, ref, ErrorJson(codes::kTaskFailed, "it broke"), retryable};
}
CancelTask Cancel() { return {kWorker, "task_1", "no longer needed"}; }
StartStep Start(int64_t index, std::string input = R"({"expression":"1+1"})",
                Caller who = kExecutor) {
  return {who, Held("exec-1"), index, "math", "1", std::move(input), kStepLeaseMs};
}
FinishStep Finish(int64_t index, std::string output = R"({"result":2})", int64_t tokens = 0) {
  FinishStep f{kExecutor, Held("exec-1"), index, true, std::move(output)};
  f.usage.tokens = tokens;
  f.duration_ms = 5;
  return f;
}
FinishStep FinishFailed(int64_t index) {
  FinishStep f{kExecutor, Held("exec-1"), index, false, "", codes::kToolError, "math: 1/0"};
  return f;
}

// Given histories.
Steps Running(CreateTask c = Agent()) { return {c, WorkerClaim()}; }
Steps ExecRunning(std::string_view plan = kTwoMath, std::string limits = R"({"max_steps":5})",
                  int64_t max_attempts = 1) {
  return {Plan(plan, max_attempts, std::move(limits)), ExecutorClaim()};
}
Steps Step1Running(std::string_view plan = kTwoMath, std::string limits = R"({"max_steps":5})") {
  return ExecRunning(plan, std::move(limits)) + Steps{Start(1)};
}
Steps Step1Done() { return Step1Running() + Steps{Finish(1)}; }
Steps WorkerStepRunning() { return Steps{Plan(kAgentThenMath), WorkerClaim()}; }
Steps PlannerRunning() { return Steps{Planner(), WorkerClaim()}; }

// ---- The table's rows ------------------------------------------------------

// A payload field (or, with `in` = "task", a field of the task as TaskToJson
// writes it), by JSON Pointer. `want`: "*" present and not null, "-" absent
// or null, "$lease" the given task's lease id, else the string's value or the
// canonical text of any other value.
struct Field {
  std::string in, pointer, want;
};

struct Case {
  std::string name;
  Steps given;
  Step when;
  std::vector<std::string> events;  // emitted, in order
  std::string error;                // the code refused with; "" accepted
  TaskStatus status;                // afterwards
  std::vector<Field> fields = {};
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::string Ms(int64_t ms) { return std::to_string(ms); }

const std::vector<std::string> kExpiredRetried = {"task.lease_expired", "task.retry_scheduled",
                                                  "task.queued"};
const std::vector<std::string> kExpiredFailed = {"task.lease_expired", "task.failed"};
const std::vector<std::string> kCancelled = {"task.cancel_requested", "task.cancelled"};
const std::vector<std::string> kNone = {};

std::vector<Case> Cases() {
  using S = TaskStatus;
  const Steps succeeded = Running() + Steps{Done()};
  const Steps failed = Running() + Steps{Failed(false)};
  const Steps expired = Running() + Steps{Expire{}};  // max_attempts 1: failed LEASE_EXPIRED
  const Steps cancelled = {Agent(), Cancel()};
  // Rows: name, given, when, then events, then error, then status, then fields.
  // clang-format off
  return {
      // 1. Create
      {"Create_AgentTask", {}, Agent(), {"task.created", "task.planned", "task.queued"}, "",
       S::kQueued,
       {{"task.planned", "/runner", "worker"}, {"task.planned", "/source", "agent"},
        {"task", "/step_count", "1"}, {"task", "/first_queued_at_ms", Ms(kT0)}}},
      {"Create_PlanFailures", {}, Plan(kUnknownTool),
       {"task.created", "task.plan_rejected", "task.failed"}, "", S::kFailed,
       {{"task.plan_rejected", "/failures/0/code", codes::kUnknownTool},
        {"task.failed", "/error/code", codes::kPlanInvalid}, {"task.failed", "/task_hash", "*"}}},
      {"Create_ExecutorPlan", {}, Plan(kTwoMath), {"task.created", "task.planned", "task.queued"},
       "", S::kQueued,
       {{"task.planned", "/runner", "executor"}, {"task", "/step_runners", "ee"}}},
      {"Create_ExecutorPlanOpeningWithWorkerStep", {}, Plan(kAgentThenMath),
       {"task.created", "task.planned", "task.queued"}, "", S::kQueued,
       {{"task.planned", "/runner", "executor"}, {"task", "/step_runners", "we"},
        {"task", "/handed_off", "-"}}},
      {"Create_WorkerStepFirstWithUnresolvableInput", {}, Plan(kAgentOfMissingInput),
       {"task.created", "task.planned", "task.failed"}, "", S::kFailed,
       {{"task.failed", "/failure/code", codes::kReferenceError},
        {"task.failed", "/failure/index", "1"}}},
      {"Create_PlannerTask", {}, Planner(), {"task.created", "task.planned", "task.queued"}, "",
       S::kQueued, {{"task.planned", "/source", "planner"}, {"task", "/step_runners", "w"}}},

      // 2. Claim
      {"Claim_Queued", {Agent()}, WorkerClaim(), {"task.claimed"}, "", S::kRunning,
       {{"task.claimed", "/attempt", "1"},
        {"task.claimed", "/lease_expires_at_ms", Ms(kT0 + kLeaseMs)},
        {"task.claimed", "/worker_id", "w1"}, {"task.claimed", "/key_id", "key_a"},
        {"task", "/lease_expires_at_ms", Ms(kT0 + kLeaseMs)}}},
      {"Claim_AfterRetry_StartsAnAttempt", Running(Agent(2)) + Steps{Failed(true)}, WorkerClaim(),
       {"task.claimed"}, "", S::kRunning,
       {{"task.claimed", "/attempt", "2"}, {"task", "/retry_count", "1"}}},
      {"Claim_AfterHandOff_KeepsTheAttempt", Step1Running(kMathThenAgent) + Steps{Finish(1)},
       WorkerClaim(), {"task.claimed", "step.started"}, "", S::kRunning,
       {{"task.claimed", "/attempt", "1"}, {"step.started", "/step_index", "2"},
        {"step.started", "/tool", "agent"}, {"step.started", "/runner", "worker"},
        {"step.started", "/input", R"({"x":2})"}, {"step.started", "/attempt", "1"}}},
      {"Claim_ExecutorPlanByExecutor", {Plan(kTwoMath)}, ExecutorClaim(), {"task.claimed"}, "",
       S::kRunning, {{"task.claimed", "/key_id", ""}, {"task", "/lease_key_id", "-"}}},
      {"Claim_Running", Running(), WorkerClaim(), kNone, codes::kFailedPrecondition, S::kRunning},
      {"Claim_Succeeded", succeeded, WorkerClaim(), kNone, codes::kFailedPrecondition,
       S::kSucceeded},

      // 3. The lease holder's heartbeat, complete and fail
      {"Heartbeat_ByLeaseId", Running() + Steps{Advance{10'000}}, Beat(), {"task.heartbeat"}, "",
       S::kRunning,
       {{"task.heartbeat", "/lease_id", "$lease"},
        {"task.heartbeat", "/lease_expires_at_ms", Ms(kT0 + 10'000 + kLeaseMs)}}},
      {"Heartbeat_ByKeyAndWorker", Running() + Steps{Advance{10'000}}, Beat(kWorker, ByWorker()),
       {"task.heartbeat"}, "", S::kRunning,
       {{"task.heartbeat", "/lease_expires_at_ms", Ms(kT0 + 10'000 + kLeaseMs)}}},
      {"Heartbeat_OneMsBeforeExpiry", Running() + Steps{Advance{kLeaseMs - 1}}, Beat(),
       {"task.heartbeat"}, "", S::kRunning},
      // By design (commands.h): a lease_id names the holder whatever key sends it.
      {"Heartbeat_OtherKeyWithTheLeaseId", Running(), Beat(kOtherKey), {"task.heartbeat"}, "",
       S::kRunning},
      {"Complete_ByLeaseId", Running(), Done(kWorker, Held(), R"({"ok":true})", 7),
       {"task.succeeded"}, "", S::kSucceeded,
       {{"task.succeeded", "/task_hash", "*"}, {"task.succeeded", "/step_hashes/0", "*"},
        {"task.succeeded", "/result", R"({"ok":true})"},
        {"task.succeeded", "/usage/tokens", "7"}, {"task", "/tokens_used", "7"}}},
      {"Complete_ByKeyAndWorker", Running(), Done(kWorker, ByWorker()), {"task.succeeded"}, "",
       S::kSucceeded, {{"task.succeeded", "/task_hash", "*"}}},
      {"Complete_OverMaxTokens", Running(Agent(1, R"({"max_tokens":100})")),
       Done(kWorker, Held(), "{}", 150), {"task.failed"}, "", S::kFailed,
       {{"task.failed", "/error/code", codes::kTokenLimit},
        {"task.failed", "/failure/index", "1"}, {"task.failed", "/failure/step", "agent"}}},
      {"Fail_NotRetryable", Running(Agent(3)), Failed(false), {"task.failed"}, "", S::kFailed,
       {{"task.failed", "/error/code", codes::kTaskFailed}, {"task.failed", "/task_hash", "*"}}},
      // A failure without an error is still a failure (it once ended the task succeeded).
      {"Fail_WithoutAnError", Running(Agent(3)), FailTask{kWorker, Held(), "", false},
       {"task.failed"}, "", S::kFailed, {{"task.failed", "/error/code", codes::kTaskFailed}}},
      {"Fail_RetryableWithAttemptsLeft", Running(Agent(2)), Failed(true, kWorker, ByWorker()),
       {"task.retry_scheduled", "task.queued"}, "", S::kQueued,
       {{"task.retry_scheduled", "/reason", "retryable_failure"},
        {"task.retry_scheduled", "/retry_count", "1"},
        {"task.retry_scheduled", "/next_attempt", "2"}, {"task", "/retry_count", "1"},
        {"task", "/lease_id", "-"}}},
      {"Fail_RetryableOnTheLastAttempt",
       Running(Agent(2)) + Steps{Failed(true), WorkerClaim()}, Failed(true), {"task.failed"}, "",
       S::kFailed, {{"task", "/attempt", "2"}, {"task", "/retry_count", "1"}}},
      {"Fail_RetryableWithOneAttempt", Running(), Failed(true), {"task.failed"}, "", S::kFailed},

      // 4. Lease rules: every way a lease command is refused
      {"Heartbeat_WrongLeaseId", Running(), Beat(kWorker, kWrongLease), kNone,
       codes::kLeaseMismatch, S::kRunning},
      {"Complete_OtherKeySameWorker", Running(), Done(kOtherKey, ByWorker()), kNone,
       codes::kLeaseMismatch, S::kRunning},
      {"Fail_SameKeyOtherWorker", Running(), Failed(false, kWorker, ByWorker("w2")), kNone,
       codes::kLeaseMismatch, S::kRunning},
      {"Heartbeat_ExecutorOnWorkerTask", Running(), Beat(kExecutor), kNone,
       codes::kLeaseMismatch, S::kRunning},
      {"FinishStep_ExecutorOnPlansWorkerStep", WorkerStepRunning(), Finish(1), kNone,
       codes::kLeaseMismatch, S::kRunning},
      {"Heartbeat_WorkerOnExecutorStep", Step1Running(), Beat(kWorker), kNone,
       codes::kLeaseMismatch, S::kRunning},
      {"StartStep_WorkerOnExecutorStep", ExecRunning(),
       Start(1, R"({"expression":"1+1"})", kWorker), kNone, codes::kLeaseMismatch, S::kRunning},
      {"Heartbeat_LeaseDueAtExpiry_Retried", Running(Agent(2)) + Steps{Advance{kLeaseMs}}, Beat(),
       kExpiredRetried, codes::kLeaseExpired, S::kQueued,
       {{"task.lease_expired", "/lease_id", "$lease"}, {"task.lease_expired", "/attempt", "1"},
        {"task.retry_scheduled", "/reason", "lease_expired"},
        {"task.retry_scheduled", "/error/code", codes::kLeaseExpired},
        {"task", "/retry_count", "1"}}},
      {"Complete_LeaseDue_NoAttemptsLeft", Running() + Steps{Advance{kLeaseMs + 1}}, Done(),
       kExpiredFailed, codes::kLeaseExpired, S::kFailed,
       {{"task.failed", "/error/code", codes::kLeaseExpired}}},
      {"Complete_OtherKeyOnDueLease", Running(Agent(2)) + Steps{Advance{kLeaseMs}},
       Done(kOtherKey, ByWorker()), kExpiredRetried, codes::kLeaseExpired, S::kQueued},
      {"StartStep_LeaseDue_ExecutorLost",
       ExecRunning(kTwoMath, R"({"max_steps":5})", 2) + Steps{Advance{kLeaseMs}}, Start(1),
       kExpiredRetried, codes::kLeaseExpired, S::kQueued,
       {{"task.retry_scheduled", "/reason", "executor_lost"}}},
      {"FinishStep_StepLeaseDue", Step1Running() + Steps{Advance{kStepLeaseMs}}, Finish(1),
       kExpiredFailed, codes::kLeaseExpired, S::kFailed},
      {"Heartbeat_QueuedTask", {Agent()}, Beat(), kNone, codes::kLeaseExpired, S::kQueued},
      {"Complete_AfterRetry_OldLease", Running(Agent(2)) + Steps{Failed(true)}, Done(), kNone,
       codes::kLeaseExpired, S::kQueued},
      {"StartStep_QueuedExecutorTask", {Plan(kTwoMath)}, Start(1), kNone, codes::kLeaseExpired,
       S::kQueued},
      {"Heartbeat_Succeeded", succeeded, Beat(), kNone, codes::kTaskTerminal, S::kSucceeded},
      {"Complete_Failed", failed, Done(), kNone, codes::kTaskTerminal, S::kFailed},
      {"Fail_FailedByLeaseExpiry", expired, Failed(false), kNone, codes::kLeaseExpired,
       S::kFailed},
      {"Heartbeat_Cancelled", cancelled, Beat(), kNone, codes::kTaskCancelled, S::kCancelled},

      // 5. Cancel
      {"Cancel_Queued", {Agent()}, Cancel(), kCancelled, "", S::kCancelled,
       {{"task.cancel_requested", "/requested_by", "key_a"},
        {"task.cancelled", "/error/code", codes::kCancelled},
        {"task.cancelled", "/revoked_lease_id", "-"}}},
      {"Cancel_Running", Running(), Cancel(), kCancelled, "", S::kCancelled,
       {{"task.cancelled", "/revoked_lease_id", "$lease"}, {"task", "/lease_id", "-"}}},
      {"Cancel_RunningStep", Step1Running(), Cancel(), kCancelled, "", S::kCancelled,
       {{"task.cancelled", "/revoked_lease_id", "$lease"}}},
      {"Cancel_Succeeded", succeeded, Cancel(), kNone, codes::kTaskTerminal, S::kSucceeded},
      {"Cancel_FailedByLeaseExpiry", expired, Cancel(), kNone, codes::kTaskTerminal, S::kFailed},
      {"Cancel_Cancelled", cancelled, Cancel(), kNone, codes::kTaskTerminal, S::kCancelled},

      // 6. ExpireLease
      {"Expire_AttemptsLeft", Running(Agent(2)), Expire{}, kExpiredRetried, "", S::kQueued,
       {{"task.lease_expired", "/lease_id", "$lease"},
        {"task.retry_scheduled", "/next_attempt", "2"},
        {"task.retry_scheduled", "/retry_count", "1"}}},
      {"Expire_NoAttemptsLeft", Running(), Expire{}, kExpiredFailed, "", S::kFailed,
       {{"task.failed", "/error/code", codes::kLeaseExpired}, {"task.failed", "/failure", "-"}}},
      {"Expire_ExecutorStep", Step1Running(), Expire{}, kExpiredFailed, "",
       S::kFailed, {{"task.failed", "/error/code", codes::kLeaseExpired}}},

      // 7. Plan steps
      {"StartStep_Next", ExecRunning() + Steps{Advance{1'000}}, Start(1), {"step.started"}, "",
       S::kRunning,
       {{"step.started", "/step_index", "1"}, {"step.started", "/attempt", "1"},
        {"step.started", "/tool", "math"},
        {"step.started", "/lease_expires_at_ms", Ms(kT0 + 1'000 + kStepLeaseMs)},
        {"task", "/lease_expires_at_ms", Ms(kT0 + 1'000 + kStepLeaseMs)}}},
      {"StartStep_WrongIndex", ExecRunning(), Start(2), kNone, codes::kStepOutOfOrder,
       S::kRunning},
      {"StartStep_IndexZero", ExecRunning(), Start(0), kNone, codes::kStepOutOfOrder,
       S::kRunning},
      {"StartStep_PastTheLastStep", Step1Done(), Start(3), kNone, codes::kStepOutOfOrder,
       S::kRunning},
      {"StartStep_DoneStepAgain", Step1Done(), Start(1), kNone, codes::kStepOutOfOrder,
       S::kRunning},
      // A resent start of the running step (the decider once emitted a second
      // step.started, which ApplyEvent refused, and aborted the process).
      {"StartStep_RunningStepAgain", Step1Running(), Start(1), kNone, codes::kStepOutOfOrder,
       S::kRunning},
      {"StartStep_NonCanonicalInput", ExecRunning(), Start(1, R"({"expression": "1+1"})"), kNone,
       codes::kInvalidArgument, S::kRunning},
      {"FinishStep_NotLast", Step1Running(), Finish(1), {"step.finished"}, "", S::kRunning,
       {{"step.finished", "/step_index", "1"}, {"step.finished", "/status", "succeeded"},
        {"step.finished", "/step_hash", "*"}, {"step.finished", "/error", "-"}}},
      {"FinishStep_Last", Step1Done() + Steps{Start(2)}, Finish(2, R"({"result":6})"),
       {"step.finished", "task.succeeded"}, "", S::kSucceeded,
       {{"task.succeeded", "/result", R"({"result":6})"},
        {"task.succeeded", "/step_hashes/1", "*"}, {"task.succeeded", "/step_hashes/2", "-"},
        {"task.succeeded", "/task_hash", "*"}}},
      {"FinishStep_NotStarted", ExecRunning(), Finish(1), kNone, codes::kStepOutOfOrder,
       S::kRunning},
      {"FinishStep_OtherStep", Step1Running(), Finish(2), kNone, codes::kStepOutOfOrder,
       S::kRunning},
      {"FinishStep_DoneStepAgain", Step1Done(), Finish(1), kNone, codes::kStepOutOfOrder,
       S::kRunning},
      {"FinishStep_Failed", Step1Running(), FinishFailed(1), {"step.finished", "task.failed"}, "",
       S::kFailed,
       {{"step.finished", "/status", "failed"}, {"step.finished", "/error/code", codes::kToolError},
        {"task.failed", "/error/code", codes::kToolError}, {"task.failed", "/failure/index", "1"},
        {"task.failed", "/failure/step", "math"}, {"task.failed", "/step_hashes/0", "*"}}},
      {"FinishStep_NonCanonicalOutput", Step1Running(), Finish(1, R"({"result":2.0})"), kNone,
       codes::kInvalidArgument, S::kRunning},
      {"FinishStep_OverMaxTokens", Step1Running(kTwoMath, R"({"max_steps":5,"max_tokens":100})"),
       Finish(1, R"({"result":2})", 150), {"step.finished", "task.failed"}, "", S::kFailed,
       {{"step.finished", "/usage/tokens", "150"},
        {"task.failed", "/error/code", codes::kTokenLimit},
        {"task.failed", "/failure/index", "1"}}},
      {"FinishStep_HandsOffToWorker", Step1Running(kMathThenAgent), Finish(1),
       {"step.finished", "task.handed_off"}, "", S::kQueued,
       {{"task.handed_off", "/step_index", "2"}, {"task.handed_off", "/runner", "worker"},
        {"task", "/handed_off", "true"}, {"task", "/attempt", "1"}}},
      {"Complete_WorkerStep_HandsOffToExecutor", WorkerStepRunning(), Done(kWorker, Held(), "{}"),
       {"step.finished", "task.handed_off"}, "", S::kQueued,
       {{"step.finished", "/step_index", "1"}, {"task.handed_off", "/step_index", "2"},
        {"task.handed_off", "/runner", "executor"}}},
      {"Complete_WorkerStep_NonCanonicalResult", WorkerStepRunning(),
       Done(kWorker, Held(), R"({"b":1,"a":2})"), kNone, codes::kInvalidArgument, S::kRunning},
      {"Fail_WorkerStep", WorkerStepRunning(), Failed(false), {"step.finished", "task.failed"}, "",
       S::kFailed,
       {{"step.finished", "/status", "failed"}, {"task.failed", "/failure/index", "1"},
        {"task.failed", "/failure/step", "agent"},
        {"task.failed", "/error/code", codes::kTaskFailed}}},
      {"Complete_PlannerStep_ValidPlan", PlannerRunning(),
       Done(kWorker, Held(), R"({"steps":[{"input":{"expression":"1+1"},"tool":"math"}]})"),
       {"step.finished", "task.plan_extended", "task.handed_off"}, "", S::kQueued,
       {{"task.plan_extended", "/steps/0/step_index", "2"},
        {"task.handed_off", "/runner", "executor"}, {"task", "/step_count", "2"}}},
      {"Complete_PlannerStep_InvalidPlan", PlannerRunning(),
       Done(kWorker, Held(), R"({"steps":[{"input":{},"tool":"nope"}]})"),
       {"step.finished", "task.plan_rejected", "task.failed"}, "", S::kFailed,
       {{"task.plan_rejected", "/failures/0/code", codes::kUnknownTool},
        {"task.failed", "/error/code", codes::kPlanInvalid}}},
  };
  // clang-format on
}

// ---- Playing a row -----------------------------------------------------------

struct Outcome {
  std::string given_error;  // a given step that was refused
  Task before, after;
  std::vector<Event> events;
  std::optional<Error> error;
  int64_t now = 0;
};

Outcome Play(const Case& c) {
  infra::ManualClock clock(kT0);
  infra::SequentialIds ids;
  Decider decider({&clock, &ids, &Tools()});
  Task task;
  auto run = [&](Step step, std::vector<Event>& out) -> Status {
    auto resolve = [&](LeaseRef& ref) {
      ref.task_id = task.id;
      if (ref.lease_id == kHeld) ref.lease_id = task.lease.lease_id;
    };
    return std::visit(
        [&](auto& s) -> Status {
          using T = std::decay_t<decltype(s)>;
          if constexpr (std::is_same_v<T, CreateTask>) return decider.Create(task, s, out);
          if constexpr (std::is_same_v<T, ClaimTask>) return decider.Claim(task, s, out);
          if constexpr (std::is_same_v<T, CancelTask>) return decider.Cancel(task, s, out);
          if constexpr (std::is_same_v<T, Advance>) clock.Advance(s.ms);
          if constexpr (std::is_same_v<T, Expire>) decider.ExpireLease(task, out);
          if constexpr (requires { s.lease; }) resolve(s.lease);
          if constexpr (std::is_same_v<T, Heartbeat>) return decider.Heartbeat(task, s, out);
          if constexpr (std::is_same_v<T, CompleteTask>) return decider.Complete(task, s, out);
          if constexpr (std::is_same_v<T, FailTask>) return decider.Fail(task, s, out);
          if constexpr (std::is_same_v<T, StartStep>) return decider.StartStep(task, s, out);
          if constexpr (std::is_same_v<T, FinishStep>) return decider.FinishStep(task, s, out);
          return {};
        },
        step);
  };
  Outcome o;
  for (size_t i = 0; i < c.given.size(); ++i) {
    std::vector<Event> ignored;
    if (auto s = run(c.given[i], ignored); !s) {
      o.given_error = "given step " + std::to_string(i) + " refused: " + s.error().ToString();
      return o;
    }
  }
  o.before = task;
  if (auto s = run(c.when, o.events); !s) o.error = s.error();
  o.after = task;
  o.now = clock.NowMillis();
  return o;
}

std::vector<std::string> TypesOf(const std::vector<Event>& events) {
  std::vector<std::string> types;
  for (const Event& e : events) types.push_back(e.type);
  return types;
}

// The value at `f.pointer` in `f.in` (an event's payload or the task), as `want` compares it.
void CheckField(const Field& f, const Outcome& o) {
  SCOPED_TRACE(f.in + " " + f.pointer);
  std::string text;
  if (f.in == "task") {
    text = events::TaskToJson(o.after);
  } else {
    for (const Event& e : o.events) {
      if (e.type == f.in && text.empty()) text = e.payload;
    }
    ASSERT_FALSE(text.empty()) << "no " << f.in << " event";
  }
  json::Document doc;
  ASSERT_TRUE(json::Parse(text, &doc)) << text;
  const json::Value* v = rapidjson::Pointer(f.pointer.c_str()).Get(doc);
  const bool set = v != nullptr && !v->IsNull();
  if (f.want == "-") {
    EXPECT_FALSE(set) << "in " << text;
    return;
  }
  ASSERT_TRUE(set) << "in " << text;
  if (f.want == "*") return;
  const std::string want = f.want == "$lease" ? o.before.lease.lease_id : f.want;
  EXPECT_EQ(v->IsString() ? std::string(v->GetString()) : events::CanonicalText(*v), want);
}

class DeciderTest : public ::testing::TestWithParam<Case> {};

TEST_P(DeciderTest, GivenWhenThen) {
  const Case& c = GetParam();
  SCOPED_TRACE("case " + c.name);
  const Outcome o = Play(c);
  ASSERT_EQ(o.given_error, "");

  // Then: these events, this error, this status, these fields.
  EXPECT_EQ(TypesOf(o.events), c.events);
  if (c.error.empty()) {
    EXPECT_FALSE(o.error.has_value()) << o.error->ToString();
  } else {
    EXPECT_EQ(o.error ? o.error->code : "accepted", c.error);
  }
  EXPECT_EQ(StatusName(o.after.status), StatusName(c.status));
  for (const Field& f : c.fields) CheckField(f, o);

  // Property: well-formed events.
  std::set<std::string> event_ids;
  for (size_t i = 0; i < o.events.size(); ++i) {
    const Event& e = o.events[i];
    EXPECT_EQ(e.sequence, o.before.sequence + i + 1) << e.type;
    EXPECT_EQ(e.aggregate_id, "task_1") << e.type;
    EXPECT_EQ(e.tenant_id, "acct_a") << e.type;
    EXPECT_EQ(e.timestamp_ms, o.now) << e.type;
    EXPECT_TRUE(event_ids.insert(e.event_id).second) << e.event_id;
    // The payload is the typed body's one encoding, and decodes back to it.
    auto body = events::Decode(e);
    ASSERT_TRUE(body.has_value()) << e.type << ": " << body.error().ToString();
    EXPECT_EQ(events::TypeOf(*body), e.type);
    EXPECT_EQ(events::Encode(*body), e.payload) << e.type;
  }
  // Property: the task moved by its events alone.
  Task replayed = o.before;
  for (const Event& e : o.events) {
    ASSERT_TRUE(events::ApplyEvent(replayed, e).has_value()) << e.type;
  }
  EXPECT_EQ(events::TaskToJson(replayed), events::TaskToJson(o.after));
  // Property: a refusal emits nothing, except the expiry of a lease whose time is up.
  if (o.error && !o.events.empty()) {
    EXPECT_EQ(o.events.front().type, "task.lease_expired");
    EXPECT_EQ(o.before.status, TaskStatus::kRunning);
    EXPECT_LE(o.before.lease.expires_at_ms, o.now) << "expired a lease whose time was not up";
    for (const Event& e : o.events) {
      EXPECT_TRUE(e.type == "task.lease_expired" || e.type == "task.retry_scheduled" ||
                  e.type == "task.queued" || e.type == "task.failed")
          << "a refusal emitted " << e.type;
    }
  } else if (o.error) {
    EXPECT_EQ(events::TaskToJson(o.after), events::TaskToJson(o.before)) << "refused, yet moved";
  }
}

INSTANTIATE_TEST_SUITE_P(Table, DeciderTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace runlog::services
