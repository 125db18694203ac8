#include "services/llm.h"

#include <curl/curl.h>

#include <memory>
#include <mutex>

#include "events/payload.h"
#include "infra/base/json.h"

namespace runlog::services {
namespace {

struct Transfer {
  std::string body;
  bool too_big = false;
  const std::atomic<bool>* cancel = nullptr;
};

size_t OnData(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  if (t->body.size() + size * n > kMaxLlmResponseBytes) {
    t->too_big = true;
    return 0;  // ends the transfer
  }
  t->body.append(data, size * n);
  return size * n;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* t = static_cast<Transfer*>(user);
  return t->cancel != nullptr && t->cancel->load() ? 1 : 0;  // non-zero aborts
}

std::string Clip(std::string s) {
  if (s.size() > 300) s = s.substr(0, 300) + "…";
  return s;
}

}  // namespace

LlmClient::LlmClient(LlmOptions options) : options_(std::move(options)) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

Result<LlmReply> LlmClient::Chat(const std::vector<LlmMessage>& messages, const std::string& model,
                                 int64_t max_tokens, std::chrono::milliseconds wall,
                                 const std::atomic<bool>* cancel) const {
  if (options_.url.empty()) {
    return Fail(codes::kToolError, "llm: this runlogd has no model endpoint (runlogd --llm-url)");
  }
  std::string list = "[";
  for (const LlmMessage& m : messages) {
    if (list.size() > 1) list += ",";
    list += events::Payload().Str("role", m.role).Str("content", m.content).Build();
  }
  list += "]";
  events::Payload request;
  request.Str("model", model.empty() ? options_.model : model)
      .Raw("messages", list)
      .Int("temperature", 0);  // as repeatable as the provider allows
  if (max_tokens > 0) request.Int("max_tokens", max_tokens);
  const std::string body = request.Build();

  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return Fail(codes::kToolError, "llm: cannot make an HTTP client");
  std::string url = options_.url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  url += "/chat/completions";
  curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/json");
  if (!options_.api_key.empty()) {
    headers = curl_slist_append(headers, ("Authorization: Bearer " + options_.api_key).c_str());
  }
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_list(headers,
                                                                          curl_slist_free_all);
  Transfer t;
  t.cancel = cancel;
  CURL* h = curl.get();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<int64_t>(1, wall.count())));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnData);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
  const CURLcode rc = curl_easy_perform(h);
  if (cancel != nullptr && cancel->load()) return Fail(codes::kCancelled, "the task was cancelled");
  if (t.too_big) {
    return Fail(codes::kToolError, "llm: the provider's answer is larger than " +
                                       std::to_string(kMaxLlmResponseBytes) + " bytes");
  }
  if (rc == CURLE_OPERATION_TIMEDOUT) {
    return Fail(codes::kTimeout, "llm: the provider did not answer within the step's time");
  }
  if (rc != CURLE_OK) {
    return Fail(codes::kToolError,
                std::string("llm: cannot reach the provider: ") + curl_easy_strerror(rc));
  }
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  json::Document doc;
  const bool parsed = json::Parse(t.body, &doc) && doc.IsObject();
  if (status < 200 || status > 299) {
    std::string message;
    if (parsed) {
      const json::Value* error = json::Find(doc, "error");
      message = error != nullptr && error->IsObject() ? json::String(*error, "message")
                                                      : json::String(doc, "message");
    }
    return Fail(codes::kToolError, "llm: the provider answered HTTP " + std::to_string(status) +
                                       (message.empty() ? "" : ": " + Clip(message)));
  }
  const json::Value* choices = parsed ? json::Find(doc, "choices") : nullptr;
  if (choices == nullptr || !choices->IsArray() || choices->Empty() || !(*choices)[0].IsObject() ||
      json::Find((*choices)[0], "message") == nullptr) {
    return Fail(codes::kToolError, "llm: the provider's answer is not a chat completion");
  }
  const json::Value& choice = (*choices)[0];
  LlmReply reply;
  reply.text = json::String(choice["message"], "content");
  reply.finish_reason = json::String(choice, "finish_reason");
  reply.model = json::String(doc, "model", model.empty() ? options_.model : model);
  if (const json::Value* usage = json::Find(doc, "usage"); usage != nullptr && usage->IsObject()) {
    reply.input_tokens = std::max<int64_t>(0, json::Int(*usage, "prompt_tokens"));
    reply.output_tokens = std::max<int64_t>(0, json::Int(*usage, "completion_tokens"));
  }
  return reply;
}

}  // namespace runlog::services
