#include "services/tools.h"

#include <rapidjson/pointer.h>
#include <rapidjson/schema.h>

#include <cmath>
#include <cstring>
#include <functional>

#include "events/canonical_json.h"
#include "events/payload.h"
#include "events/task.h"
#include "sandbox/sandbox.h"
#include "services/llm.h"

namespace runlog::services {
namespace {

using events::Payload;

ToolOutcome Ok(std::string output) {
  ToolOutcome o;
  o.ok = true;
  o.output = std::move(output);
  return o;
}

ToolOutcome Error(std::string code, std::string message) {
  ToolOutcome o;
  o.error_code = std::move(code);
  o.error_message = std::move(message);
  return o;
}

// ---- math: a recursive-descent evaluator over exact int64 and IEEE doubles.

struct Num {
  bool is_int = true;
  int64_t i = 0;
  double d = 0;
  double AsDouble() const { return is_int ? static_cast<double>(i) : d; }
};

class MathParser {
 public:
  explicit MathParser(std::string_view text) : s_(text) {}

  bool Evaluate(Num* out, std::string* error) {
    Num v;
    if (!Expr(&v)) {
      *error = error_;
      return false;
    }
    Skip();
    if (pos_ != s_.size()) {
      *error = "unexpected '" + std::string(1, s_[pos_]) + "' at offset " + std::to_string(pos_);
      return false;
    }
    *out = v;
    return true;
  }

 private:
  static constexpr int kMaxDepth = 64;

