#pragma once
// A client of an OpenAI-compatible chat-completions endpoint (POST
// <url>/chat/completions), for the `llm` and `llm_plan` tools
// (services/tools.h). One blocking call per step, through libcurl, bounded
// by the step's time and stopped when the step is cancelled.
//
// Thread contract: Chat is thread-safe (a libcurl handle per call).

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "infra/base/result.h"

namespace runlog::services {

struct LlmOptions {
  std::string url;      // the API's base, e.g. https://api.openai.com/v1; empty: no model
  std::string api_key;  // sent as a bearer token; never logged or echoed
  std::string model = "gpt-4o-mini";  // the default model of a step that names none
};

struct LlmMessage {
  std::string role;  // system, user or assistant
  std::string content;
};

struct LlmReply {
  std::string text;  // the first choice's message content
  std::string model;
  std::string finish_reason;
  int64_t input_tokens = 0, output_tokens = 0;  // the response's usage
};

class LlmClient {
 public:
  explicit LlmClient(LlmOptions options);
  const LlmOptions& options() const { return options_; }

  // TOOL_ERROR with what went wrong (the provider's status and message, a
  // timeout, an answer that is not chat-completions JSON); CANCELLED if
  // `cancel` became true.
  [[nodiscard]] Result<LlmReply> Chat(const std::vector<LlmMessage>& messages,
                                      const std::string& model, int64_t max_tokens,
                                      std::chrono::milliseconds wall,
                                      const std::atomic<bool>* cancel) const;

 private:
  LlmOptions options_;
};

// The largest answer read from the provider.
inline constexpr size_t kMaxLlmResponseBytes = 4 << 20;

}  // namespace runlog::services
