// `runlog mock-llm`: a stand-in for a model provider, for trying the `llm`
// tools and the built-in planner, and for tests, without a provider's key.
// It serves OpenAI's chat-completions shape on 127.0.0.1 with fixed,
// deterministic answers and a `usage`, prints its base URL (for
// `runlogd --llm-url`) on stdout and serves until SIGINT/SIGTERM.
//
// - A planning request (its system message is runlog's planner prompt) gets
//   a plan of two steps: an `llm` step carrying the task definition, then a
//   `template` step that quotes its text.
// - Any other request gets "mock answer: " and the start of the last message.
// Tokens are counted as a quarter of the characters, rounded up.

#include <pistache/endpoint.h>
#include <pistache/http.h>

#include <atomic>
#include <csignal>
#include <cstdio>

#include "events/payload.h"
#include "infra/base/json.h"
#include "infra/cli/commands.h"

namespace runlog::cli {
namespace {

struct MockLlmOptions {
  std::string listen = "127.0.0.1:0";
  std::string api_key;  // required of callers if set
};

int64_t Tokens(const std::string& text) { return static_cast<int64_t>(text.size() + 3) / 4; }

std::string ErrorBody(const std::string& message) {
  return events::Payload()
      .Raw("error",
           events::Payload().Str("message", message).Str("type", "invalid_request").Build())
      .Build();
}

// The answer to a chat-completions request body, and its HTTP status.
std::pair<int, std::string> Answer(const std::string& body, int64_t n) {
  json::Document request;
  if (!json::Parse(body, &request) || !request.IsObject()) {
    return {400, ErrorBody("the body is not a JSON object")};
  }
  const json::Value* messages = json::Find(request, "messages");
  if (messages == nullptr || !messages->IsArray() || messages->Empty()) {
    return {400, ErrorBody("messages must be a non-empty array")};
  }
  int64_t prompt_tokens = 0;
  std::string system, last;
  for (const json::Value& m : messages->GetArray()) {
    const std::string content = json::String(m, "content");
    prompt_tokens += Tokens(content) + 4;  // and the message's framing
    if (json::String(m, "role") == "system") system = content;
    last = content;
  }
  std::string content;
  if (system.find("runlog's planner") != std::string::npos) {
    const std::string step1 =
        events::Payload()
            .Str("tool", "llm")
            .Raw("input",
                 events::Payload().Str("prompt", "Carry out this task, briefly. " + last).Build())
            .Build();
    const std::string step2 =
        events::Payload()
            .Str("tool", "template")
            .Raw("input", events::Payload()
                              .Str("template", "Result: {{text}}")
                              .Raw("values", R"({"text":{"$ref":"/steps/2/output/text"}})")
                              .Build())
            .Build();
    content = events::Payload().Raw("steps", "[" + step1 + "," + step2 + "]").Build();
  } else {
    content = "mock answer: " + last.substr(0, 120);
  }
  const int64_t completion_tokens = Tokens(content);
  const std::string model = json::String(request, "model", "mock-model");
  return {200, events::Payload()
                   .Str("id", "chatcmpl-mock-" + std::to_string(n))
                   .Str("object", "chat.completion")
                   .Int("created", 0)
                   .Str("model", model)
                   .Raw("choices", "[" +
                                       events::Payload()
                                           .Int("index", 0)
                                           .Raw("message", events::Payload()
                                                               .Str("role", "assistant")
                                                               .Str("content", content)
                                                               .Build())
                                           .Str("finish_reason", "stop")
                                           .Build() +
                                       "]")
                   .Raw("usage", events::Payload()
                                     .Int("prompt_tokens", prompt_tokens)
                                     .Int("completion_tokens", completion_tokens)
                                     .Int("total_tokens", prompt_tokens + completion_tokens)
                                     .Build())
                   .Build()};
}

class Handler final : public Pistache::Http::Handler {
 public:
  HTTP_PROTOTYPE(Handler)
  explicit Handler(std::string api_key) : api_key_(std::move(api_key)) {}

  void onRequest(const Pistache::Http::Request& request,
                 Pistache::Http::ResponseWriter response) override {
    response.headers().add<Pistache::Http::Header::ContentType>(MIME(Application, Json));
    if (request.method() != Pistache::Http::Method::Post ||
        !request.resource().ends_with("/chat/completions")) {
      response.send(Pistache::Http::Code::Not_Found, ErrorBody("POST /v1/chat/completions only"));
      return;
    }
    if (!api_key_.empty()) {
      auto auth = request.headers().tryGetRaw("Authorization");
      if (!auth.has_value() || auth->value() != "Bearer " + api_key_) {
        response.send(Pistache::Http::Code::Unauthorized, ErrorBody("invalid api key"));
        return;
      }
    }
    static std::atomic<int64_t> served{0};
    auto [status, body] = Answer(request.body(), ++served);
    response.send(static_cast<Pistache::Http::Code>(status), body);
  }

 private:
  std::string api_key_;
};

int RunMockLlm(const MockLlmOptions& o) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  const auto colon = o.listen.rfind(':');
  const std::string host = o.listen.substr(0, colon);
  if (colon == std::string::npos || (host != "127.0.0.1" && host != "localhost")) {
    std::fprintf(stderr, "runlog mock-llm: --listen must be 127.0.0.1:PORT\n");
    return 2;
  }
  try {
    Pistache::Address address(
        "127.0.0.1", Pistache::Port(static_cast<uint16_t>(std::stoi(o.listen.substr(colon + 1)))));
    auto endpoint = std::make_shared<Pistache::Http::Endpoint>(address);
    endpoint->init(Pistache::Http::Endpoint::options().threads(1).maxRequestSize(8 << 20).flags(
        Pistache::Tcp::Options::ReuseAddr));
    endpoint->setHandler(Pistache::Http::make_handler<Handler>(o.api_key));
    endpoint->serveThreaded();
    std::printf("http://127.0.0.1:%u/v1\n", static_cast<unsigned>(endpoint->getPort()));
    std::fflush(stdout);
    int signal = 0;
    sigwait(&stop, &signal);
    endpoint->shutdown();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "runlog mock-llm: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace

Runner AddMockLlm(CLI::App& app) {
  auto o = std::make_shared<MockLlmOptions>();
  auto* sub = app.add_subcommand(
      "mock-llm", "run a stand-in chat-completions provider on 127.0.0.1 (fixed answers)");
  sub->add_option("--listen", o->listen, "127.0.0.1:PORT (0: any free port)")
      ->capture_default_str();
  sub->add_option("--api-key", o->api_key, "refuse requests without this bearer key");
  return [o] { return RunMockLlm(*o); };
}

}  // namespace runlog::cli
