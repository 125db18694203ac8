#pragma once
// The tools a plan's steps call. Each has a name and a version (both part of
// the step hash), a JSON Schema for its input and its output, and runs one
// step: the deterministic built-ins in process (math, json, template), code in
// the sandbox (python_sandbox, shell_sandbox), and `agent` by an external
// worker through the claim protocol (executors only run it in a replay, from
// the recorded output). docs/plans.md, "Tools", has every tool's input and output.

#include <rapidjson/schema.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "events/types.h"
#include "infra/base/json.h"

namespace runlog::sandbox {
class Sandbox;
}

namespace runlog::services {

class LlmClient;

struct ToolCall {
  const json::Value* input = nullptr;         // resolved, valid against the input schema
  std::chrono::milliseconds wall{0};          // the time the step may take
  const std::atomic<bool>* cancel = nullptr;  // true: stop now
  std::string recorded_output;                // a replay's recorded output (agent)
};

struct ToolOutcome {
  bool ok = false;
  std::string output;  // canonical JSON object, when ok
  std::string error_code;
  std::string error_message;
  events::Usage usage;  // tokens and model (llm), sandbox CPU time; unpriced
  bool sandboxed = false;
  bool timed_out = false;
};

class Tool {
 public:
  virtual ~Tool() = default;
  virtual std::string_view name() const = 0;
  virtual std::string_view version() const = 0;
  virtual std::string_view input_schema() const = 0;
  virtual std::string_view output_schema() const = 0;
  virtual ToolOutcome Run(const ToolCall& call) const = 0;
};

// One way a value fails a schema: where in the value, and why.
struct SchemaProblem {
  std::string path;  // JSON Pointer into the value
  std::string message;
};

// Problems of `value` against a JSON Schema (RapidJSON's validator); empty when valid.
std::vector<SchemaProblem> CheckSchema(const rapidjson::SchemaDocument& schema,
                                       const json::Value& value);

class ToolRegistry {
 public:
  // The built-in tools. Without a sandbox the code tools fail with
  // SANDBOX_ERROR; without a model client `llm` and `llm_plan` fail with TOOL_ERROR.
  explicit ToolRegistry(sandbox::Sandbox* sandbox, const LlmClient* llm = nullptr);
  // A model is configured: the built-in planner (`llm_plan`) can plan.
  bool has_model() const { return has_model_; }
  ~ToolRegistry();

  const Tool* Find(std::string_view name) const;
  std::vector<std::string> Names() const;
  // Problems of `value` against the tool's input or output schema; empty when valid.
  std::vector<SchemaProblem> CheckInput(const Tool& tool, const json::Value& value) const;
  std::vector<SchemaProblem> CheckOutput(const Tool& tool, const json::Value& value) const;

 private:
  struct Entry;
  std::map<std::string, std::unique_ptr<Entry>, std::less<>> tools_;
  bool has_model_ = false;
};

// The largest output (and resolved input) a step may have; past it the step fails.
inline constexpr size_t kMaxToolOutputBytes = 1 << 20;

// A task's `error` {"code","message"} and a failed step's `failure`
// {"code","index","message","step"}, as canonical JSON.
std::string ErrorJson(const std::string& code, const std::string& message);
std::string FailureJson(const std::string& code, int64_t index, const std::string& message,
                        const std::string& step);

// The math tool's evaluator, exposed for tests: the canonical JSON number of
// `expression`, or an error message.
bool EvaluateMath(std::string_view expression, std::string* result, std::string* error);

}  // namespace runlog::services
