#pragma once
// Plans: checking a given plan against the tools before anything runs, and
// resolving a step's references to the task input and earlier outputs when it
// runs. docs/plans.md has the rules and the reference syntax.

#include <set>
#include <string>

#include "events/task.h"
#include "infra/base/json.h"
#include "infra/base/result.h"
#include "services/tools.h"

namespace runlog::services {

struct PlanCheck {
  // Canonical {"steps":[{"input","step_index","tool","tool_version"}, ...]}.
  std::string plan;
  // Canonical array of {"code","message","path","step_index"}; empty when the plan is valid.
  std::string failures;
  bool executor = false;  // every step runs on runlog's executors
};

// Checks `plan` ({"steps": [...]}, as a request gives it). A plan whose shape
// is wrong (not an object, no steps array, a step that is not an object)
// answers VALIDATION_ERROR at once; every other problem (unknown tool, input
// against the tool's schema, too many steps, a bad reference, a `plan` step
// that is not alone) becomes a failure and the task fails before it runs.
// `recorded_agent_steps`: step indexes a replay has outputs for.
// `first_index`: the index of the first step (a planner's plan follows its
// `plan` step, so its steps are numbered from 2, and max_steps counts that step).
[[nodiscard]] Result<PlanCheck> CheckPlan(const json::Value& plan, int64_t max_steps,
                                          const ToolRegistry& tools,
                                          const std::set<int64_t>& recorded_agent_steps = {},
                                          int64_t first_index = 1);

// A failures array (as in PlanCheck) of one problem with the plan as a whole.
std::string PlanFailureJson(const std::string& code, const std::string& message);

// The plan of a task whose plan a planner agent writes: one `plan` step.
inline constexpr char kPlannerPlan[] =
    R"({"steps":[{"input":{},"step_index":1,"tool":"plan","tool_version":"1"}]})";

// The plan of a task without one: a single `agent` step, done by a worker.
inline constexpr char kAgentPlan[] =
    R"({"steps":[{"input":{},"step_index":1,"tool":"agent","tool_version":"1"}]})";

// `input` of step `index` with every {"$ref": pointer} replaced by what it
// names: "/input/..." in the task input, "/steps/N/output/..." in the output of
// an earlier step N. Canonical JSON, or REFERENCE_ERROR.
[[nodiscard]] Result<std::string> ResolveInput(const json::Value& input, const events::Task& task,
                                               int64_t index);

inline constexpr size_t kMaxReferences = 100;  // per step: bounds what resolving may copy

}  // namespace runlog::services
