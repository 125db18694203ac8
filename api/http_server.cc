#include "api/http_server.h"

#include <pistache/endpoint.h>
#include <pistache/router.h>

#include <charconv>

namespace runlog::api {
namespace {

class Handler final : public Pistache::Http::Handler {
 public:
  HTTP_PROTOTYPE(Handler)
  explicit Handler(events::EventLog* log) : log_(log) {}

  void onRequest(const Pistache::Http::Request& request,
                 Pistache::Http::ResponseWriter response) override {
    using Pistache::Http::Code;
    response.headers().add<Pistache::Http::Header::ContentType>(MIME(Application, Json));
    if (request.resource() == "/healthz") {
      if (request.method() != Pistache::Http::Method::Get) {
        response.send(Code::Method_Not_Allowed,
                      R"({"error":{"code":"METHOD_NOT_ALLOWED","message":"use GET"}})");
        return;
      }
      response.send(Code::Ok, R"({"status":"ok","log":")" + log_->Describe() +
                                  R"(","partitions":)" + std::to_string(log_->partition_count()) +
                                  "}");
      return;
    }
    response.send(Code::Not_Found, R"({"error":{"code":"NOT_FOUND","message":"no such route"}})");
  }

 private:
  events::EventLog* log_;
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

HttpServer::HttpServer(HttpOptions options, events::EventLog& log)
    : options_(std::move(options)), log_(log) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  try {
    Pistache::Address address(options_.host, Pistache::Port(options_.port));
    endpoint_ = std::make_shared<Pistache::Http::Endpoint>(address);
    endpoint_->init(Pistache::Http::Endpoint::options()
                        .threads(options_.threads)
                        .flags(Pistache::Tcp::Options::ReuseAddr)
                        .maxRequestSize(1 << 20));
    endpoint_->setHandler(Pistache::Http::make_handler<Handler>(&log_));
    endpoint_->serveThreaded();
    port_ = static_cast<uint16_t>(endpoint_->getPort());
  } catch (const std::exception& e) {
    endpoint_.reset();
    return Fail(codes::kUnavailable, "cannot listen on " + options_.host + ":" +
                                         std::to_string(options_.port) + ": " + e.what());
  }
  return {};
}

void HttpServer::Stop() {
  if (!endpoint_) return;
  endpoint_->shutdown();
  endpoint_.reset();
}

}  // namespace runlog::api
