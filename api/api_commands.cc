// The API's commands: create, claim, heartbeat, complete, fail, cancel. Each
// validates its body, hands a command to the TaskService and answers from the
// command's callback, once the resulting events are durable.

#include <array>
#include <set>
#include <span>

#include "api/api.h"
#include "api/exchange.h"
#include "api/render.h"
#include "events/canonical_json.h"
#include "services/manifests.h"
#include "services/plans.h"
#include "services/tools.h"

namespace runlog::api {
namespace {

using Names = std::span<const char* const>;

struct LimitSpec {
  std::array<const char*, 2> names;  // the field, then an alias (or the field again)
  int64_t default_value;
  int64_t cap;
};
constexpr LimitSpec kLimits[] = {{{"max_steps", "max_steps"}, 20, 100},
                                 {{"max_total_seconds", "timeout_seconds"}, 300, 3600},
                                 {{"max_step_seconds", "max_step_seconds"}, 60, 600},
                                 {{"max_tokens", "max_tokens"}, 100'000, 10'000'000},
                                 // 0: the plan's default (docs/tenancy.md), if any
                                 {{"max_queue_seconds", "max_queue_seconds"}, 0, 2'592'000}};

// Reads validated fields of a JSON object; the first problem is kept and
// answered by Fail().
class Fields {
 public:
  explicit Fields(const json::Value& object) : object_(object) {}

  // The first present, non-null member among `names`.
  const json::Value* Any(std::initializer_list<const char*> names, std::string* which = nullptr) {
    return Any(Names(names.begin(), names.size()), which);
  }
  const json::Value* Any(Names names, std::string* which = nullptr) {
    for (const char* n : names) {
      if (const json::Value* v = json::FindSet(object_, n)) {
        if (which) *which = n;
        return v;
      }
    }
    return nullptr;
  }

  std::string Str(std::initializer_list<const char*> names, size_t max_len,
                  const std::string& fallback = "") {
    std::string which;
    const json::Value* v = Any(names, &which);
    if (v == nullptr) return fallback;
    if (!v->IsString() || v->GetStringLength() == 0 || v->GetStringLength() > max_len) {
      Problem(codes::kValidationError, which,
              "must be a string of 1-" + std::to_string(max_len) + " characters");
      return fallback;
    }
    return std::string(v->GetString(), v->GetStringLength());
  }

  // An integer in [min, hard_max]; above `cap` (if set) is LIMIT_EXCEEDED.
  int64_t Int(std::initializer_list<const char*> names, int64_t fallback, int64_t min,
              int64_t hard_max, int64_t cap = -1, const json::Value* in = nullptr) {
    return Int(Names(names.begin(), names.size()), fallback, min, hard_max, cap, in);
  }
  int64_t Int(Names names, int64_t fallback, int64_t min, int64_t hard_max, int64_t cap = -1,
              const json::Value* in = nullptr) {
    std::string which;
    const json::Value* v = nullptr;
    if (in != nullptr) {
      for (const char* n : names) {
        if ((v = json::FindSet(*in, n)) != nullptr) {
          which = n;
          break;
        }
      }
    } else {
      v = Any(names, &which);
    }
    if (v == nullptr) return fallback;
    if (!v->IsInt64() || v->GetInt64() < min || v->GetInt64() > hard_max) {
      if (cap >= 0 && v->IsNumber() && v->GetDouble() > static_cast<double>(cap)) {
        Problem(codes::kLimitExceeded, which, "is over the server's cap of " + std::to_string(cap),
                cap);
      } else {
        Problem(
            codes::kValidationError, which,
            "must be an integer from " + std::to_string(min) + " to " + std::to_string(hard_max));
      }
      return fallback;
    }
    if (cap >= 0 && v->GetInt64() > cap) {
      Problem(codes::kLimitExceeded, which, "is over the server's cap of " + std::to_string(cap),
              cap);
      return fallback;
    }
    return v->GetInt64();
  }

  void Problem(const std::string& code, const std::string& field, const std::string& message,
               int64_t cap = -1) {
    if (!code_.empty()) return;
    code_ = code;
    message_ = field + " " + message;
    events::Payload details;
    details.Str("field", field);
    if (cap >= 0) details.Int("cap", cap);
    details_ = details.Build();
  }

  bool ok() const { return code_.empty(); }
  void Fail(Api::Exchange& x) const { x.Error(code_, message_, details_); }

 private:
  const json::Value& object_;
  std::string code_, message_, details_;
};

// A worker's `usage` {tokens, input_tokens, output_tokens, model, cost_usd},
// every member optional; tokens default to input + output.
void ReadUsage(Fields& f, events::Usage* usage, bool* cost_reported) {
  const json::Value* u = f.Any({"usage"});
  if (u == nullptr) return;
  constexpr char kShape[] =
      "must be {\"tokens\", \"input_tokens\", \"output_tokens\": whole numbers >= 0, "
      "\"model\": a string, \"cost_usd\": a number >= 0}, each optional";
  if (!u->IsObject()) return f.Problem(codes::kValidationError, "usage", kShape);
  for (auto [name, member] :
       {std::pair{"tokens", &usage->tokens}, std::pair{"input_tokens", &usage->input_tokens},
        std::pair{"output_tokens", &usage->output_tokens}}) {
    const json::Value* v = json::FindSet(*u, name);
    if (v == nullptr) continue;
    if (!v->IsInt64() || v->GetInt64() < 0 || v->GetInt64() > (int64_t{1} << 40)) {
      return f.Problem(codes::kValidationError, std::string("usage.") + name, kShape);
    }
    *member = v->GetInt64();
  }
  const int64_t split = usage->input_tokens + usage->output_tokens;
  if (json::FindSet(*u, "tokens") == nullptr) {
    usage->tokens = split;
  } else if (usage->tokens < split) {
    return f.Problem(codes::kValidationError, "usage.tokens",
                     "is less than input_tokens + output_tokens");
  }
  if (const json::Value* model = json::FindSet(*u, "model")) {
    if (!model->IsString() || model->GetStringLength() > 128) {
      return f.Problem(codes::kValidationError, "usage.model",
                       "must be a string of 0-128 characters");
    }
    usage->model.assign(model->GetString(), model->GetStringLength());
  }
  if (const json::Value* cost = json::FindSet(*u, "cost_usd")) {
    if (!cost->IsNumber() || cost->GetDouble() < 0 || cost->GetDouble() > 1e6) {
      return f.Problem(codes::kValidationError, "usage.cost_usd",
                       "must be a number of dollars from 0 to 1e6");
    }
    usage->cost_nanos = events::NanosOfUsd(cost->GetDouble());
    *cost_reported = true;
  }
}

}  // namespace

void Api::CreateTask(std::shared_ptr<Exchange> x) {
  std::string request_hash;
  if (!ParseBody(*x, options_.max_body_bytes, true,
                 x->call.idempotency_key.empty() ? nullptr : &request_hash)) {
    return;
  }
  Fields f(x->body);
  services::CreateTask c;
  c.caller = {x->key->tenant_id, x->key->key_id, x->key->plan};
  c.type = f.Str({"type", "task_type"}, 128, "default");
  if (f.ok() && !ValidTypeName(c.type)) {
    f.Problem(codes::kValidationError, "type", "may hold letters, digits and _ . : - only");
  }
  c.agent_id = f.Str({"agent_id"}, 128);
  std::string input_field;
  const json::Value* input = f.Any({"input", "payload", "task_definition"}, &input_field);
  if (input != nullptr && !input->IsObject()) {
    f.Problem(codes::kValidationError, input_field, "must be a JSON object");
  }
  c.input = input == nullptr ? "{}" : events::CanonicalText(*input);
  c.max_attempts = f.Int({"max_attempts"}, 1, 1, 100);
  c.priority = f.Int({"priority"}, 0, -1000, 1000);
  // At most max_concurrency tasks with this key run at once (queued ones wait).
  c.concurrency_key = f.Str({"concurrency_key"}, 128);
  if (c.concurrency_key.find('\0') != std::string::npos) {
    f.Problem(codes::kValidationError, "concurrency_key", "may not hold NUL");
  }
  c.max_concurrency = f.Int({"max_concurrency"}, c.concurrency_key.empty() ? 0 : 1, 1, 10'000);
  if (c.concurrency_key.empty() && c.max_concurrency != 0) {
    f.Problem(codes::kValidationError, "max_concurrency", "needs a concurrency_key");
  }
  // The agent's manifest for this type: an input schema, a plan template or a planner.
  std::shared_ptr<const Manifest> manifest;
  const TaskTypeSpec* spec = nullptr;
  if (f.ok() && deps_.manifests != nullptr) {
    auto found = deps_.manifests->Spec(c.caller.tenant_id, c.agent_id, c.type, &manifest);
    if (!found) return x->ErrorFrom(found.error());
    spec = *found;
  }
  if (spec != nullptr && spec->input_schema != nullptr && input != nullptr && input->IsObject()) {
    if (auto problems = services::CheckSchema(*spec->input_schema, *input); !problems.empty()) {
      return x->Error(codes::kValidationError,
                      input_field + problems[0].path + " does not match the input schema of " +
                          c.type + ": " + problems[0].message,
                      events::Payload()
                          .Str("field", input_field + problems[0].path)
                          .Str("schema_field", "input_schema")
                          .Build());
    }
  }
  json::Document template_plan;
  if (spec != nullptr && !spec->plan.empty()) (void)json::Parse(spec->plan, &template_plan);
  // Limits: defaults, the template's, then "limits", then "plan.limits", then top-level fields.
  const json::Value* limits = json::FindSet(x->body, "limits");
  const json::Value* plan = json::FindSet(x->body, "plan");
  const json::Value* plan_limits = plan != nullptr ? json::FindSet(*plan, "limits") : nullptr;
  const json::Value* template_limits =
      template_plan.IsObject() ? json::FindSet(template_plan, "limits") : nullptr;
  for (const json::Value* v : {limits, plan_limits}) {
    if (v != nullptr && !v->IsObject())
      f.Problem(codes::kValidationError, "limits", "must be an object");
  }
  events::Payload limit_payload;
  int64_t max_steps = 0;
  for (const LimitSpec& spec : kLimits) {
    const Names names(spec.names);
    const std::string_view name = spec.names[0];
    const services::Plan& account = PlanNamed(x->key->plan);
    int64_t value = name == "max_queue_seconds" ? account.max_queue_seconds : spec.default_value;
    for (const json::Value* from : {template_limits, limits, plan_limits}) {
      if (from != nullptr && from->IsObject())
        value = f.Int(names, value, 1, INT32_MAX, spec.cap, from);
    }
    value = f.Int(names, value, 1, INT32_MAX, spec.cap);
    // The account's plan may cap it lower than the server does; its default
    // is never over that cap.
    const int64_t plan_cap = name == "max_steps"           ? account.max_steps
                             : name == "max_total_seconds" ? account.max_timeout_seconds
                                                           : 0;
    if (plan_cap > 0 && value > plan_cap) {
      if (value == spec.default_value) {
        value = plan_cap;
      } else {
        f.Problem(codes::kLimitExceeded, spec.names[1] == name ? spec.names[0] : spec.names[1],
                  "is over plan " + account.name + "'s cap of " + std::to_string(plan_cap),
                  plan_cap);
      }
    }
    if (name == "max_steps") max_steps = value;
    if (name == "max_queue_seconds" && value == 0) continue;  // no deadline in the queue
    limit_payload.Int(spec.names[0], value);
  }
  // max_cost_usd: a decimal, unlike the others; none by default.
  int64_t max_cost = 0;
  for (const json::Value* from :
       {template_limits, limits, plan_limits, static_cast<const json::Value*>(&x->body)}) {
    const json::Value* v =
        from != nullptr && from->IsObject() ? json::FindSet(*from, "max_cost_usd") : nullptr;
    if (v == nullptr) continue;
    if (!v->IsNumber() || v->GetDouble() <= 0 || v->GetDouble() > 1e6) {
      f.Problem(codes::kValidationError, "max_cost_usd",
                "must be a number of dollars over 0, up to 1e6");
    } else {
      max_cost = events::NanosOfUsd(v->GetDouble());
    }
  }
  if (max_cost > 0) limit_payload.Raw("max_cost_usd", events::UsdJson(max_cost));
  c.limits = limit_payload.Build();
  // "planner": true — a planner agent (a worker claiming the `plan` step) writes the plan.
  const json::Value* planner = json::FindSet(x->body, "planner");
  if (planner != nullptr && !planner->IsBool()) {
    f.Problem(codes::kValidationError, "planner", "must be true or false");
  } else if ((planner != nullptr && planner->GetBool()) ||
             (planner == nullptr && plan == nullptr && spec != nullptr && spec->planner)) {
    if (plan != nullptr)
      f.Problem(codes::kValidationError, "planner", "cannot be given with a plan");
    c.plan = services::kPlannerPlan;
    c.executor = true;
    c.source = "planner";
  }
  // Artexion's execute: a task_definition without a plan is planned, by the
  // built-in planner (`llm_plan`) if this runlogd has a model, else by a
  // planner worker (docs/plans.md, "The built-in planner").
  json::Document builtin_plan;
  if (plan == nullptr && planner == nullptr && c.plan.empty() && !template_plan.IsObject() &&
      input_field == "task_definition") {
    c.source = "planner";
    if (deps_.tools->has_model()) {
      (void)json::Parse(R"({"steps":[{"input":{"max_steps":)" +
                            std::to_string(std::max<int64_t>(1, max_steps - 1)) +
                            R"(,"task_definition":{"$ref":"/input"}},"tool":"llm_plan"}]})",
                        &builtin_plan);
    } else {
      c.plan = services::kPlannerPlan;
      c.executor = true;
    }
  }
  // The request's plan, else (unless a planner writes it) the manifest's template.
  const json::Value* given = plan != nullptr                              ? plan
                             : builtin_plan.IsObject()                    ? &builtin_plan
                             : c.plan.empty() && template_plan.IsObject() ? &template_plan
                                                                          : nullptr;
  if (given != nullptr && f.ok()) {
    auto checked = services::CheckPlan(*given, max_steps, *deps_.tools);
    if (!checked) return x->ErrorFrom(checked.error());
    c.plan = std::move(checked->plan);
    c.plan_failures = std::move(checked->failures);
    c.executor = checked->executor;
    if (given == &template_plan) c.source = "template";
  }
  if (!x->call.idempotency_key.empty()) {
    if (x->call.idempotency_key.size() > 255) {
      f.Problem(codes::kValidationError, "Idempotency-Key", "must be at most 255 characters");
    }
    c.idempotency_key = x->call.idempotency_key;
    c.request_hash = request_hash;
  }
  if (!f.ok()) return f.Fail(*x);
  x->DropBody();
  deps_.tasks->Create(
      std::move(c),
      [this, x](Result<services::CommandResult> r) { AnswerCommand(x, std::move(r), "create"); },
      AnswerPrepare(x, "create"));
}

void Api::ClaimTask(std::shared_ptr<Exchange> x) {
  if (!ParseBody(*x, options_.max_body_bytes, false, nullptr)) return;
  Fields f(x->body);
  services::ClaimTask c;
  c.caller = {x->key->tenant_id, x->key->key_id, x->key->plan};
  if (const json::Value* types = f.Any({"types", "task_types"})) {
    if (!types->IsArray() || types->Size() > 100) {
      f.Problem(codes::kValidationError, "types", "must be an array of up to 100 type names");
    } else {
      for (const auto& t : types->GetArray()) {
        if (!t.IsString()) f.Problem(codes::kValidationError, "types", "must hold strings");
        if (t.IsString()) c.types.emplace_back(t.GetString(), t.GetStringLength());
      }
    }
  } else if (std::string type = f.Str({"type", "task_type"}, 128); !type.empty()) {
    c.types.push_back(type);
  }
  c.worker_id = f.Str({"worker_id"}, 128, x->key->key_id);
  c.lease_ms = 1000 * f.Int({"lease_seconds"}, options_.default_lease_seconds, 1, INT32_MAX,
                            options_.max_lease_seconds);
  const int64_t wait = f.Int({"wait_seconds"}, 0, 0, INT32_MAX, options_.max_wait_seconds);
  if (!f.ok()) return f.Fail(*x);
  if (deps_.cluster != nullptr && !x->call.forwarded && deps_.cluster->other_nodes) {
    c.wake_on_remote_work = true;
    return ClusterClaim(x, std::move(c),
                        std::chrono::steady_clock::now() + std::chrono::seconds(wait), wait, true);
  }
  x->DropBody();
  deps_.tasks->Claim(
      std::move(c), std::chrono::seconds(wait),
      [this, x, wait](Result<services::CommandResult> r) {
        if (r && r->empty) return AnswerNoTask(*x, wait);
        AnswerCommand(x, std::move(r), "claim");
      },
      AnswerPrepare(x, "claim"));
}

void Api::AnswerNoTask(Exchange& x, int64_t wait) {
  ContractContext contract;
  contract.retry = true;  // nothing ready now; claim again
  contract.actions = {Act("retry_after_wait", true, "POST", "/v1/tasks/claim", wait > 0 ? 0 : 5)};
  x.Send(200, events::Payload().Raw("task", "").Raw("lease", ""), contract);
}

void Api::ClusterClaim(std::shared_ptr<Exchange> x, services::ClaimTask c,
                       std::chrono::steady_clock::time_point deadline, int64_t wait, bool first) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  const auto here =
      first ? std::chrono::milliseconds(0) : std::max(left, std::chrono::milliseconds(0));
  deps_.tasks->Claim(
      c, here,
      [this, x, c, deadline, wait, first](Result<services::CommandResult> r) {
        if (!r || !r->empty) return AnswerCommand(x, std::move(r), "claim");
        if (!first && std::chrono::steady_clock::now() >= deadline) return AnswerNoTask(*x, wait);
        auto nodes = std::make_shared<std::vector<std::string>>(deps_.cluster->other_nodes());
        RemoteClaims(x, c, deadline, wait, std::move(nodes), 0);
      },
      AnswerPrepare(x, "claim"));
}

void Api::RemoteClaims(std::shared_ptr<Exchange> x, services::ClaimTask c,
                       std::chrono::steady_clock::time_point deadline, int64_t wait,
                       std::shared_ptr<std::vector<std::string>> nodes, size_t next) {
  if (next >= nodes->size()) {
    if (std::chrono::steady_clock::now() >= deadline) return AnswerNoTask(*x, wait);
    return ClusterClaim(x, std::move(c), deadline, wait, false);
  }
  // The same claim, without waiting, answered from that node's partitions alone.
  Call call = x->call;
  json::Document body;
  body.CopyFrom(x->body, body.GetAllocator());
  if (!body.IsObject()) body.SetObject();
  body.RemoveMember("wait_seconds");
  body.AddMember("wait_seconds", 0, body.GetAllocator());
  call.body = json::Write(body);
  call.content_type = "application/json";
  deps_.cluster->forwarder->Forward(
      (*nodes)[next], call,
      [this, x, c = std::move(c), deadline, wait, nodes,
       next](Result<Forwarder::Answer> answer) mutable {
        if (answer && answer->status == 200) {
          json::Document got;
          if (json::Parse(answer->body, &got) && got.IsObject()) {
            const json::Value* task = json::Find(got, "task");
            if (task != nullptr && task->IsObject()) {
              return x->Finish(answer->status, answer->content_type, answer->body, answer->headers);
            }
          }
        }
        RemoteClaims(x, std::move(c), deadline, wait, std::move(nodes), next + 1);
      });
}

void Api::LeaseCommand(std::shared_ptr<Exchange> x, const std::string& id,
                       const std::string& verb) {
  if (!ParseBody(*x, options_.max_body_bytes, false, nullptr)) return;
  Fields f(x->body);
  services::Caller caller{x->key->tenant_id, x->key->key_id, x->key->plan};
  services::LeaseRef ref{id, f.Str({"lease_id"}, 128), f.Str({"worker_id"}, 128, x->key->key_id)};
  services::Command command;
  if (verb == "heartbeat") {
    command = services::Heartbeat{caller, ref};
  } else if (verb == "complete") {
    const json::Value* result = f.Any({"result", "output"});
    services::CompleteTask complete{caller, ref,
                                    result == nullptr ? "{}" : events::CanonicalText(*result)};
    ReadUsage(f, &complete.usage, &complete.cost_reported);
    if (f.ok()) {
      auto artifacts = StoreArtifactList(caller.tenant_id, f.Any({"artifacts"}));
      if (!artifacts) return x->ErrorFrom(artifacts.error(), id);
      complete.artifacts = std::move(*artifacts);
    }
    command = std::move(complete);
  } else {
    std::string error = services::ErrorJson(codes::kTaskFailed, "the worker reported a failure");
    if (const json::Value* e = f.Any({"error"})) {
      if (e->IsString()) {
        error = services::ErrorJson(codes::kTaskFailed, e->GetString());
      } else if (e->IsObject()) {
        const std::string code = json::String(*e, "code");
        if (code.size() > 128 || std::any_of(code.begin(), code.end(), [](unsigned char c) {
              return c < 0x20 || c == 0x7f;
            })) {
          f.Problem(codes::kValidationError, "error.code",
                    "must be at most 128 characters, with no control characters");
        }
        error = services::ErrorJson(code.empty() ? codes::kTaskFailed : code,
                                    json::String(*e, "message", "the worker reported a failure"));
      } else {
        f.Problem(codes::kValidationError, "error", "must be a string or {code, message}");
      }
    }
    const json::Value* retryable = f.Any({"retryable"});
    if (retryable != nullptr && !retryable->IsBool()) {
      f.Problem(codes::kValidationError, "retryable", "must be true or false");
    }
    services::FailTask fail{caller, ref, error, retryable != nullptr && retryable->GetBool()};
    ReadUsage(f, &fail.usage, &fail.cost_reported);
    command = std::move(fail);
  }
  if (!f.ok()) return f.Fail(*x);
  x->DropBody();
  const auto* complete = std::get_if<services::CompleteTask>(&command);
  std::string result = complete != nullptr ? complete->result : "";
  deps_.tasks->Submit(
      std::move(command),
      [this, x, verb, ref, result](Result<services::CommandResult> r) {
        // A complete sent again (after a timeout, say) is answered as the first was.
        if (!r && verb == "complete" &&
            (r.error().code == codes::kTaskTerminal || r.error().code == codes::kTaskNotFound)) {
          return RepeatedComplete(x, ref, result, r.error());
        }
        AnswerCommand(x, std::move(r), verb);
      },
      AnswerPrepare(x, verb));
}

void Api::RepeatedComplete(std::shared_ptr<Exchange> x, const services::LeaseRef& ref,
                           const std::string& result, const Error& refusal) {
  AfterOwnWrites(*x, deps_.tasks->PartitionOf(ref.task_id), ref.task_id,
                 [this, x, ref, result, refusal](Exchange&) {
                   auto task = deps_.views->GetTask(ref.task_id, x->key->tenant_id);
                   if (task && *task && (*task)->status == events::TaskStatus::kSucceeded) {
                     const events::Lease& last = (*task)->last_lease;
                     const bool holder = ref.lease_id.empty() ? last.key_id == x->key->key_id &&
                                                                    last.worker_id == ref.worker_id
                                                              : last.lease_id == ref.lease_id;
                     if (holder && (*task)->result == result) {
                       return AnswerSuccess(*x, **task, true, "complete", false);
                     }
                   }
                   AnswerCommand(x, std::unexpected(refusal), "complete");
                 });
}

void Api::CancelTask(std::shared_ptr<Exchange> x, const std::string& id) {
  if (!ParseBody(*x, options_.max_body_bytes, false, nullptr)) return;
  Fields f(x->body);
  std::string reason = f.Str({"reason"}, 1000);
  if (!f.ok()) return f.Fail(*x);
  deps_.tasks->Submit(
      services::CancelTask{{x->key->tenant_id, x->key->key_id}, id, reason},
      [this, x](Result<services::CommandResult> r) { AnswerCommand(x, std::move(r), "cancel"); },
      AnswerPrepare(x, "cancel"));
}

// A new task with the same type, input, plan and limits; deterministic steps
// run again, agent steps reuse their recorded outputs. Its end says whether
// its hashes match the original's (task.replay).
void Api::ReplayTask(std::shared_ptr<Exchange> x, const std::string& id) {
  if (!ParseBody(*x, options_.max_body_bytes, false, nullptr)) return;
  AfterOwnWrites(*x, deps_.tasks->PartitionOf(id), id,
                 [this, id](Exchange& e) { ReplayRead(e.shared_from_this(), id); });
}

void Api::ReplayRead(std::shared_ptr<Exchange> x, const std::string& id) {
  auto found = deps_.views->GetTask(id, x->key->tenant_id);
  if (!found) return x->ErrorFrom(found.error(), id);
  if (!*found) return x->Error(codes::kTaskNotFound, "no task " + id, "", id);
  const events::Task& t = **found;
  if (t.status != events::TaskStatus::kSucceeded && t.status != events::TaskStatus::kFailed) {
    return x->Error(codes::kTaskNotFinished,
                    "only a succeeded or failed task can be replayed; task " + id + " is " +
                        std::string(events::StatusName(t.status)),
                    "", id);
  }
  if (t.plan.empty()) {
    return x->Error(codes::kTaskNotReplayable, "task " + id + " failed before it had a plan", "",
                    id);
  }
  services::CreateTask c;
  c.caller = {x->key->tenant_id, x->key->key_id, x->key->plan};
  c.type = t.type;
  c.agent_id = t.agent_id;
  c.input = t.input;
  c.limits = t.limits;
  c.max_attempts = t.max_attempts;
  c.priority = t.priority;
  c.replay_of_task_id = t.id;
  c.replay_of = events::Payload()
                    .Raw("step_hashes", t.step_hashes.empty() ? "[]" : t.step_hashes)
                    .Str("task_hash", t.task_hash)
                    .Str("task_id", t.id)
                    .Build();
  events::Payload recorded;
  std::set<int64_t> recorded_steps;
  for (const events::StepRecord& s : t.steps) {
    if (events::IsRecordedTool(s.tool) && s.status == "succeeded") {
      recorded.Raw(std::to_string(s.index), s.output.empty() ? "{}" : s.output);
      recorded_steps.insert(s.index);
    }
  }
  c.recorded_outputs = recorded.Build();
  json::Document plan, limits;
  (void)json::Parse(t.plan, &plan);
  (void)json::Parse(t.limits.empty() ? "{}" : t.limits, &limits);
  // A planner's task replays from its plan step; the recorded plan is appended again.
  if (auto steps = plan.IsObject() ? plan.FindMember("steps") : plan.MemberEnd();
      steps != plan.MemberEnd() && steps->value.IsArray() && !steps->value.Empty() &&
      events::IsPlannerTool(json::String(steps->value[0], "tool"))) {
    while (steps->value.Size() > 1) steps->value.PopBack();
  }
  auto checked =
      services::CheckPlan(plan, json::Int(limits, "max_steps", 20), *deps_.tools, recorded_steps);
  if (!checked) return x->ErrorFrom(checked.error(), id);
  c.plan = std::move(checked->plan);
  c.plan_failures = std::move(checked->failures);
  c.executor = checked->executor;
  if (!c.executor && c.plan_failures.empty()) {
    return x->Error(codes::kTaskNotReplayable,
                    "task " + id + " has an agent step without a recorded output to reuse", "", id);
  }
  x->DropBody();
  deps_.tasks->Create(
      std::move(c),
      [this, x](Result<services::CommandResult> r) { AnswerCommand(x, std::move(r), "create"); },
      AnswerPrepare(x, "create"));
}

void Api::AnswerCommand(std::shared_ptr<Exchange> x, Result<services::CommandResult> r,
                        const std::string& kind) {
  if (!r) {
    std::string id;
    if (x->call.path.starts_with("/tasks/"))
      id = x->call.path.substr(7, x->call.path.find('/', 7) - 7);
    // A create's key names the task it conflicts with.
    if (kind == "create" && r.error().code == runlog::codes::kIdempotencyConflict) {
      id = services::TaskService::TaskIdFor(x->key->tenant_id, x->call.idempotency_key);
    }
    // The writer forgets most ended tasks a minute after they end; the task
    // view keeps them, so a late command still hears how the task ended (409).
    // No wait for the view here (this may run on the log's thread): a minute
    // after the end, it has long caught up.
    if (r.error().code == runlog::codes::kTaskNotFound && !id.empty() && kind != "create" &&
        kind != "claim") {
      auto ended = deps_.views->GetTask(id, x->key->tenant_id);
      if (ended && *ended && events::IsTerminal((*ended)->status)) {
        return x->ErrorFrom(services::EndedTaskError(**ended, kind != "cancel").error(), id);
      }
    }
    return x->ErrorFrom(r.error(), id);
  }
  if (x->prepared()) return x->SendPrepared();
  AnswerSuccess(*x, r->task, r->replayed, kind, false);
}

services::PrepareCallback Api::AnswerPrepare(std::shared_ptr<Exchange> x, std::string kind) {
  // In a cluster the answer carries the write's position, known only once it is durable.
  if (deps_.cluster != nullptr) return nullptr;
  return [this, x, kind](const events::Task& t, bool replayed) {
    AnswerSuccess(*x, t, replayed, kind, true);
  };
}

void Api::AnswerSuccess(Exchange& x, const events::Task& t, bool replayed, const std::string& kind,
                        bool prepare_only) {
  ContractContext contract;
  contract.task = &t;
  contract.caller_holds_lease = t.lease.key_id == x.key->key_id;
  const std::string base = "/v1/tasks/" + t.id;
  events::Payload body;
  std::vector<std::pair<std::string, std::string>> headers;
  int status = 200;
  if (kind == "create") {
    RenderTaskInto(t, body);
    status = replayed ? 200 : 201;
    contract.actions = {Act("get_task", true, "GET", base),
                        Act("cancel_task", false, "POST", base + "/cancel")};
    // Its next step is an outside worker's (a plan-less create's agent step,
    // a planner's plan step): it waits for a claim, or fails QUEUE_TIMEOUT.
    if (t.status == events::TaskStatus::kQueued && events::WorkerRunsNext(t)) {
      contract.actions.push_back(Act("await_worker", false, "POST", "/v1/tasks/claim"));
    }
  } else {
    // The rule (docs/api.md): an answer about one task has its id and status
    // at the top level; a command's answer also has the whole task under "task".
    body.Str("id", t.id)
        .Str("task_id", t.id)
        .Str("status", std::string(events::StatusName(t.status)));
    body.Raw("task", RenderTask(t));
    if (kind == "claim" || kind == "heartbeat") {
      body.Raw("lease", RenderLease(t, deps_.clock->NowMillis()));
      if (kind == "claim") body.Raw("step", RenderWorkerStep(t));
      contract.actions = LeaseActions(t.id);
    } else if (kind == "cancel") {
      contract.actions = {Act("get_task", true, "GET", base)};
    } else {
      contract.actions = {Act("claim_next", true, "POST", "/v1/tasks/claim")};
    }
  }
  if (replayed) headers.emplace_back("Idempotent-Replayed", "true");
  if (deps_.cluster != nullptr) {
    // Read-your-writes on any node: a read that sends this back waits until
    // that node's views hold the write (AfterOwnWrites).
    const uint32_t p = deps_.tasks->PartitionOf(t.id);
    headers.emplace_back("X-Runlog-Position",
                         std::to_string(p) + ":" + std::to_string(deps_.tasks->AckedEnd(p)));
  }
  if (prepare_only) return x.Prepare(status, std::move(body), contract, headers);
  x.Send(status, std::move(body), contract, headers);
}

// PUT /v1/agents/{agent_id} (or POST /v1/agents with "agent_id"): the
// agent's manifest, replacing an earlier one. docs/agents.md.
void Api::RegisterAgent(std::shared_ptr<Exchange> x, const std::string& path_id) {
  if (!ParseBody(*x, options_.max_body_bytes, false, nullptr)) return;
  Fields f(x->body);
  const std::string agent_id = path_id.empty() ? f.Str({"agent_id"}, 128) : path_id;
  if (f.ok() && !ValidTypeName(agent_id)) {
    f.Problem(codes::kValidationError, "agent_id",
              "must be 1-128 of letters, digits and _ . : - (in the path or the body)");
  }
  // A template's limits obey the same caps as a request's.
  if (const json::Value* types = json::Find(x->body, "task_types"); types && types->IsObject()) {
    for (const auto& m : types->GetObject()) {
      const json::Value* plan = json::FindSet(m.value, "plan");
      const json::Value* limits = plan != nullptr ? json::FindSet(*plan, "limits") : nullptr;
      if (limits == nullptr || !limits->IsObject()) continue;
      for (const LimitSpec& spec : kLimits) {
        (void)f.Int(Names(spec.names), 0, 1, INT32_MAX, spec.cap, limits);
      }
    }
  }
  if (!f.ok()) return f.Fail(*x);
  auto checked = deps_.manifests->Check(x->body);
  if (!checked) return x->ErrorFrom(checked.error());
  const bool existed = deps_.manifests->Find(x->key->tenant_id, agent_id) != nullptr;
  deps_.manifests->Register(x->key->tenant_id, agent_id, std::move(*checked),
                            [x, existed](Result<std::shared_ptr<const Manifest>> r) {
                              if (!r) return x->ErrorFrom(r.error());
                              ContractContext contract;
                              contract.actions = {Act("create_task", true, "POST", "/v1/tasks")};
                              x->Send(existed ? 200 : 201, RenderAgent(**r), contract);
                            });
}

void Api::GetAgent(Exchange& x, const std::string& agent_id) {
  auto manifest = deps_.manifests->Find(x.key->tenant_id, agent_id);
  if (manifest == nullptr) return x.Error(codes::kAgentNotFound, "no agent " + agent_id);
  ContractContext contract;
  contract.actions = {Act("create_task", true, "POST", "/v1/tasks")};
  x.Send(200, RenderAgent(*manifest), contract);
}

events::Payload Api::RenderAgent(const Manifest& m) {
  events::Payload p;
  p.Str("agent_id", m.agent_id)
      .Raw("manifest", m.text)
      .Raw("registered_at", IsoTimeJson(m.registered_at_ms));
  return p;
}

}  // namespace runlog::api