  bool Fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }
  void Skip() {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool Eat(std::string_view op) {
    Skip();
    if (s_.substr(pos_, op.size()) != op) return false;
    // "*" must not match the first half of "**", nor "/" of "//".
    if ((op == "*" || op == "/") && pos_ + 1 < s_.size() && s_[pos_ + 1] == op[0]) return false;
    pos_ += op.size();
    return true;
  }

  bool Checked(Num* v) {
    if (!v->is_int && !std::isfinite(v->d)) return Fail("the result is not a finite number");
    return true;
  }

  bool Binary(char op, const Num& a, const Num& b, Num* out) {
    if (a.is_int && b.is_int && op != '/') {
      int64_t r = 0;
      bool overflow = false;
      switch (op) {
        case '+':
          overflow = __builtin_add_overflow(a.i, b.i, &r);
          break;
        case '-':
          overflow = __builtin_sub_overflow(a.i, b.i, &r);
          break;
        case '*':
          overflow = __builtin_mul_overflow(a.i, b.i, &r);
          break;
        case 'f':  // floor division, as Python's //
        case '%': {
          if (b.i == 0) return Fail("division by zero");
          if (a.i == INT64_MIN && b.i == -1) return Fail("integer overflow");
          int64_t q = a.i / b.i, m = a.i % b.i;
          if (m != 0 && ((m < 0) != (b.i < 0))) {
            --q;
            m += b.i;
          }
          r = op == 'f' ? q : m;
          break;
        }
        case '^': {
          if (b.i < 0) break;  // a negative power is a float, below
          if (a.i == 0 || a.i == 1) {
            r = b.i == 0 ? 1 : a.i;
          } else if (a.i == -1) {
            r = b.i % 2 == 0 ? 1 : -1;
          } else if (b.i > 63) {
            overflow = true;  // |a| >= 2
          } else {
            r = 1;
            for (int64_t k = 0; k < b.i && !overflow; ++k) {
              overflow = __builtin_mul_overflow(r, a.i, &r);
            }
          }
          if (overflow) return Fail("integer overflow");
          *out = Num{true, r, 0};
          return true;
        }
      }
      if (op != '^') {
        if (overflow) return Fail("integer overflow");
        *out = Num{true, r, 0};
        return true;
      }
    }
    if (op == '/' && a.is_int && b.is_int) {
      if (b.i == 0) return Fail("division by zero");
      if (!(a.i == INT64_MIN && b.i == -1) && a.i % b.i == 0) {
        *out = Num{true, a.i / b.i, 0};
        return true;
      }
    }
    const double x = a.AsDouble(), y = b.AsDouble();
    double r = 0;
    switch (op) {
      case '+':
        r = x + y;
        break;
      case '-':
        r = x - y;
        break;
      case '*':
        r = x * y;
        break;
      case '/':
        if (y == 0) return Fail("division by zero");
        r = x / y;
        break;
      case 'f': {  // as Python's float // (floor of the exact quotient)
        if (y == 0) return Fail("division by zero");
        double mod = std::fmod(x, y);
        double div = (x - mod) / y;
        if (mod != 0 && ((y < 0) != (mod < 0))) div -= 1.0;
        r = std::floor(div);
        if (div - r > 0.5) r += 1.0;
        if (div == 0) r = std::copysign(0.0, x / y);
        break;
      }
      case '%':
        if (y == 0) return Fail("division by zero");
        r = std::fmod(x, y);
        if (r != 0 && ((r < 0) != (y < 0))) r += y;
        break;
      case '^':
        r = std::pow(x, y);
        break;
    }
    *out = Num{false, 0, r};
    return Checked(out);
  }

  bool Expr(Num* v) {
    if (++depth_ > kMaxDepth) return Fail("the expression nests deeper than 64 levels");
    if (!Term(v)) return false;
    while (true) {
      char op = Eat("+") ? '+' : Eat("-") ? '-' : 0;
      if (op == 0) break;
      Num rhs;
      if (!Term(&rhs) || !Binary(op, *v, rhs, v)) return false;
    }
    --depth_;
    return true;
  }

  bool Term(Num* v) {
    if (!Unary(v)) return false;
    while (true) {
      char op = Eat("//") ? 'f' : Eat("*") ? '*' : Eat("/") ? '/' : Eat("%") ? '%' : 0;
      if (op == 0) break;
      Num rhs;
      if (!Unary(&rhs) || !Binary(op, *v, rhs, v)) return false;
    }
    return true;
  }

  bool Unary(Num* v) {
    if (++depth_ > kMaxDepth) return Fail("the expression nests deeper than 64 levels");
    bool ok;
    if (Eat("-")) {
      ok = Unary(v) && Binary('-', Num{true, 0, 0}, *v, v);
      if (ok && !v->is_int && v->d == 0) v->d = 0;  // -0 is 0
    } else if (Eat("+")) {
      ok = Unary(v);
    } else {
      ok = Power(v);
    }
    --depth_;
    return ok;
  }

  bool Power(Num* v) {
    if (!Atom(v)) return false;
    if (Eat("**")) {
      Num rhs;
      if (!Unary(&rhs)) return false;  // right-associative; -2**2 is -(2**2)
      return Binary('^', *v, rhs, v);
    }
    return true;
  }

  bool Atom(Num* v) {
    Skip();
    if (pos_ >= s_.size()) return Fail("the expression ends too early");
    const char c = s_[pos_];
    if (c == '(') {
      ++pos_;
      if (!Expr(v)) return false;
      if (!Eat(")")) return Fail("missing ')' at offset " + std::to_string(pos_));
      return true;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') return Number(v);
    if (std::isalpha(static_cast<unsigned char>(c))) return Call(v);
    return Fail("unexpected '" + std::string(1, c) + "' at offset " + std::to_string(pos_));
  }

  bool Number(Num* v) {
    const size_t start = pos_;
    bool is_int = true;
    while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      is_int = false;
      ++pos_;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      is_int = false;
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      const size_t digits = pos_;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
      if (pos_ == digits) return Fail("a number's exponent has no digits");
    }
    const std::string text(s_.substr(start, pos_ - start));
    if (text == ".") return Fail("'.' is not a number");
    if (is_int) {
      errno = 0;
      char* end = nullptr;
      const long long i = std::strtoll(text.c_str(), &end, 10);
      if (errno == ERANGE) return Fail("the integer " + text + " is beyond 64 bits");
      *v = Num{true, i, 0};
      return true;
    }
    char* end = nullptr;
    *v = Num{false, 0, std::strtod(text.c_str(), &end)};
    if (end != text.c_str() + text.size()) return Fail("'" + text + "' is not a number");
    return Checked(v);
  }

  bool Call(Num* v) {
    const size_t start = pos_;
    while (pos_ < s_.size() && std::isalnum(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    const std::string name(s_.substr(start, pos_ - start));
    if (!Eat("(")) return Fail("unknown name '" + name + "'");
    std::vector<Num> args;
    if (!Eat(")")) {
      do {
        Num a;
        if (!Expr(&a)) return false;
        args.push_back(a);
      } while (Eat(","));
      if (!Eat(")")) return Fail("missing ')' after the arguments of " + name);
    }
    auto one = [&]() { return args.size() == 1 ? true : Fail(name + "() takes one argument"); };
    if (name == "abs") {
      if (!one()) return false;
      if (args[0].is_int) {
        if (args[0].i == INT64_MIN) return Fail("integer overflow");
        *v = Num{true, args[0].i < 0 ? -args[0].i : args[0].i, 0};
      } else {
        *v = Num{false, 0, std::fabs(args[0].d)};
      }
      return true;
    }
    if (name == "min" || name == "max") {
      if (args.empty()) return Fail(name + "() needs at least one argument");
      *v = args[0];
      for (const Num& a : args) {
        const bool less = a.AsDouble() < v->AsDouble() || (a.is_int && v->is_int && a.i < v->i);
        const bool more = a.AsDouble() > v->AsDouble() || (a.is_int && v->is_int && a.i > v->i);
        if (name == "min" ? less : more) *v = a;
      }
      return true;
    }
    if (name == "sqrt" || name == "floor" || name == "ceil") {
      if (!one()) return false;
      const double x = args[0].AsDouble();
      if (name == "sqrt") {
        if (x < 0) return Fail("sqrt() of a negative number");
        *v = Num{false, 0, std::sqrt(x)};
        return true;
      }
      if (args[0].is_int) {
        *v = args[0];
        return true;
      }
      const double r = name == "floor" ? std::floor(x) : std::ceil(x);
      if (std::fabs(r) < 9.2e18) {
        *v = Num{true, static_cast<int64_t>(r), 0};
      } else {
        *v = Num{false, 0, r};
      }
      return Checked(v);
    }
    return Fail("unknown function '" + name + "'");
  }

  std::string_view s_;
  size_t pos_ = 0;
  int depth_ = 0;
  std::string error_;
};

// ---- the tools

class MathTool : public Tool {
 public:
  std::string_view name() const override { return "math"; }
  std::string_view version() const override { return "1"; }
  std::string_view input_schema() const override {
    return R"({"type":"object","required":["expression"],"additionalProperties":false,
      "properties":{"expression":{"type":"string","minLength":1,"maxLength":10000}}})";
  }
  std::string_view output_schema() const override {
    return R"({"type":"object","required":["result"],"properties":{"result":{"type":"number"}}})";
  }
  ToolOutcome Run(const ToolCall& call) const override {
    std::string result, error;
    if (!EvaluateMath(json::String(*call.input, "expression"), &result, &error)) {
      return Error(codes::kToolError, "math: " + error);
    }
    return Ok(Payload().Raw("result", result).Build());
  }
};

// RFC 7386 merge patch of `patch` onto `target`.
void MergePatch(json::Value& target, const json::Value& patch, json::Document::AllocatorType& a) {
  if (!patch.IsObject()) {
    target.CopyFrom(patch, a);
    return;
  }
  if (!target.IsObject()) target.SetObject();
  for (const auto& m : patch.GetObject()) {
    auto it = target.FindMember(m.name);
    if (m.value.IsNull()) {
      if (it != target.MemberEnd()) target.RemoveMember(it);
    } else if (it != target.MemberEnd()) {
      MergePatch(it->value, m.value, a);
    } else {
      json::Value name(m.name, a), value;
      MergePatch(value, m.value, a);
      target.AddMember(name, value, a);
    }
  }
}

class JsonTool : public Tool {
 public:
  std::string_view name() const override { return "json"; }
  std::string_view version() const override { return "1"; }
  std::string_view input_schema() const override {
    return R"({"type":"object","required":["op"],"additionalProperties":false,
      "properties":{"op":{"enum":["get","merge","build"]},"value":{},
        "pointer":{"type":"string"},"objects":{"type":"array","items":{"type":"object"}},
        "fields":{"type":"object"}}})";
  }
  std::string_view output_schema() const override {
    return R"({"type":"object","required":["result"]})";
  }
  ToolOutcome Run(const ToolCall& call) const override {
    const json::Value& in = *call.input;
    const std::string op = json::String(in, "op");
    if (op == "get") {
      const json::Value* value = json::Find(in, "value");
      if (value == nullptr) return Error(codes::kToolError, "json get: needs a value");
      const std::string pointer = json::String(in, "pointer");
      rapidjson::Pointer p(pointer.c_str(), pointer.size());
      if (!p.IsValid()) return Error(codes::kToolError, "json get: bad pointer " + pointer);
      const json::Value* found = p.Get(*value);
      if (found == nullptr) {
        return Error(codes::kToolError, "json get: nothing at " + pointer);
      }
      return Ok(Payload().Raw("result", events::CanonicalText(*found)).Build());
    }
    if (op == "merge") {
      json::Document out;
      out.SetObject();
      if (const json::Value* objects = json::Find(in, "objects"); objects && objects->IsArray()) {
        for (const json::Value& o : objects->GetArray()) MergePatch(out, o, out.GetAllocator());
      }
      return Ok(Payload().Raw("result", events::CanonicalText(out)).Build());
    }
    const json::Value* fields = json::Find(in, "fields");
    return Ok(
        Payload().Raw("result", fields != nullptr ? events::CanonicalText(*fields) : "{}").Build());
  }
};

