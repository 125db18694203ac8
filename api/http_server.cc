#include "api/http_server.h"

#include <pistache/endpoint.h>
#include <pistache/http_header.h>

#include <charconv>
#include <thread>

namespace runlog::api {
namespace {

using Pistache::Http::Header::Header;

// Extra response headers must be classes: Pistache drops addRaw ones.
#define RUNLOG_TEXT_HEADER(Class, header_name)                      \
  class Class final : public Header {                               \
   public:                                                          \
    NAME(header_name)                                               \
    Class() = default;                                              \
    explicit Class(std::string value) : value_(std::move(value)) {} \
    void parse(const std::string& data) override { value_ = data; } \
    void write(std::ostream& os) const override { os << value_; }   \
                                                                    \
   private:                                                         \
    std::string value_;                                             \
  };
RUNLOG_TEXT_HEADER(RetryAfter, "Retry-After")
RUNLOG_TEXT_HEADER(IdempotentReplayed, "Idempotent-Replayed")
RUNLOG_TEXT_HEADER(TextContentType, "Content-Type")
#undef RUNLOG_TEXT_HEADER

std::string RawHeader(const Pistache::Http::Request& request, const char* name) {
  auto raw = request.headers().tryGetRaw(name);
  return raw ? raw->value() : std::string();
}

class PistacheReply final : public Reply {
 public:
  PistacheReply(Pistache::Http::ResponseWriter writer, bool keep_alive,
                std::shared_ptr<HttpServer::State> state)
      : writer_(std::move(writer)), keep_alive_(keep_alive), state_(std::move(state)) {}

  void Send(int status, const std::string& content_type, std::string body,
            const std::vector<std::pair<std::string, std::string>>& headers) override {
    auto& h = writer_.headers();
    h.remove<Pistache::Http::Header::Connection>();
    h.add<Pistache::Http::Header::Connection>(keep_alive_
                                                  ? Pistache::Http::ConnectionControl::KeepAlive
                                                  : Pistache::Http::ConnectionControl::Close);
    h.add<TextContentType>(content_type);
    for (const auto& [name, value] : headers) {
      if (name == "Retry-After") h.add<RetryAfter>(value);
      if (name == "Idempotent-Replayed") h.add<IdempotentReplayed>(value);
    }
    // An answer is done when Pistache has written it, not when it is queued
    // for its reactor: Stop() must not shut the reactor down before that.
    auto state = state_;
    auto finished = [state] { state->in_flight.fetch_sub(1); };
    try {
      writer_.send(static_cast<Pistache::Http::Code>(status), body)
          .then([finished](ssize_t) { finished(); },
                [finished](std::exception_ptr) { finished(); });
    } catch (const std::exception&) {
      finished();  // the client went away before its answer: nothing left to tell it
    }
  }

 private:
  Pistache::Http::ResponseWriter writer_;
  const bool keep_alive_;
  std::shared_ptr<HttpServer::State> state_;
};

class Handler final : public Pistache::Http::Handler {
 public:
  HTTP_PROTOTYPE(Handler)
  Handler(Api* api, std::shared_ptr<HttpServer::State> state, size_t max_body)
      : api_(api), state_(std::move(state)), max_body_(max_body) {}

  void onRequest(const Pistache::Http::Request& request,
                 Pistache::Http::ResponseWriter response) override {
    state_->in_flight.fetch_add(1);
    std::string connection = RawHeader(request, "Connection");
    for (char& c : connection) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const bool http11 = request.version() == Pistache::Http::Version::Http11;
    const bool keep_alive = http11 ? connection != "close" : connection == "keep-alive";
    auto reply = std::make_shared<PistacheReply>(std::move(response), keep_alive, state_);
    Call call;
    call.method = Pistache::Http::methodString(request.method());
    call.path = request.resource();
    for (auto it = request.query().parameters_begin(); it != request.query().parameters_end();
         ++it) {
      call.query[it->first] = it->second;
    }
    call.authorization = RawHeader(request, "Authorization");
    call.content_type = RawHeader(request, "Content-Type");
    call.idempotency_key = RawHeader(request, "Idempotency-Key");
    call.body_too_large = request.body().size() > max_body_;
    if (!call.body_too_large) call.body = request.body();
    if (state_->draining.load()) {
      reply->Send(
          503, "application/json",
          R"({"error":{"code":"UNAVAILABLE","message":"the server is stopping","details":{}},)"
          R"("agent_contract":{"version":"1","lease_valid":false,"retryable":true,)"
          R"("next_actions":[{"action":"retry_after_wait","recommended":true,"retry_after_seconds":1}]}})",
          {{"Retry-After", "1"}});
      return;
    }
    api_->Handle(std::move(call), std::move(reply));
  }

  void onTimeout(const Pistache::Http::Request&, Pistache::Http::ResponseWriter response) override {
    try {
      response.send(Pistache::Http::Code::Request_Timeout);
    } catch (const std::exception&) {
    }
  }

 private:
  Api* api_;
  std::shared_ptr<HttpServer::State> state_;
  size_t max_body_;
};

}  // namespace

Result<HttpOptions> ParseListen(const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size()) {
    return Fail(codes::kInvalidArgument, "--listen must be HOST:PORT, got '" + listen + "'");
  }
  HttpOptions options;
  options.host = listen.substr(0, colon);
  if (options.host.size() > 2 && options.host.front() == '[' && options.host.back() == ']') {
    options.host = options.host.substr(1, options.host.size() - 2);
  }
  const char* first = listen.data() + colon + 1;
  const char* last = listen.data() + listen.size();
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(first, last, port);
  if (ec != std::errc() || ptr != last || port > 65535) {
    return Fail(codes::kInvalidArgument, "--listen port must be 0-65535, got '" + listen + "'");
  }
  options.port = static_cast<uint16_t>(port);
  return options;
}

HttpServer::HttpServer(HttpOptions options, Api& api) : options_(std::move(options)), api_(api) {}

HttpServer::~HttpServer() { Stop(std::chrono::milliseconds(0)); }

Status HttpServer::Start() {
  try {
    Pistache::Address address(options_.host, Pistache::Port(options_.port));
    endpoint_ = std::make_shared<Pistache::Http::Endpoint>(address);
    // Bodies up to 2x the API's limit reach the API, which answers 413 with a
    // JSON error; beyond that Pistache answers 413 itself.
    endpoint_->init(Pistache::Http::Endpoint::options()
                        .threads(options_.threads)
                        .flags(Pistache::Tcp::Options::ReuseAddr)
                        .maxRequestSize(2 * options_.max_body_bytes + 65536)
                        .maxResponseSize(64 << 20));
    endpoint_->setHandler(
        Pistache::Http::make_handler<Handler>(&api_, state_, options_.max_body_bytes));
    endpoint_->serveThreaded();
    port_ = static_cast<uint16_t>(endpoint_->getPort());
  } catch (const std::exception& e) {
    endpoint_.reset();
    return Fail(codes::kUnavailable, "cannot listen on " + options_.host + ":" +
                                         std::to_string(options_.port) + ": " + e.what());
  }
  return {};
}

void HttpServer::Stop(std::chrono::milliseconds drain) {
  if (!endpoint_) return;
  state_->draining.store(true);
  const auto deadline = std::chrono::steady_clock::now() + drain;
  while (state_->in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  endpoint_->shutdown();
  endpoint_.reset();
}

}  // namespace runlog::api
