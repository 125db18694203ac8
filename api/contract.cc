#include "api/contract.h"

#include <unordered_map>

#include "events/payload.h"

namespace runlog::api {

ErrorInfo LookupError(const std::string& code) {
  const codes::CodeInfo* info = codes::FindCode(code);
  // Unreachable while every code comes from the table (error_codes_test).
  return info == nullptr ? ErrorInfo{500, true} : ErrorInfo{info->http_status, info->retryable};
}

NextAction Act(std::string action, bool recommended, std::string method, std::string endpoint,
               int64_t retry_after_seconds) {
  return NextAction{std::move(action), recommended, std::move(method), std::move(endpoint),
                    retry_after_seconds};
}

std::vector<NextAction> LeaseActions(const std::string& id) {
  const std::string base = "/v1/tasks/" + id;
  return {Act("heartbeat", true, "POST", base + "/heartbeat"),
          Act("complete_task", false, "POST", base + "/complete"),
          Act("fail_task", false, "POST", base + "/fail")};
}

std::vector<NextAction> ActionsForError(const std::string& code, const std::string& id,
                                        int64_t retry_after, const std::string& retry_method,
                                        const std::string& retry_endpoint) {
  const std::string task = "/v1/tasks/" + id;
  const codes::CodeInfo* info = codes::FindCode(code);
  switch (info == nullptr ? codes::NextStep::kRetryLater : info->next) {
    case codes::NextStep::kClaimNext:
      return {Act("claim_next", true, "POST", "/v1/tasks/claim")};
    case codes::NextStep::kGetTask:
      if (id.empty()) return {Act("list_tasks", true, "GET", "/v1/tasks")};
      return {Act("get_task", true, "GET", task)};
    case codes::NextStep::kListTasks:
      return {Act("list_tasks", true, "GET", "/v1/tasks")};
    case codes::NextStep::kGetOrNewKey:
      if (id.empty()) return {Act("create_task_with_new_key", true, "POST", "/v1/tasks")};
      return {Act("get_task", true, "GET", task),
              Act("create_task_with_new_key", false, "POST", "/v1/tasks")};
    case codes::NextStep::kRegisterKey:
      return {Act("register_key", true, "POST", "/v1/keys/register")};
    case codes::NextStep::kRetryLater:
      return {Act("retry_after_wait", true, retry_method, retry_endpoint,
                  retry_after < 0 ? 1 : retry_after)};
    case codes::NextStep::kFixRequest:
      break;
  }
  return {Act("fix_request", true)};
}

std::string AgentContract(const ContractContext& c) {
  bool lease_valid = false;
  int64_t expires_in = 0;
  int64_t heartbeat_every = 0;
  if (c.task != nullptr && c.caller_holds_lease && !c.task->lease.lease_id.empty() &&
      c.task->status == events::TaskStatus::kRunning) {
    lease_valid = c.task->lease.expires_at_ms > c.now_ms;
    expires_in = std::max<int64_t>(0, (c.task->lease.expires_at_ms - c.now_ms) / 1000);
    heartbeat_every = std::max<int64_t>(1, c.task->lease.duration_ms / 3000);
  }
  std::string actions = "[";
  for (size_t i = 0; i < c.actions.size(); ++i) {
    const NextAction& a = c.actions[i];
    events::Payload p;
    p.Str("action", a.action).Bool("recommended", a.recommended);
    if (!a.method.empty()) p.Str("method", a.method).Str("endpoint", a.endpoint);
    if (a.retry_after_seconds >= 0) p.Int("retry_after_seconds", a.retry_after_seconds);
    if (i > 0) actions += ",";
    actions += p.Build();
  }
  actions += "]";
  events::Payload billing;
  if (!c.plan.empty()) billing.Str("plan", c.plan);
  if (c.rate_limit_per_minute > 0) {
    billing.Int("rate_limit_per_minute", c.rate_limit_per_minute)
        .Int("requests_this_minute", c.requests_this_minute);
  }
  if (c.workers_limit > 0) {
    billing.Int("workers_in_use", c.workers_in_use).Int("workers_limit", c.workers_limit);
  }
  events::Payload contract;
  contract.Str("version", "1")
      .Bool("lease_valid", lease_valid)
      .Bool("retryable", c.error_code.empty() ? c.retry : LookupError(c.error_code).retryable)
      .Raw("next_actions", actions)
      .Raw("billing_context", billing.Build());
  if (lease_valid) {
    contract.Int("lease_expires_in_seconds", expires_in)
        .Int("recommended_heartbeat_interval_seconds", heartbeat_every);
  } else {
    contract.Int("lease_expires_in_seconds", 0).Raw("recommended_heartbeat_interval_seconds", "");
  }
  return contract.Build();
}

}  // namespace runlog::api