class TemplateTool : public Tool {
 public:
  std::string_view name() const override { return "template"; }
  std::string_view version() const override { return "1"; }
  std::string_view input_schema() const override {
    return R"({"type":"object","required":["template"],"additionalProperties":false,
      "properties":{"template":{"type":"string","maxLength":100000},"values":{"type":"object"}}})";
  }
  std::string_view output_schema() const override {
    return R"({"type":"object","required":["result"],"properties":{"result":{"type":"string"}}})";
  }
  ToolOutcome Run(const ToolCall& call) const override {
    const std::string text = json::String(*call.input, "template");
    const json::Value* values = json::Find(*call.input, "values");
    std::string out;
    size_t pos = 0;
    while (true) {
      const size_t open = text.find("{{", pos);
      if (open == std::string::npos) break;
      const size_t close = text.find("}}", open + 2);
      if (close == std::string::npos) {
        return Error(codes::kToolError,
                     "template: '{{' at offset " + std::to_string(open) + " is never closed");
      }
      out.append(text, pos, open - pos);
      std::string path = text.substr(open + 2, close - open - 2);
      path.erase(0, path.find_first_not_of(' '));
      path.erase(path.find_last_not_of(' ') + 1);
      const json::Value* v = values;
      size_t start = 0;
      while (v != nullptr && start <= path.size()) {
        const size_t dot = std::min(path.find('.', start), path.size());
        v = json::Find(*v, std::string_view(path).substr(start, dot - start));
        start = dot + 1;
      }
      if (v == nullptr || path.empty()) {
        return Error(codes::kToolError, "template: no value for {{" + path + "}}");
      }
      if (v->IsString()) {
        out.append(v->GetString(), v->GetStringLength());
      } else {
        out += events::CanonicalText(*v);
      }
      if (out.size() > kMaxToolOutputBytes) {
        return Error(codes::kToolError, "template: the result passed " +
                                            std::to_string(kMaxToolOutputBytes) + " bytes");
      }
      pos = close + 2;
    }
    out.append(text, pos);
    return Ok(Payload().Str("result", out).Build());
  }
};

