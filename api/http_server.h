#pragma once
// The HTTP front end (Pistache). Until the tasks API lands it serves only
// GET /healthz, which reports the log it is attached to.
//
// Lifecycle: Start() binds and serves on its own threads; Stop() stops
// accepting and returns once the server threads are gone.
// Thread contract: Start/Stop from one thread; handlers run on Pistache's.

#include <memory>
#include <string>

#include "events/event_log.h"
#include "infra/result.h"

namespace Pistache::Http {
class Endpoint;
}

namespace runlog::api {

struct HttpOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0 picks a free port
  int threads = 2;
};

class HttpServer {
 public:
  HttpServer(HttpOptions options, events::EventLog& log);
  ~HttpServer();

  [[nodiscard]] Status Start();
  void Stop();
  uint16_t port() const { return port_; }

 private:
  HttpOptions options_;
  events::EventLog& log_;
  std::shared_ptr<Pistache::Http::Endpoint> endpoint_;
  uint16_t port_ = 0;
};

// Parses "HOST:PORT" (IPv4 or a name; [v6]:port too).
[[nodiscard]] Result<HttpOptions> ParseListen(const std::string& listen);

}  // namespace runlog::api
