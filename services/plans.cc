#include "services/plans.h"

#include <rapidjson/pointer.h>

#include "events/canonical_json.h"
#include "events/payload.h"

namespace runlog::services {
namespace {

using events::Payload;

// {"$ref": "..."}: an object with that one member, a string.
const json::Value* RefOf(const json::Value& v) {
  if (!v.IsObject() || v.MemberCount() != 1) return nullptr;
  const json::Value* ref = json::Find(v, "$ref");
  return ref != nullptr && ref->IsString() ? ref : nullptr;
}

// Splits "/steps/N/output/rest" or "/input/rest"; false if it is neither.
bool SplitRef(std::string_view ref, int64_t* step, std::string* rest) {
  auto tail = [&](std::string_view prefix) {
    if (!ref.starts_with(prefix)) return false;
    std::string_view r = ref.substr(prefix.size());
    if (!r.empty() && r.front() != '/') return false;
    *rest = std::string(r);
    return true;
  };
  if (tail("/input")) {
    *step = 0;
    return true;
  }
  if (!ref.starts_with("/steps/")) return false;
  std::string_view r = ref.substr(7);
  size_t digits = 0;
  while (digits < r.size() && digits < 6 && std::isdigit(static_cast<unsigned char>(r[digits])))
    ++digits;
  if (digits == 0 || r[0] == '0') return false;
  *step = std::stoll(std::string(r.substr(0, digits)));
  ref = r.substr(digits);
  return tail("/output");
}

// Every reference in `v`, with where it is.
void FindRefs(const json::Value& v, const std::string& path,
              std::vector<std::pair<std::string, std::string>>* out) {
  if (const json::Value* ref = RefOf(v)) {
    out->emplace_back(path, std::string(ref->GetString(), ref->GetStringLength()));
  } else if (v.IsObject()) {
    for (const auto& m : v.GetObject()) {
      FindRefs(m.value, path + "/" + std::string(m.name.GetString(), m.name.GetStringLength()),
               out);
    }
  } else if (v.IsArray()) {
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
      FindRefs(v[i], path + "/" + std::to_string(i), out);
    }
  }
}

class Failures {
 public:
  void Add(int64_t step_index, const std::string& path, const std::string& code,
           const std::string& message) {
    if (!text_.empty()) text_ += ",";
    Payload p;
    p.Str("code", code).Str("message", message).Str("path", path);
    if (step_index > 0) {
      p.Int("step_index", step_index);
    } else {
      p.Raw("step_index", "");
    }
    text_ += p.Build();
  }
  std::string Build() const { return text_.empty() ? "" : "[" + text_ + "]"; }

 private:
  std::string text_;
};

// Copies `v` into `out`, replacing references; false with `error` set on the first bad one.
bool Substitute(const json::Value& v, const json::Document& input,
                const std::vector<json::Document>& outputs, json::Value& out,
                json::Document::AllocatorType& a, std::string* error) {
  if (const json::Value* ref = RefOf(v)) {
    const std::string text(ref->GetString(), ref->GetStringLength());
    int64_t step = 0;
    std::string rest;
    if (!SplitRef(text, &step, &rest)) {
      *error = "reference " + text + " names neither /input nor /steps/N/output";
      return false;
    }
    const json::Value* root = nullptr;
    if (step == 0) {
      root = &input;
    } else if (step <= static_cast<int64_t>(outputs.size()) && !outputs[step - 1].IsNull()) {
      root = &outputs[step - 1];
    } else {
      *error =
          "reference " + text + " names step " + std::to_string(step) + ", which has no output";
      return false;
    }
    rapidjson::Pointer pointer(rest.c_str(), rest.size());
    const json::Value* found = pointer.IsValid() ? pointer.Get(*root) : nullptr;
    if (found == nullptr) {
      *error = "reference " + text + " names nothing";
      return false;
    }
    out.CopyFrom(*found, a);
    return true;
  }
  if (v.IsObject()) {
    out.SetObject();
    for (const auto& m : v.GetObject()) {
      json::Value value;
      if (!Substitute(m.value, input, outputs, value, a, error)) return false;
      out.AddMember(json::Value(m.name, a), value, a);
    }
    return true;
  }
  if (v.IsArray()) {
    out.SetArray();
    for (const json::Value& e : v.GetArray()) {
      json::Value value;
      if (!Substitute(e, input, outputs, value, a, error)) return false;
      out.PushBack(value, a);
    }
    return true;
  }
  out.CopyFrom(v, a);
  return true;
}

}  // namespace