// `agent` (the output: whatever the worker completed with) and `plan` (a
// planner agent's plan, validated by the writer like a given one).
class WorkerTool : public Tool {
 public:
  WorkerTool(std::string_view name, std::string_view output_schema)
      : name_(name), output_schema_(output_schema) {}
  std::string_view name() const override { return name_; }
  std::string_view version() const override { return "1"; }
  std::string_view input_schema() const override { return R"({"type":"object"})"; }
  std::string_view output_schema() const override { return output_schema_; }
  ToolOutcome Run(const ToolCall& call) const override {
    // Executors run a worker step only in a replay, from its recorded output.
    if (call.recorded_output.empty()) {
      return Error(codes::kToolError, name_ + " steps are run by external workers");
    }
    return Ok(call.recorded_output);
  }

 private:
  std::string name_;
  std::string_view output_schema_;
};

// `approval`: records its `data` as an artifact of `type` pending a person's
// decision and waits, without an executor, until POST /v1/artifacts/{id}/approve
// or /reject, or `timeout_seconds` (docs/plans.md, "Approval steps"). The
// executor does the waiting (services/executor.cc); a replay returns the
// recorded decision.
class ApprovalTool : public Tool {
 public:
  std::string_view name() const override { return "approval"; }
  std::string_view version() const override { return "1"; }
  std::string_view input_schema() const override {
    return R"({"type":"object","required":["type","data"],"properties":{)"
           R"("type":{"type":"string","minLength":1,"maxLength":128},)"
           R"("timeout_seconds":{"type":"integer","minimum":1}}})";
  }
  std::string_view output_schema() const override {
    return R"({"type":"object","required":["decision"]})";
  }
  ToolOutcome Run(const ToolCall& call) const override {
    if (call.recorded_output.empty()) {
      return Error(codes::kToolError, "approval steps wait for a person's decision");
    }
    return Ok(call.recorded_output);
  }
};

