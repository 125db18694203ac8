// The built-in tools, plan checking and reference resolution, and the hash
// test vectors of docs/hashing.md.

#include "services/tools.h"

#include <gtest/gtest.h>

#include "events/hashes.h"
#include "services/plans.h"

namespace runlog::services {
namespace {

std::string Math(const std::string& expression) {
  std::string result, error;
  if (!EvaluateMath(expression, &result, &error)) return "error: " + error;
  return result;
}

TEST(MathTool, ExactIntegersAndDeterministicFloats) {
  EXPECT_EQ(Math("1+1"), "2");
  EXPECT_EQ(Math("2*(3+4) - 5"), "9");
  EXPECT_EQ(Math("9007199254740993 + 0"), "9007199254740993");  // beyond a double's 2^53
  EXPECT_EQ(Math("9223372036854775807"), "9223372036854775807");
  EXPECT_EQ(Math("7/2"), "3.5");
  EXPECT_EQ(Math("8/2"), "4");
  EXPECT_EQ(Math("7//2"), "3");
  EXPECT_EQ(Math("-7//2"), "-4");  // floor division, as Python
  EXPECT_EQ(Math("-7%3"), "2");
  EXPECT_EQ(Math("1 // 0.1"), "9");  // Python's float floor division, not floor(1/0.1)
  EXPECT_EQ(Math("2**10"), "1024");
  EXPECT_EQ(Math("-2**2"), "-4");
  EXPECT_EQ(Math("2**-1"), "0.5");
  EXPECT_EQ(Math("0.1+0.2"), "0.30000000000000004");
  EXPECT_EQ(Math("1e21*1"), "1e+21");
  EXPECT_EQ(Math("abs(-3) + max(1, 2.5, 2) + min(4, 3)"), "8.5");
  EXPECT_EQ(Math("sqrt(16) + floor(2.7) + ceil(2.1)"), "9");
}

TEST(MathTool, RefusesWhatItCannotComputeExactly) {
  EXPECT_EQ(Math("9223372036854775807 + 1"), "error: integer overflow");
  EXPECT_EQ(Math("2**64"), "error: integer overflow");
  EXPECT_EQ(Math("99999999999999999999"),
            "error: the integer 99999999999999999999 is beyond 64 bits");
  EXPECT_EQ(Math("1/0"), "error: division by zero");
  EXPECT_EQ(Math("1e308*10"), "error: the result is not a finite number");
  EXPECT_EQ(Math("1+"), "error: the expression ends too early");
  EXPECT_EQ(Math(".e5"), "error: '.e5' is not a number");
  EXPECT_EQ(Math("__import__('os')"), "error: unexpected '_' at offset 0");
  EXPECT_EQ(Math("open(1)"), "error: unknown function 'open'");
  EXPECT_EQ(Math(std::string(200, '(') + "1" + std::string(200, ')')),
            "error: the expression nests deeper than 64 levels");
}

class ToolsTest : public ::testing::Test {
 protected:
  ToolOutcome Run(const std::string& tool, const std::string& input) {
    json::Document doc;
    doc.Parse(input.c_str());
    const Tool* t = tools_.Find(tool);
    EXPECT_NE(t, nullptr) << tool;
    EXPECT_TRUE(tools_.CheckInput(*t, doc).empty()) << input;
    ToolCall call;
    call.input = &doc;
    return t->Run(call);
  }
  Result<PlanCheck> Check(const std::string& plan, int64_t max_steps = 20) {
    json::Document doc;
    doc.Parse(plan.c_str());
    return CheckPlan(doc, max_steps, tools_);
  }
  ToolRegistry tools_{nullptr};
};

TEST_F(ToolsTest, JsonGetsMergesAndBuilds) {
  EXPECT_EQ(Run("json", R"({"op":"get","value":{"a":[1,{"b":"x"}]},"pointer":"/a/1/b"})").output,
            R"({"result":"x"})");
  EXPECT_EQ(Run("json", R"({"op":"merge","objects":[{"a":1,"b":{"c":2}},{"b":{"d":3},"a":null}]})")
                .output,
            R"({"result":{"b":{"c":2,"d":3}}})");
  EXPECT_EQ(Run("json", R"({"op":"build","fields":{"z":1,"a":[true]}})").output,
            R"({"result":{"a":[true],"z":1}})");
  ToolOutcome missing = Run("json", R"({"op":"get","value":{},"pointer":"/nope"})");
  EXPECT_FALSE(missing.ok);
  EXPECT_EQ(missing.error_code, "TOOL_ERROR");
}

TEST_F(ToolsTest, TemplateRendersValuesByPath) {
  EXPECT_EQ(
      Run("template",
          R"({"template":"{{who}} has {{n}} of {{ box.kind }}","values":{"who":"Ann","n":2,"box":{"kind":"tea"}}})")
          .output,
      R"({"result":"Ann has 2 of tea"})");
  EXPECT_FALSE(Run("template", R"({"template":"{{missing}}","values":{}})").ok);
}

TEST_F(ToolsTest, CodeToolsWithoutASandboxFailWithSandboxError) {
  ToolOutcome o = Run("python_sandbox", R"J({"code":"print(1)"})J");
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.error_code, "SANDBOX_ERROR");
}

TEST_F(ToolsTest, AValidPlanIsNormalisedWithToolVersions) {
  auto plan = Check(R"({"steps":[{"tool":"math","input":{"expression":"1+1"}},
                                  {"tool":"template","step_index":2,
                                   "input":{"template":"{{r}}","values":{"r":{"$ref":"/steps/1/output/result"}}}}]})");
  ASSERT_TRUE(plan) << plan.error().ToString();
  EXPECT_EQ(plan->failures, "");
  EXPECT_TRUE(plan->executor);
  EXPECT_EQ(
      plan->plan,
      R"({"steps":[{"input":{"expression":"1+1"},"step_index":1,"tool":"math","tool_version":"1"},)"
      R"({"input":{"template":"{{r}}","values":{"r":{"$ref":"/steps/1/output/result"}}},"step_index":2,"tool":"template","tool_version":"1"}]})");
}

