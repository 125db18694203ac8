#include "services/account_plans.h"

#include <algorithm>
#include <memory>

#include "events/types.h"
#include "infra/base/json.h"

namespace runlog::services {
namespace {

// Set before serving, read after: never replaced while read.
std::vector<Plan>& Table() {
  static std::vector<Plan> table = DefaultPlans();
  return table;
}

}  // namespace

std::vector<Plan> DefaultPlans() {
  constexpr int64_t kUsd = 1'000'000'000;
  // name, requests/min, workers, tasks/month, claims/hour, retention days,
  // max timeout_seconds, max max_steps, default max_queue_seconds,
  // max concurrent tasks, monthly budget, executor weight
  return {{"free", 600, 2, 200, 120, 7, 300, 20, 86'400, 2, 5 * kUsd, 1},
          {"basic", 3'000, 10, 5'000, 1'200, 30, 900, 50, 604'800, 10, 100 * kUsd, 2},
          {"pro", 12'000, 25, 25'000, 4'000, 60, 3'600, 100, 604'800, 25, 1'000 * kUsd, 4},
          {"agency", 60'000, 50, 150'000, 15'000, 90, 3'600, 100, 604'800, 50, 5'000 * kUsd, 8},
          {"internal", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8}};
}

Result<std::vector<Plan>> PlansFromJson(std::string_view text) {
  json::Document doc;
  if (!json::Parse(text, &doc) || !doc.IsObject()) {
    return Fail(codes::kInvalidArgument, "the plans file is not a JSON object");
  }
  const json::Value* list = json::Find(doc, "plans");
  if (list == nullptr || !list->IsArray()) {
    return Fail(codes::kInvalidArgument, "the plans file has no \"plans\" array");
  }
  std::vector<Plan> plans = DefaultPlans();
  for (const json::Value& v : list->GetArray()) {
    const std::string name = v.IsObject() ? json::String(v, "name") : "";
    if (name.empty()) return Fail(codes::kInvalidArgument, "a plan without a \"name\"");
    // A plan already in the table keeps the values of the fields left out.
    auto it =
        std::find_if(plans.begin(), plans.end(), [&](const Plan& p) { return p.name == name; });
    if (it == plans.end()) it = plans.insert(plans.end(), Plan{name});
    Plan& p = *it;
    struct Number {
      const char* field;
      int64_t Plan::*member;
    };
    for (const Number& n :
         {Number{"requests_per_minute", &Plan::requests_per_minute},
          Number{"workers", &Plan::workers}, Number{"tasks_per_month", &Plan::tasks_per_month},
          Number{"claims_per_hour", &Plan::claims_per_hour},
          Number{"retention_days", &Plan::retention_days},
          Number{"max_timeout_seconds", &Plan::max_timeout_seconds},
          Number{"max_steps", &Plan::max_steps},
          Number{"max_queue_seconds", &Plan::max_queue_seconds},
          Number{"max_concurrent_tasks", &Plan::max_concurrent_tasks},
          Number{"weight", &Plan::weight}}) {
      const json::Value* f = json::Find(v, n.field);
      if (f == nullptr) continue;
      if (!f->IsInt64() || f->GetInt64() < 0) {
        return Fail(codes::kInvalidArgument,
                    "plan " + name + ": " + n.field + " must be an integer ≥ 0 (0: unlimited)");
      }
      p.*n.member = f->GetInt64();
    }
    if (p.weight < 1) return Fail(codes::kInvalidArgument, "plan " + name + ": weight must be ≥ 1");
    if (const json::Value* budget = json::Find(v, "monthly_budget_usd")) {
      if (!budget->IsNumber() || budget->GetDouble() < 0 || budget->GetDouble() > 1e9) {
        return Fail(codes::kInvalidArgument, "plan " + name +
                                                 ": monthly_budget_usd must be a number from 0 "
                                                 "to 1e9 (0: unlimited)");
      }
      p.monthly_budget_nanos = events::NanosOfUsd(budget->GetDouble());
    }
  }
  return plans;
}

void SetPlanTable(std::vector<Plan> plans) {
  if (!plans.empty()) Table() = std::move(plans);
}

namespace {
const Plan* Find(const std::string& name) {
  for (const Plan& p : Table()) {
    if (p.name == name) return &p;
  }
  return nullptr;
}
}  // namespace

const Plan& PlanNamed(const std::string& name) {
  const Plan* p = Find(name);
  return p != nullptr ? *p : Table().front();
}

bool PlanExists(const std::string& name) { return Find(name) != nullptr; }

}  // namespace runlog::services