// `llm`: one chat completion. Its usage (tokens and model) is the provider's;
// a replay returns the recorded output and calls nothing.
class LlmTool : public Tool {
 public:
  explicit LlmTool(const LlmClient* llm) : llm_(llm) {}
  std::string_view name() const override { return "llm"; }
  std::string_view version() const override { return "1"; }
  std::string_view input_schema() const override {
    return R"({"type":"object","additionalProperties":false,
      "anyOf":[{"required":["prompt"]},{"required":["messages"]}],
      "properties":{"prompt":{"type":"string","maxLength":200000},
        "system":{"type":"string","maxLength":200000},
        "messages":{"type":"array","minItems":1,"maxItems":100,"items":{"type":"object",
          "required":["role","content"],"additionalProperties":false,
          "properties":{"role":{"enum":["system","user","assistant"]},
                        "content":{"type":"string","maxLength":200000}}}},
        "model":{"type":"string","minLength":1,"maxLength":128},
        "max_tokens":{"type":"integer","minimum":1,"maximum":1000000}}})";
  }
  std::string_view output_schema() const override {
    return R"({"type":"object","required":["text","model"],
      "properties":{"text":{"type":"string"},"model":{"type":"string"},
                    "finish_reason":{"type":"string"}}})";
  }
  ToolOutcome Run(const ToolCall& call) const override {
    if (!call.recorded_output.empty()) return Ok(call.recorded_output);
    std::vector<LlmMessage> messages;
    if (std::string system = json::String(*call.input, "system"); !system.empty()) {
      messages.push_back({"system", std::move(system)});
    }
    if (const json::Value* list = json::Find(*call.input, "messages")) {
      for (const json::Value& m : list->GetArray()) {
        messages.push_back({json::String(m, "role"), json::String(m, "content")});
      }
    }
    if (const json::Value* prompt = json::Find(*call.input, "prompt")) {
      messages.push_back({"user", prompt->GetString()});
    }
    return Complete(messages, json::String(*call.input, "model"),
                    json::Int(*call.input, "max_tokens"), call, [](const LlmReply& r) {
                      Payload p;
                      p.Str("text", r.text).Str("model", r.model);
                      if (!r.finish_reason.empty()) p.Str("finish_reason", r.finish_reason);
                      return Ok(p.Build());
                    });
  }

 protected:
  // Calls the model and makes the outcome of its reply with `done`, with the reply's usage.
  ToolOutcome Complete(const std::vector<LlmMessage>& messages, const std::string& model,
                       int64_t max_tokens, const ToolCall& call,
                       const std::function<ToolOutcome(const LlmReply&)>& done) const {
    if (llm_ == nullptr) {
      return Error(codes::kToolError,
                   "llm: this runlogd has no model endpoint (runlogd --llm-url)");
    }
    auto reply = llm_->Chat(messages, model, max_tokens, call.wall, call.cancel);
    if (!reply) {
      ToolOutcome o = Error(reply.error().code, reply.error().message);
      o.timed_out = reply.error().code == codes::kTimeout;
      return o;
    }
    ToolOutcome o = done(*reply);
    o.usage.input_tokens = reply->input_tokens;
    o.usage.output_tokens = reply->output_tokens;
    o.usage.tokens = reply->input_tokens + reply->output_tokens;
    o.usage.model = reply->model;
    return o;
  }

 private:
  const LlmClient* llm_;
};