TEST_F(ToolsTest, EveryPlanProblemIsAFailureWithItsPath) {
  auto plan = Check(R"({"steps":[{"tool":"nope"},
                                  {"tool":"math","input":{"expression":7}},
                                  {"tool":"math","input":{"expression":{"$ref":"/steps/3/output/result"}}},
                                  {"tool":"math","step_index":9,"input":{"expression":"1"}}]})",
                    3);
  ASSERT_TRUE(plan);
  json::Document failures;
  failures.Parse(plan->failures.c_str());
  ASSERT_TRUE(failures.IsArray()) << plan->failures;
  std::vector<std::string> codes;
  for (const auto& f : failures.GetArray()) codes.push_back(json::String(f, "code"));
  EXPECT_EQ(codes, (std::vector<std::string>{"TOO_MANY_STEPS", "UNKNOWN_TOOL", "SCHEMA_MISMATCH",
                                             "INVALID_REFERENCE", "BAD_STEP_INDEX"}))
      << plan->failures;
  EXPECT_EQ(json::String(failures[2], "path"), "/steps/1/input/expression");
}

TEST_F(ToolsTest, AgentStepsMixWithBuiltInsAndPlanStepsStandAlone) {
  auto alone = Check(R"({"steps":[{"tool":"agent","input":{"q":1}}]})");
  ASSERT_TRUE(alone);
  EXPECT_EQ(alone->failures, "");
  EXPECT_FALSE(alone->executor);  // a worker runs it alone, as before plans
  auto mixed = Check(
      R"({"steps":[{"tool":"math","input":{"expression":"1"}},{"tool":"agent","input":{"n":{"$ref":"/steps/1/output/result"}}}]})");
  ASSERT_TRUE(mixed);
  EXPECT_EQ(mixed->failures, "");
  EXPECT_TRUE(mixed->executor);  // the executors drive it and hand the agent step out
  auto planner = Check(R"({"steps":[{"tool":"plan"}]})");
  ASSERT_TRUE(planner);
  EXPECT_EQ(planner->failures, "");
  EXPECT_TRUE(planner->executor);
  auto late = Check(R"({"steps":[{"tool":"math","input":{"expression":"1"}},{"tool":"plan"}]})");
  ASSERT_TRUE(late);
  EXPECT_NE(late->failures.find("UNSUPPORTED_PLAN"), std::string::npos);
  // A planner's plan is numbered after its plan step, which max_steps counts.
  json::Document d;
  d.Parse(R"({"steps":[{"tool":"math","input":{"expression":"1"}},
                       {"tool":"math","step_index":3,"input":{"expression":{"$ref":"/steps/1/output/x"}}}]})");
  auto after = CheckPlan(d, 3, tools_, {}, 2);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->failures, "");
  EXPECT_NE(after->plan.find(R"("step_index":2)"), std::string::npos);
  auto over = CheckPlan(d, 2, tools_, {}, 2);
  ASSERT_TRUE(over);
  EXPECT_NE(over->failures.find("TOO_MANY_STEPS"), std::string::npos);
}

