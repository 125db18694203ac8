#pragma once
// Account plans: what each plan allows an account (docs/tenancy.md). The
// built-in table carries Orchestrion's numbers (workers, tasks a month,
// claims an hour, retention) and runlog's own (requests a minute, caps on a
// task's limits); `runlogd --plans FILE` replaces it with a JSON file of the
// same fields. An account's plan is its keys' plan until an admin sets
// another (`account.plan_set`, services/keys.h).
//
// Thread contract: the table is set once, before serving (SetPlanTable), and
// only read after.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "infra/base/result.h"

namespace runlog::services {

// 0 means unlimited, for every number.
struct Plan {
  std::string name;
  int64_t requests_per_minute = 0;
  int64_t workers = 0;          // distinct worker_ids holding leases at once
  int64_t tasks_per_month = 0;  // tasks created in a calendar month (UTC)
  int64_t claims_per_hour = 0;  // worker claims that took a task, in a clock hour (UTC)
  int64_t retention_days = 0;
  int64_t max_timeout_seconds = 0;   // cap on a task's timeout_seconds (max_total_seconds)
  int64_t max_steps = 0;             // cap on a task's max_steps
  int64_t max_queue_seconds = 0;     // default of a task's max_queue_seconds (0: none)
  int64_t max_concurrent_tasks = 0;  // the account's tasks running on runlog's executors at once
  int64_t monthly_budget_nanos = 0;  // cost a calendar month (UTC), in nanodollars
  int64_t weight = 1;                // its share of the executors against other accounts' (never 0)
};

// The built-in plans: free, basic, pro, agency, internal.
std::vector<Plan> DefaultPlans();
// Plans from JSON: {"plans": [{"name": …, <the fields above>}, …]}; each
// named plan replaces the built-in one of that name, others are added.
// INVALID_ARGUMENT names the first problem.
[[nodiscard]] Result<std::vector<Plan>> PlansFromJson(std::string_view text);
// Replaces the table PlanNamed reads (before serving).
void SetPlanTable(std::vector<Plan> plans);
// The plan `name`, or the first plan of the table (free) if there is none by that name.
const Plan& PlanNamed(const std::string& name);
bool PlanExists(const std::string& name);

}  // namespace runlog::services