// `llm_plan`: the built-in planner. The model is asked for a plan of the
// tools this runlogd has, for the task's definition; what it answers is the
// step's output, which the writer checks like any planner's plan and
// appends after this step (docs/plans.md, "The built-in planner").
class LlmPlanTool : public LlmTool {
 public:
  LlmPlanTool(const LlmClient* llm, std::string tools) : LlmTool(llm), tools_(std::move(tools)) {}
  std::string_view name() const override { return "llm_plan"; }
  std::string_view input_schema() const override {
    return R"({"type":"object","required":["task_definition"],"additionalProperties":false,
      "properties":{"task_definition":{},"max_steps":{"type":"integer","minimum":1,"maximum":100},
                    "model":{"type":"string","minLength":1,"maxLength":128}}})";
  }
  std::string_view output_schema() const override {
    return R"({"type":"object","required":["steps"],"properties":{"steps":{"type":"array"}}})";
  }
  ToolOutcome Run(const ToolCall& call) const override {
    if (!call.recorded_output.empty()) return Ok(call.recorded_output);
    const int64_t max_steps = json::Int(*call.input, "max_steps", 10);
    std::string system =
        "You are runlog's planner. Answer with one JSON object and nothing else: "
        "{\"steps\": [{\"tool\": <name>, \"input\": <object>}, ...]}, at most " +
        std::to_string(max_steps) +
        " steps, run one after another. A step's input may hold {\"$ref\": \"/input/...\"} "
        "(the task definition) or {\"$ref\": \"/steps/N/output/...\"} (an earlier step's "
        "output; this planning step is step 1, so the plan's steps are 2, 3, ...). Tools, "
        "with the JSON Schema of their input:\n" +
        tools_;
    const json::Value* definition = json::Find(*call.input, "task_definition");
    const std::vector<LlmMessage> messages = {
        {"system", std::move(system)},
        {"user", "Task definition: " + events::CanonicalText(*definition)}};
    return Complete(messages, json::String(*call.input, "model"), 0, call, [](const LlmReply& r) {
      // The plan may come inside a fenced block; the object is taken as it is.
      const size_t open = r.text.find('{'), close = r.text.rfind('}');
      auto plan =
          open != std::string::npos && close != std::string::npos && open < close
              ? events::Canonicalize(std::string_view(r.text).substr(open, close - open + 1))
              : Fail(codes::kPlanInvalid, "no object");
      if (!plan) {
        return Error(codes::kPlanInvalid,
                     "llm_plan: the model's answer holds no JSON plan: " + r.text.substr(0, 200));
      }
      return Ok(std::move(*plan));
    });
  }

 private:
  std::string tools_;
};