TEST_F(ToolsTest, AMalformedPlanIsAValidationError) {
  EXPECT_EQ(Check(R"({"steps":[]})").error().code, "VALIDATION_ERROR");
  EXPECT_EQ(Check(R"({"steps":[1]})").error().code, "VALIDATION_ERROR");
  EXPECT_EQ(Check(R"([1])").error().code, "VALIDATION_ERROR");
}

TEST(ResolveInput, ReferencesNameTheInputAndEarlierOutputs) {
  events::Task task;
  task.input = R"({"topic":{"name":"tea"}})";
  task.steps.resize(1);
  task.steps[0].index = 1;
  task.steps[0].status = "succeeded";
  task.steps[0].output = R"({"result":[10,20]})";
  json::Document input;
  input.Parse(
      R"({"a":{"$ref":"/steps/1/output/result/1"},"b":[{"$ref":"/input/topic/name"}],"c":{"$ref":1,"d":2}})");
  auto resolved = ResolveInput(input, task, 2);
  ASSERT_TRUE(resolved) << resolved.error().ToString();
  EXPECT_EQ(*resolved, R"({"a":20,"b":["tea"],"c":{"$ref":1,"d":2}})");
  input.Parse(R"({"a":{"$ref":"/steps/1/output/nope"}})");
  EXPECT_EQ(ResolveInput(input, task, 2).error().code, codes::kReferenceError);
  input.Parse(R"({"a":{"$ref":"/steps/2/output"}})");
  EXPECT_EQ(ResolveInput(input, task, 2).error().code, codes::kReferenceError);
}

// The vectors of docs/hashing.md; tests/audit/check_hashes.py computes the same.
TEST(Hashes, MatchTheDocumentedVectors) {
  events::StepRecord step;
  step.index = 1;
  step.tool = "math";
  step.tool_version = "1";
  step.input = R"({"expression":"1+1"})";
  step.status = "succeeded";
  step.output = R"({"result":2})";
  const std::string step_hash = events::StepHash(step);
  EXPECT_EQ(step_hash, "8f8de786fb71f4c2e5ca2a9bd7683d81ab2c1d1f3acb1408038a81a5801ce55d");
  events::Task task;
  task.input = R"({"topic":"sum"})";
  task.limits =
      R"({"max_step_seconds":10,"max_steps":12,"max_tokens":100000,"max_total_seconds":45})";
  task.plan =
      R"({"steps":[{"input":{"expression":"1+1"},"step_index":1,"tool":"math","tool_version":"1"}]})";
  EXPECT_EQ(events::TaskHash(task, "succeeded", "[\"" + step_hash + "\"]", ""),
            "0ee6fe9f445e9f56394fc61df8cff85fc791588dc4d87b06ab7796566a6ffbf6");
}

}  // namespace
}  // namespace runlog::services