Result<PlanCheck> CheckPlan(const json::Value& plan, int64_t max_steps, const ToolRegistry& tools,
                            const std::set<int64_t>& recorded_agent_steps, int64_t first_index) {
  const json::Value* steps = json::Find(plan, "steps");
  if (!plan.IsObject() || steps == nullptr || !steps->IsArray() || steps->Empty()) {
    return Fail(codes::kValidationError, "plan.steps must be a non-empty array of steps",
                R"({"field":"plan.steps"})");
  }
  if (steps->Size() > 1000) {
    return Fail(codes::kValidationError, "plan.steps has more than 1000 steps",
                R"({"field":"plan.steps"})");
  }
  PlanCheck out;
  Failures failures;
  const int64_t count = steps->Size();
  if (count + first_index - 1 > max_steps) {
    failures.Add(0, "/steps", codes::kTooManySteps,
                 "the plan has " + std::to_string(count + first_index - 1) +
                     " steps; max_steps is " + std::to_string(max_steps));
  }
  std::string text = "{\"steps\":[";
  for (int64_t i = 0; i < count; ++i) {
    const json::Value& step = (*steps)[i];
    const int64_t index = i + first_index;
    const std::string path = "/steps/" + std::to_string(i);
    if (!step.IsObject()) {
      return Fail(codes::kValidationError,
                  "plan.steps[" + std::to_string(i) + "] must be an object",
                  Payload().Str("field", "plan" + path).Build());
    }
    const std::string name = json::String(step, "tool");
    const json::Value* input = json::FindSet(step, "input");
    const std::string input_text = input == nullptr ? "{}" : events::CanonicalText(*input);
    if (const json::Value* given = json::Find(step, "step_index");
        given != nullptr && !(given->IsInt64() && given->GetInt64() == index)) {
      failures.Add(index, path + "/step_index", codes::kBadStepIndex,
                   "step_index must be " + std::to_string(index) + " (1-based, in order)");
    }
    const Tool* tool = tools.Find(name);
    std::string version = "1";
    if (tool == nullptr) {
      std::string known;
      for (const std::string& n : tools.Names()) known += (known.empty() ? "" : ", ") + n;
      failures.Add(index, path + "/tool", codes::kUnknownTool,
                   (name.empty() ? std::string("a step needs a tool") : "no tool '" + name + "'") +
                       "; tools: " + known);
    } else {
      version = std::string(tool->version());
      const std::string wanted = json::String(step, "tool_version", version);
      if (wanted != version) {
        failures.Add(index, path + "/tool_version", codes::kToolVersionMismatch,
                     "this runlogd has " + name + " version " + version + ", not " + wanted);
      }
      if (events::IsPlannerTool(name) && (index != 1 || count != 1)) {
        failures.Add(index, path + "/tool", codes::kUnsupportedPlan,
                     "a plan step must be its plan's only step; the plan it returns follows it");
      }
      if (input != nullptr && !input->IsObject()) {
        failures.Add(index, path + "/input", codes::kSchemaMismatch, "a step's input is an object");
      } else {
        std::vector<std::pair<std::string, std::string>> refs;
        if (input != nullptr) FindRefs(*input, path + "/input", &refs);
        if (refs.size() > kMaxReferences) {
          failures.Add(index, path + "/input", codes::kInvalidReference,
                       "a step may hold at most " + std::to_string(kMaxReferences) + " references");
        }
        for (const auto& [where, ref] : refs) {
          int64_t from = 0;
          std::string rest;
          if (!SplitRef(ref, &from, &rest) || from >= index) {
            failures.Add(index, where, codes::kInvalidReference,
                         "reference " + ref +
                             " must name /input/... or /steps/N/output/... of "
                             "an earlier step");
          }
        }
        // With references the input is checked when the step runs, once resolved.
        json::Document empty;
        empty.SetObject();
        if (refs.empty()) {
          for (const SchemaProblem& p : tools.CheckInput(*tool, input ? *input : empty)) {
            failures.Add(index, path + "/input" + p.path, codes::kSchemaMismatch,
                         "input of " + name + " " + p.message);
          }
        }
      }
    }
    if (i > 0) text += ",";
    text += Payload()
                .Raw("input", input_text)
                .Int("step_index", index)
                .Str("tool", name)
                .Str("tool_version", version)
                .Build();
  }
  out.plan = text + "]}";
  out.failures = failures.Build();
  // A plan of one agent step is run by a worker alone (no step events); every
  // other plan is driven by the executors, which hand worker steps out.
  out.executor = !(count == 1 && first_index == 1 && json::String((*steps)[0], "tool") == "agent" &&
                   !recorded_agent_steps.contains(1));
  return out;
}

Result<std::string> ResolveInput(const json::Value& input, const events::Task& task,
                                 int64_t index) {
  std::vector<std::pair<std::string, std::string>> refs;
  FindRefs(input, "", &refs);
  if (refs.empty()) return events::CanonicalText(input);
  json::Document task_input;
  (void)json::Parse(task.input.empty() ? "{}" : task.input, &task_input);
  std::vector<json::Document> outputs(std::max<int64_t>(0, index - 1));
  for (int64_t i = 0; i + 1 < index && i < static_cast<int64_t>(task.steps.size()); ++i) {
    const events::StepRecord& s = task.steps[i];
    if (s.status == "succeeded" && !s.output.empty()) (void)json::Parse(s.output, &outputs[i]);
  }
  json::Document out;
  std::string error;
  if (!Substitute(input, task_input, outputs, out, out.GetAllocator(), &error)) {
    return Fail(codes::kReferenceError, error);
  }
  std::string text;
  if (auto s = events::WriteCanonical(out, &text); !s) {
    return Fail(codes::kReferenceError,
                "the resolved input cannot be stored: " + s.error().message);
  }
  return text;
}

std::string PlanFailureJson(const std::string& code, const std::string& message) {
  Failures failures;
  failures.Add(0, "", code, message);
  return failures.Build();
}

}  // namespace runlog::services