// `s` as valid UTF-8: each invalid byte becomes U+FFFD (a cap may cut a character).
std::string ValidUtf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = n > 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) >> 6) == 2;
    if (ok && n > 1) {  // no overlong forms, surrogates or values past U+10FFFF
      uint32_t cp = c & (0xFF >> (n + 1));
      for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
      ok = cp >= (n == 2   ? 0x80u
                  : n == 3 ? 0x800u
                           : 0x10000u) &&
           cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (ok) {
      out.append(s, i, n);
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

// The last non-empty line of `out`, if it is JSON: the code's `result`.
std::string ResultLine(const std::string& out) {
  size_t end = out.size();
  while (end > 0 && (out[end - 1] == '\n' || out[end - 1] == '\r' || out[end - 1] == ' ')) --end;
  const size_t start = out.rfind('\n', end == 0 ? 0 : end - 1);
  const std::string line = out.substr(start == std::string::npos ? 0 : start + 1,
                                      end - (start == std::string::npos ? 0 : start + 1));
  if (line.empty()) return "";
  auto canonical = events::Canonicalize(line);
  return canonical ? *canonical : "";
}

class SandboxTool : public Tool {
 public:
  SandboxTool(sandbox::Sandbox* sandbox, bool python) : sandbox_(sandbox), python_(python) {}
  std::string_view name() const override { return python_ ? "python_sandbox" : "shell_sandbox"; }
  std::string_view version() const override { return "1"; }
  std::string_view input_schema() const override {
    return python_ ? R"({"type":"object","required":["code"],"additionalProperties":false,
      "properties":{"code":{"type":"string","minLength":1,"maxLength":100000},
        "stdin":{"type":"string","maxLength":1000000}}})"
                   : R"({"type":"object","required":["command"],"additionalProperties":false,
      "properties":{"command":{"type":"string","minLength":1,"maxLength":100000},
        "stdin":{"type":"string","maxLength":1000000}}})";
  }
  std::string_view output_schema() const override {
    return R"({"type":"object","required":["stdout","stderr","exit_code"],
      "properties":{"stdout":{"type":"string"},"stderr":{"type":"string"},
        "exit_code":{"type":"integer"},"stdout_truncated":{"type":"boolean"},
        "stderr_truncated":{"type":"boolean"}}})";
  }
  ToolOutcome Run(const ToolCall& call) const override {
    if (sandbox_ == nullptr) {
      return Error(codes::kSandboxError, "this runlogd has no sandbox for code steps");
    }
    sandbox::Request request;
    if (python_) {
      request.argv = {"/usr/bin/python3", "-I", "-c", json::String(*call.input, "code")};
    } else {
      request.argv = {"/bin/sh", "-c", json::String(*call.input, "command")};
    }
    request.stdin_data = json::String(*call.input, "stdin");
    request.limits.wall = call.wall;
    request.limits.cpu_seconds = std::max<int64_t>(1, call.wall.count() / 1000 + 1);
    auto outcome = sandbox_->Run(request, call.cancel);
    if (!outcome) {
      ToolOutcome o = Error(codes::kSandboxError, outcome.error().message);
      o.sandboxed = true;
      return o;
    }
    outcome->stdout_data = ValidUtf8(outcome->stdout_data);
    outcome->stderr_data = ValidUtf8(outcome->stderr_data);
    Payload p;
    p.Str("stdout", outcome->stdout_data)
        .Str("stderr", outcome->stderr_data)
        .Int("exit_code", outcome->exit_code)
        .Bool("stdout_truncated", outcome->stdout_truncated)
        .Bool("stderr_truncated", outcome->stderr_truncated);
    Payload with_result = p;
    ToolOutcome o;
    o.output = p.Build();
    if (std::string result = ResultLine(outcome->stdout_data); !result.empty()) {
      // Only if the output stays within canonical JSON's nesting limit.
      std::string candidate = with_result.Raw("result", result).Build();
      if (events::Canonicalize(candidate)) o.output = std::move(candidate);
    }
    o.sandboxed = true;
    o.usage.sandbox_cpu_ms = outcome->cpu_ms;
    if (outcome->timed_out) {
      o.timed_out = true;
      o.error_code = codes::kTimeout;
      o.error_message = "step execution timed out";
    } else if (outcome->cancelled) {
      o.error_code = codes::kCancelled;
      o.error_message = "the task was cancelled";
    } else if (outcome->exit_code != 0) {
      std::string last = outcome->stderr_data.substr(
          outcome->stderr_data.size() > 300 ? outcome->stderr_data.size() - 300 : 0);
      while (!last.empty() && last.back() == '\n') last.pop_back();
      o.error_code = codes::kToolError;
      o.error_message = outcome->term_signal != 0
                            ? "killed by signal " + std::to_string(outcome->term_signal) +
                                  (outcome->memory_exceeded ? " (memory limit)" : "")
                            : "exit code " + std::to_string(outcome->exit_code) +
                                  (last.empty() ? "" : ": " + last.substr(last.rfind('\n') + 1));
    } else {
      o.ok = true;
    }
    return o;
  }

 private:
  sandbox::Sandbox* sandbox_;
  bool python_;
};

}  // namespace

std::string ErrorJson(const std::string& code, const std::string& message) {
  return Payload().Str("code", code).Str("message", message).Build();
}

std::string FailureJson(const std::string& code, int64_t index, const std::string& message,
                        const std::string& step) {
  return Payload()
      .Str("code", code)
      .Int("index", index)
      .Str("message", message)
      .Str("step", step)
      .Build();
}

