#pragma once
// The HTTP server: Pistache underneath, the Api on top.
//
// Pistache 0.0.5 needs care (docs/decisions/0005-pistache.md): it answers
// "Connection: Close" unless told otherwise, so every answer sets keep-alive
// for HTTP/1.1 clients that did not ask to close; headers added with addRaw are
// dropped; and each answer handed to its reactor from another thread costs
// five system calls, so answers are serialized here and written straight to
// a dup of the connection's socket (decision 0012); shutdown() does not wait for
// requests in flight, so Stop() first refuses new requests (503) and waits for
// the answers in flight, which matters because commands answer later, from
// the log's threads.
//
// Lifecycle: Start() binds and serves on its own threads; Stop() drains, then
// shuts down. Thread contract: Start/Stop from one thread.

#include <atomic>
#include <memory>
#include <string>

#include "api/api.h"
#include "infra/base/result.h"

namespace Pistache::Http {
class Endpoint;
}

namespace runlog::api {

struct HttpOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0 picks a free port
  int threads = 2;
  size_t max_body_bytes = 1 << 20;
  size_t max_content_bytes = 64 << 20;  // binary artifacts (ApiOptions::max_content_bytes)
};

class HttpServer {
 public:
  HttpServer(HttpOptions options, Api& api);
  ~HttpServer();

  [[nodiscard]] Status Start();
  // Answers new requests with 503 from now on (the first step of Stop).
  void BeginDrain() { state_->draining.store(true); }
  // Refuses new requests, waits up to `drain` for answers in flight, stops.
  // Call TaskService::StopParking between BeginDrain and Stop, so parked
  // long polls are answered before the wait.
  void Stop(std::chrono::milliseconds drain = std::chrono::seconds(10));
  uint16_t port() const { return port_; }

  struct State {
    std::atomic<int64_t> in_flight{0};
    std::atomic<bool> draining{false};
  };

 private:
  HttpOptions options_;
  Api& api_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
  std::shared_ptr<Pistache::Http::Endpoint> endpoint_;
  uint16_t port_ = 0;
};

// Parses "HOST:PORT" (IPv4 or a name; [v6]:port too).
[[nodiscard]] Result<HttpOptions> ParseListen(const std::string& listen);

}  // namespace runlog::api
