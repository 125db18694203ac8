#include "services/executor.h"

#include <algorithm>
#include <future>

#include "events/canonical_json.h"
#include "infra/base/json.h"
#include "services/plans.h"

namespace runlog::services {
namespace {

std::string Problems(const std::string& what, const std::vector<SchemaProblem>& problems) {
  std::string out = what;
  for (const SchemaProblem& p : problems) {
    out += " " + (p.path.empty() ? std::string("(the whole value)") : p.path) + " " + p.message;
  }
  return out;
}

}  // namespace

Executor::Executor(Options options) : options_(std::move(options)) {}

Executor::~Executor() { Stop(); }

void Executor::Start() {
  for (int i = 0; i < options_.slots; ++i) threads_.emplace_back([this, i] { Loop(i); });
}

void Executor::Stop() {
  if (stopping_.exchange(true)) return;
  // Steps that are quick finish; a long one is killed after a short grace and
  // left to its lease (the task is retried or fails as its attempts say).
  const auto grace = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < grace) {
    {
      std::lock_guard lock(running_mu_);
      if (running_.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  {
    std::lock_guard lock(running_mu_);
    for (auto& [id, cancel] : running_) cancel->store(true);
  }
  for (auto& t : threads_) t.join();
  threads_.clear();
}

int64_t Executor::busy() {
  std::lock_guard lock(running_mu_);
  return static_cast<int64_t>(running_.size());
}

void Executor::OnCancelled(const std::string& task_id) {
  std::lock_guard lock(running_mu_);
  if (auto it = running_.find(task_id); it != running_.end()) it->second->store(true);
}

Result<CommandResult> Executor::Call(Command command) {
  std::promise<Result<CommandResult>> answer;
  auto future = answer.get_future();
  options_.tasks->Submit(std::move(command),
                         [&answer](Result<CommandResult> r) { answer.set_value(std::move(r)); });
  return future.get();
}

void Executor::Loop(int slot) {
  const std::string worker_id = options_.name + "-" + std::to_string(slot);
  while (!stopping_.load()) {
    ClaimTask claim;
    claim.worker_id = worker_id;
    claim.executor = true;
    claim.lease_ms = options_.lease_margin.count();
    std::promise<Result<CommandResult>> answer;
    auto future = answer.get_future();
    options_.tasks->Claim(std::move(claim), std::chrono::milliseconds(500),
                          [&answer](Result<CommandResult> r) { answer.set_value(std::move(r)); });
    const auto asked = std::chrono::steady_clock::now();
    Result<CommandResult> r = future.get();
    if (!r || r->empty) {
      // Stopping, a failed writer, or claims no longer park: do not spin.
      if (!r || std::chrono::steady_clock::now() - asked < std::chrono::milliseconds(100)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      continue;
    }
    Run(worker_id, std::move(r->task));
  }
}

Status Executor::AwaitApproval(const Caller& caller, const LeaseRef& ref, const json::Value& input,
                               int64_t until_ms) {
  if (options_.content == nullptr || options_.ids == nullptr) {
    return Fail(codes::kToolError, "this runlogd cannot hold artifacts for approval");
  }
  const json::Value* data = json::FindSet(input, "data");
  auto digest = options_.content->Put(events::CanonicalText(data != nullptr ? *data : input));
  if (!digest) return std::unexpected(digest.error());
  NewArtifact a{options_.ids->NextSortable("art_"),
                json::String(input, "type"),
                *digest,
                "application/json",
                static_cast<int64_t>(events::CanonicalText(data != nullptr ? *data : input).size()),
                until_ms};
  auto added = Call(AddArtifacts{caller, ref, {a}});
  if (!added) {
    options_.content->Release(a.digest);
    return std::unexpected(added.error());
  }
  return {};
}

void Executor::Run(const std::string& worker_id, events::Task task) {
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  {
    std::lock_guard lock(running_mu_);
    running_[task.id] = cancel;
  }
  json::Document limits, plan, recorded;
  (void)json::Parse(task.limits.empty() ? "{}" : task.limits, &limits);
  std::string plan_text = task.plan.empty() ? "{}" : task.plan;
  (void)json::Parse(plan_text, &plan);
  (void)json::Parse(task.recorded_outputs.empty() ? "{}" : task.recorded_outputs, &recorded);
  const int64_t step_ms = 1000 * json::Int(limits, "max_step_seconds", 60);
  const int64_t total_ms = 1000 * json::Int(limits, "max_total_seconds", 300);
  // max_total_seconds bounds the machine's work: time spent waiting for a
  // person's decision on an approval step does not count.
  int64_t waited_ms = 0;
  for (const events::StepRecord& s : task.steps) {
    if (s.tool == "approval" && s.finished_at_ms > s.started_at_ms && s.started_at_ms > 0) {
      waited_ms += s.finished_at_ms - s.started_at_ms;
    }
  }
  const int64_t deadline = task.execution_started_at_ms + total_ms + waited_ms;
  const json::Value* steps = json::Find(plan, "steps");
  auto step_count = [&] { return steps != nullptr && steps->IsArray() ? steps->Size() : 0; };
  const Caller caller{task.tenant_id, ""};
  const LeaseRef ref{task.id, task.lease.lease_id, worker_id};
  for (int64_t index = events::NextStep(task);
       index <= task.step_count && index <= step_count() && !stopping_.load(); ++index) {
    const json::Value& step = (*steps)[static_cast<rapidjson::SizeType>(index - 1)];
    const std::string tool_name = json::String(step, "tool");
    const Tool* tool = options_.tools->Find(tool_name);
    const int64_t left = deadline - options_.clock->NowMillis();
    if (left <= 0 || tool == nullptr) {
      const std::string code = tool == nullptr ? codes::kToolError : codes::kTaskTimeout;
      const std::string message =
          tool == nullptr ? "no tool " + tool_name + " in this runlogd"
                          : "TASK_TIMEOUT: max_total_seconds (" + std::to_string(total_ms / 1000) +
                                ") ran out before step " + std::to_string(index);
      (void)Call(FailTask{caller, ref, ErrorJson(code, message), false,
                          FailureJson(code, index, message, tool_name)});
      break;
    }
    const int64_t wall = std::min(step_ms, left);
    const json::Value empty(rapidjson::kObjectType);
    const json::Value* raw_input = json::FindSet(step, "input");
    auto resolved = ResolveInput(raw_input != nullptr ? *raw_input : empty, task, index);
    // An approval step (not a replay's) waits for a decision: its lease is
    // the wait, up to its timeout_seconds (7 days), whatever the task's time left.
    const bool approval =
        tool_name == "approval" && json::Find(recorded, std::to_string(index)) == nullptr;
    int64_t lease_ms = wall + options_.lease_margin.count();
    if (approval) {
      json::Document in;
      const int64_t timeout_s = resolved && json::Parse(*resolved, &in) && in.IsObject()
                                    ? json::Int(in, "timeout_seconds", kApprovalWaitSeconds)
                                    : kApprovalWaitSeconds;
      // At least a second, at most a year: no overflow, no lease born expired.
      lease_ms = std::clamp<int64_t>(timeout_s, 1, 366 * 86'400) * 1000;
    }
    auto started = Call(StartStep{
        caller, ref, index, tool_name, std::string(tool->version()),
        resolved ? *resolved : events::CanonicalText(raw_input ? *raw_input : empty), lease_ms});
    if (!started) break;  // cancelled, or the lease is gone
    task = std::move(started->task);
    const auto t0 = std::chrono::steady_clock::now();
    FinishStep finish{caller, ref, index};
    ToolOutcome outcome;
    json::Document input;
    if (!resolved) {
      outcome.error_code = resolved.error().code;
      outcome.error_message = resolved.error().message;
    } else if (resolved->size() > kMaxToolOutputBytes) {
      outcome.error_code = codes::kToolError;
      outcome.error_message =
          "the resolved input is larger than " + std::to_string(kMaxToolOutputBytes) + " bytes";
    } else if (!json::Parse(*resolved, &input)) {
      outcome.error_code = codes::kToolError;
      outcome.error_message = "the step's input is not JSON";
    } else if (auto problems = options_.tools->CheckInput(*tool, input); !problems.empty()) {
      outcome.error_code = codes::kSchemaMismatch;
      outcome.error_message = Problems("input", problems);
    } else if (approval) {
      // Its data becomes an artifact pending approval; the task then waits
      // under this lease with no executor (POST /v1/artifacts/{id}/approve
      // finishes the step; the lease's end fails it APPROVAL_EXPIRED).
      auto waiting = AwaitApproval(caller, ref, input, task.lease.expires_at_ms);
      if (waiting) break;
      outcome.error_code = waiting.error().code;
      outcome.error_message = waiting.error().message;
    } else {
      ToolCall call;
      call.input = &input;
      call.wall = std::chrono::milliseconds(wall);
      call.cancel = cancel.get();
      if (const json::Value* out = json::Find(recorded, std::to_string(index))) {
        call.recorded_output = events::CanonicalText(*out);
      }
      outcome = tool->Run(call);
      if (stopping_.load() && cancel->load()) break;  // killed by Stop: left to the lease
      if (outcome.ok) {
        auto reject = [&](const char* code, std::string message) {
          outcome.ok = false;
          outcome.error_code = code;
          outcome.error_message = std::move(message);
        };
        // Parsed once, iteratively (a tool's output is untrusted): no deep recursion.
        json::Document output;
        std::string canonical;
        if (outcome.output.size() > kMaxToolOutputBytes) {
          reject(codes::kToolError,
                 "the output is larger than " + std::to_string(kMaxToolOutputBytes) + " bytes");
          outcome.output.clear();
        } else if (!json::ParseUntrusted<rapidjson::kParseValidateEncodingFlag |
                                         rapidjson::kParseFullPrecisionFlag |
                                         rapidjson::kParseIterativeFlag>(outcome.output, &output)) {
          reject(codes::kToolError, "the tool's output is not JSON");
          outcome.output.clear();
        } else if (!events::WriteCanonical(output, &canonical)) {
          reject(codes::kToolError, "the tool's output nests too deep");
          outcome.output.clear();
        } else {
          outcome.output = std::move(canonical);  // as the step's event records it
          if (auto problems = options_.tools->CheckOutput(*tool, output); !problems.empty()) {
            reject(codes::kSchemaMismatch, Problems("output", problems));
          }
        }
      } else if (outcome.timed_out) {
        const bool task_limit = wall < step_ms;
        outcome.error_code = task_limit ? codes::kTaskTimeout : codes::kTimeout;
        outcome.error_message =
            task_limit ? "TASK_TIMEOUT: max_total_seconds (" + std::to_string(total_ms / 1000) +
                             ") ran out during the step"
                       : "STEP_TIMEOUT: step execution timed out after max_step_seconds (" +
                             std::to_string(step_ms / 1000) + ")";
      }
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    finish.ok = outcome.ok;
    finish.output = outcome.output;
    finish.error_code = outcome.error_code;
    finish.error_message = outcome.error_message;
    finish.usage = outcome.usage;
    finish.sandboxed = outcome.sandboxed;
    finish.duration_ms = static_cast<int64_t>(seconds * 1000);
    if (options_.on_step) options_.on_step(tool_name, seconds, outcome.ok, outcome.sandboxed);
    auto finished = Call(std::move(finish));
    if (!finished) break;
    task = std::move(finished->task);
    // Ended, or handed to a worker for its next step.
    if (task.status != events::TaskStatus::kRunning) break;
    if (task.plan != plan_text) {  // a planner's plan was appended
      plan_text = task.plan;
      (void)json::Parse(plan_text, &plan);
      steps = json::Find(plan, "steps");
    }
  }
  std::lock_guard lock(running_mu_);
  if (auto it = running_.find(task.id); it != running_.end() && it->second == cancel) {
    running_.erase(it);  // only ours: a retry of the task may run on another slot
  }
}

}  // namespace runlog::services
