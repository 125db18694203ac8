// Plan validation and $ref resolution (docs/plans.md): any plan is checked or
// refused, and every step input of a plan that checks resolves or fails with
// REFERENCE_ERROR, against a task whose input and outputs come from the input too.
#include <cstdint>
#include <string_view>

#include "events/task.h"
#include "infra/base/json.h"
#include "services/plans.h"
#include "services/tools.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const runlog::services::ToolRegistry tools(nullptr);
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  runlog::json::Document plan;
  if (!runlog::json::Parse(in, &plan)) return 0;
  auto checked = runlog::services::CheckPlan(plan, 20, tools);
  if (!checked || !plan.IsObject()) return 0;
  const runlog::json::Value* steps = runlog::json::Find(plan, "steps");
  if (steps == nullptr || !steps->IsArray()) return 0;
  runlog::events::Task task;
  task.input = R"({"a":{"b":[1,2,{"c":"d"}]},"s":"x"})";
  for (rapidjson::SizeType i = 0; i < steps->Size() && i < 20; ++i) {
    runlog::events::StepRecord done;
    done.index = i + 1;
    done.status = "succeeded";
    done.output = R"({"result":3,"items":[{"k":"v"}]})";
    const runlog::json::Value& step = (*steps)[i];
    if (step.IsObject()) {
      if (const auto* input = runlog::json::Find(step, "input"); input != nullptr) {
        (void)runlog::services::ResolveInput(*input, task, i + 1);
      }
    }
    task.steps.push_back(done);
  }
  return 0;
}