std::vector<SchemaProblem> CheckSchema(const rapidjson::SchemaDocument& schema,
                                       const json::Value& v) {
  rapidjson::SchemaValidator validator(schema);
  if (v.Accept(validator)) return {};
  // JSON Pointers as they are, not URI fragments: percent-encoding a key
  // reads past its end when it ends inside a UTF-8 sequence (RapidJSON 1.1;
  // tests/fuzz/corpus/plan/crash-pointer-utf8).
  rapidjson::StringBuffer where;
  validator.GetInvalidDocumentPointer().Stringify(where);
  std::string path(where.GetString(), where.GetSize());
  rapidjson::StringBuffer rule;
  validator.GetInvalidSchemaPointer().Stringify(rule);
  return {SchemaProblem{path, std::string("fails the schema's '") +
                                  validator.GetInvalidSchemaKeyword() + "' rule at " +
                                  std::string(rule.GetString(), rule.GetSize())}};
}

bool EvaluateMath(std::string_view expression, std::string* result, std::string* error) {
  Num v;
  if (!MathParser(expression).Evaluate(&v, error)) return false;
  *result = v.is_int ? std::to_string(v.i) : events::FormatDouble(v.d);
  return true;
}

struct ToolRegistry::Entry {
  std::unique_ptr<Tool> tool;
  json::Document input_doc, output_doc;
  std::unique_ptr<rapidjson::SchemaDocument> input, output;
};

ToolRegistry::ToolRegistry(sandbox::Sandbox* sandbox, const LlmClient* llm)
    : has_model_(llm != nullptr) {
  std::vector<std::unique_ptr<Tool>> tools;
  tools.push_back(std::make_unique<MathTool>());
  tools.push_back(std::make_unique<JsonTool>());
  tools.push_back(std::make_unique<TemplateTool>());
  tools.push_back(std::make_unique<WorkerTool>("agent", "{}"));
  tools.push_back(std::make_unique<ApprovalTool>());
  tools.push_back(std::make_unique<WorkerTool>(
      "plan", R"({"type":"object","required":["steps"],"properties":{"steps":{"type":"array"}}})"));
  tools.push_back(std::make_unique<SandboxTool>(sandbox, true));
  tools.push_back(std::make_unique<SandboxTool>(sandbox, false));
  tools.push_back(std::make_unique<LlmTool>(llm));
  // The planner is told of every tool a plan may use, with its input schema.
  std::string described;
  for (const auto& tool : tools) {
    if (events::IsWorkerTool(tool->name())) continue;
    described += "- " + std::string(tool->name()) + ": " + std::string(tool->input_schema()) + "\n";
  }
  tools.push_back(std::make_unique<LlmPlanTool>(llm, std::move(described)));
  for (auto& tool : tools) {
    auto e = std::make_unique<Entry>();
    const std::string_view in = tool->input_schema(), out = tool->output_schema();
    e->input_doc.Parse(in.data(), in.size());
    e->output_doc.Parse(out.data(), out.size());
    if (e->input_doc.HasParseError() || e->output_doc.HasParseError()) {
      std::fprintf(stderr, "runlogd: bug: the schema of tool %s is not JSON\n",
                   std::string(tool->name()).c_str());
      std::abort();
    }
    e->input = std::make_unique<rapidjson::SchemaDocument>(e->input_doc);
    e->output = std::make_unique<rapidjson::SchemaDocument>(e->output_doc);
    e->tool = std::move(tool);
    tools_.emplace(std::string(e->tool->name()), std::move(e));
  }
}

ToolRegistry::~ToolRegistry() = default;

const Tool* ToolRegistry::Find(std::string_view name) const {
  auto it = tools_.find(name);
  return it == tools_.end() ? nullptr : it->second->tool.get();
}

std::vector<std::string> ToolRegistry::Names() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : tools_) out.push_back(name);
  return out;
}

std::vector<SchemaProblem> ToolRegistry::CheckInput(const Tool& tool,
                                                    const json::Value& value) const {
  return CheckSchema(*tools_.find(tool.name())->second->input, value);
}

std::vector<SchemaProblem> ToolRegistry::CheckOutput(const Tool& tool,
                                                     const json::Value& value) const {
  return CheckSchema(*tools_.find(tool.name())->second->output, value);
}

}  // namespace runlog::services
