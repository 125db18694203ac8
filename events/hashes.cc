#include "events/hashes.h"

#include "events/payload.h"
#include "events/sha256.h"

namespace runlog::events {

std::string StepHash(const StepRecord& s) {
  Payload p;
  if (s.error_code.empty()) {
    p.Raw("error_code", "");
  } else {
    p.Str("error_code", s.error_code);
  }
  p.Raw("input", s.input.empty() ? "{}" : s.input)
      .Raw("output", s.status == "succeeded" ? s.output : "")
      .Str("status", s.status)
      .Int("step_index", s.index)
      .Str("tool", s.tool)
      .Str("tool_version", s.tool_version);
  return Sha256Hex(p.Build());
}

std::string StepHashesJson(const Task& task) {
  std::vector<std::string> hashes;
  for (const StepRecord& s : task.steps) {
    if (!s.step_hash.empty()) hashes.push_back(s.step_hash);  // empty: not finished
  }
  return HashListJson(hashes);
}

std::string HashListJson(const std::vector<std::string>& hashes) {
  std::string out = "[";
  for (const std::string& h : hashes) {
    if (out.size() > 1) out += ",";
    out += "\"" + h + "\"";
  }
  return out + "]";
}

std::string TaskHash(const Task& task, std::string_view status, std::string_view step_hashes,
                     std::string_view failure_code) {
  Payload p;
  if (failure_code.empty()) {
    p.Raw("failure_code", "");
  } else {
    p.Str("failure_code", failure_code);
  }
  p.Raw("input", task.input.empty() ? "{}" : task.input)
      .Raw("limits", task.limits)
      .Raw("plan", task.plan)
      .Str("status", status)
      .Raw("step_hashes", step_hashes);
  return Sha256Hex(p.Build());
}

StepRecord ImpliedAgentStep(const Task& task, std::string_view status, std::string_view output,
                            std::string_view error, std::string_view error_code) {
  StepRecord s;
  s.index = 1;
  s.tool = "agent";
  s.tool_version = task.agent_step_version.empty() ? "1" : task.agent_step_version;
  s.input = task.agent_step_input.empty() ? "{}" : task.agent_step_input;
  s.status = std::string(status);
  if (status == "succeeded") s.output = std::string(output);
  s.error = std::string(error);
  s.error_code = std::string(error_code);
  s.attempt = task.attempt;
  s.started_at_ms = task.claimed_at_ms;
  return s;
}

}  // namespace runlog::events
