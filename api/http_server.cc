#include "api/http_server.h"

#include <fcntl.h>
#include <pistache/endpoint.h>
#include <pistache/http_header.h>
#include <pistache/peer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "api/exchange.h"

namespace runlog::api {
namespace {

// A query string's key or value as sent: %XX is that byte, "+" a space
// (what browsers' URLSearchParams and HTML forms send). A "%" not followed
// by two hex digits stays as it is.
std::string QueryDecode(std::string_view in) {
  const auto hex = [](char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
  };
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out.push_back(' ');
    } else if (in[i] == '%' && i + 2 < in.size() && hex(in[i + 1]) >= 0 && hex(in[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2])));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

std::string RawHeader(const Pistache::Http::Request& request, const char* name) {
  auto raw = request.headers().tryGetRaw(name);
  return raw ? raw->value() : std::string();
}

// A connection's socket under a descriptor of our own (a dup of Pistache's).
// Answers are written straight to it from whichever thread finishes the
// command: handing each one to Pistache's reactor costs an eventfd write and
// read and three epoll_ctl calls per answer. Owning the descriptor means a
// number Pistache closed and the kernel reused for a new client can never
// receive another client's answer: the socket lives until the last answer in
// flight lets go of it.
//
// Commands finish in any order (a create on one partition, a long poll, a GET
// that waits for the views), but HTTP/1.1 answers pipelined requests in the
// order they came: each request takes a number, and an answer that is ready
// before an earlier one waits here until that one is written.
struct Connection {
  explicit Connection(int fd) : fd(fd) {}
  ~Connection() {
    // The last owner may let go in Pistache's uninstrumented code; taking
    // `mu` orders the close after every write, for ThreadSanitizer too.
    std::lock_guard lock(mu);
    if (fd >= 0) ::close(fd);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  const int fd;  // -1: the dup failed; every answer goes through Pistache
  std::mutex mu;
  // Answers handed to Pistache's reactor (the socket was full) and not yet
  // written: while there are any, later answers queue behind them there.
  // Counted down by the reactor without `mu`.
  std::atomic<int> queued{0};
  uint64_t next_request = 0;  // the number the next request takes
  uint64_t next_answer = 0;   // the number of the next answer to write
  // Answers ready before an earlier one, by number; none: nothing to write.
  std::map<uint64_t, std::optional<std::string>> waiting;
};

constexpr char kConnectionKey[] = "runlog.connection";

std::shared_ptr<Connection> ConnectionOf(const std::shared_ptr<Pistache::Tcp::Peer>& peer) {
  auto conn = std::static_pointer_cast<Connection>(peer->tryGetData(kConnectionKey));
  if (!conn) {
    conn = std::make_shared<Connection>(::fcntl(peer->fd(), F_DUPFD_CLOEXEC, 0));
    peer->putData(kConnectionKey, conn);
  }
  return conn;
}

// Status line and headers, as Pistache writes them, then the body.
std::string Serialize(int status, const std::string& content_type, const std::string& body,
                      bool keep_alive,
                      const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string out;
  out.reserve(body.size() + 160);
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += Pistache::Http::codeString(static_cast<Pistache::Http::Code>(status));
  // A 304 has no body, so it names no type or length (RFC 9110 15.4.5).
  const bool not_modified = status == 304;
  if (!not_modified) {
    out += "\r\nContent-Type: ";
    out += content_type;
  }
  out += keep_alive ? "\r\nConnection: Keep-Alive" : "\r\nConnection: Close";
  for (const auto& [name, value] : headers) {
    out += "\r\n";
    out += name;
    out += ": ";
    out += value;
  }
  if (!not_modified) {
    out += "\r\nContent-Length: ";
    out += std::to_string(body.size());
  }
  out += "\r\n\r\n";
  if (!not_modified) out += body;
  return out;
}

class PistacheReply final : public Reply {
 public:
  PistacheReply(Pistache::Http::ResponseWriter writer, std::shared_ptr<Connection> conn,
                uint64_t number, bool keep_alive, std::shared_ptr<HttpServer::State> state)
      : writer_(std::move(writer)),
        conn_(std::move(conn)),
        number_(number),
        keep_alive_(keep_alive),
        state_(std::move(state)) {}
  // A request dropped without an answer must not hold up the ones after it.
  ~PistacheReply() override {
    if (!answered_) Answer(std::nullopt);
  }

  std::string Serialize(int status, const std::string& content_type, const std::string& body,
                        const Headers& headers) const override {
    return api::Serialize(status, content_type, body, keep_alive_, headers);
  }
  void SendSerialized(std::string wire) override {
    answered_ = true;
    Answer(std::move(wire));
  }
  std::shared_ptr<Stream> OpenStream(const std::string& content_type) override;

 private:
  // Writes this answer and every later one that was waiting for it, in order.
  void Answer(std::optional<std::string> wire) {
    std::lock_guard lock(conn_->mu);
    if (number_ != conn_->next_answer) {
      conn_->waiting.emplace(number_, std::move(wire));
      return;
    }
    while (true) {
      ++conn_->next_answer;
      if (wire) {
        Write(*wire);
      } else {
        state_->in_flight.fetch_sub(1);  // nothing to write: no longer in flight
      }
      auto next = conn_->waiting.find(conn_->next_answer);
      if (next == conn_->waiting.end()) return;
      wire = std::move(next->second);
      conn_->waiting.erase(next);
    }
  }

  // Writes one answer (requires conn_->mu).
  void Write(const std::string& wire) {
    // An answer is done when it is written, not when it is queued for
    // Pistache's reactor: Stop() must not shut the reactor down before that.
    auto state = state_;
    auto finished = [state] { state->in_flight.fetch_sub(1); };
    size_t written = 0;
    if (conn_->queued == 0 && conn_->fd >= 0) {
      while (written < wire.size()) {
        const ssize_t n =
            ::send(conn_->fd, wire.data() + written, wire.size() - written, MSG_NOSIGNAL);
        if (n > 0) {
          written += static_cast<size_t>(n);
        } else if (n < 0 && errno == EINTR) {
          continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          break;  // the socket is full: the reactor writes the rest when it drains
        } else {
          return finished();  // the client went away: nothing left to tell it
        }
      }
      if (written == wire.size()) return finished();
    }
    std::shared_ptr<Pistache::Tcp::Peer> peer;
    try {
      peer = writer_.peer();
    } catch (const std::exception&) {
    }
    if (!peer) return finished();  // the client went away
    ++conn_->queued;
    auto conn = conn_;
    auto done = [conn, finished] {
      conn->queued.fetch_sub(1);
      finished();
    };
    // Still under `mu`, so no later answer can reach Pistache's queue first.
    try {
      peer->send(Pistache::RawBuffer(wire.substr(written), wire.size() - written))
          .then([done](ssize_t) { done(); }, [done](std::exception_ptr) { done(); });
    } catch (const std::exception&) {
      done();
    }
  }

  Pistache::Http::ResponseWriter writer_;
  std::shared_ptr<Connection> conn_;
  const uint64_t number_;
  const bool keep_alive_;
  std::shared_ptr<HttpServer::State> state_;
  bool answered_ = false;
};

// The body of a streamed answer, written to the connection's own socket
// without blocking: what the socket does not take waits in `unsent_`.
class SocketStream final : public Stream {
 public:
  explicit SocketStream(std::shared_ptr<Connection> conn) : conn_(std::move(conn)) {}
  ~SocketStream() override {
    Close();
    std::lock_guard lock(conn_->mu);  // orders these sends before ~Connection's close
  }
  void Write(std::string_view data) override {
    unsent_.append(data);
    Flush();
  }
  bool Flush() override {
    while (!gone_ && !unsent_.empty()) {
      const ssize_t n =
          ::send(conn_->fd, unsent_.data(), unsent_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        unsent_.erase(0, static_cast<size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        break;
      } else {
        gone_ = true;
      }
    }
    if (!gone_ && unsent_.empty()) {
      // A client that went away shows as a readable end of file.
      char probe;
      const ssize_t n = ::recv(conn_->fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0) gone_ = true;
    }
    return !gone_;
  }
  size_t unsent() const override { return unsent_.size(); }
  void Close() override {
    if (closed_) return;
    closed_ = true;
    ::shutdown(conn_->fd, SHUT_RDWR);  // Pistache sees the end and lets the connection go
  }

 private:
  std::shared_ptr<Connection> conn_;
  std::string unsent_;
  bool gone_ = false, closed_ = false;
};

std::shared_ptr<Stream> PistacheReply::OpenStream(const std::string& content_type) {
  if (conn_->fd < 0) return nullptr;
  answered_ = true;
  Answer("HTTP/1.1 200 OK\r\nContent-Type: " + content_type +
         "\r\nCache-Control: no-cache\r\nConnection: close\r\nX-Accel-Buffering: no\r\n\r\n");
  return std::make_shared<SocketStream>(conn_);
}

class Handler final : public Pistache::Http::Handler {
 public:
  HTTP_PROTOTYPE(Handler)
  Handler(Api* api, std::shared_ptr<HttpServer::State> state, size_t max_body, size_t max_content)
      : api_(api), state_(std::move(state)), max_body_(max_body), max_content_(max_content) {}

  void onRequest(const Pistache::Http::Request& request,
                 Pistache::Http::ResponseWriter response) override {
    state_->in_flight.fetch_add(1);
    std::string connection = RawHeader(request, "Connection");
    for (char& c : connection) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const bool http11 = request.version() == Pistache::Http::Version::Http11;
    const bool keep_alive = http11 ? connection != "close" : connection == "keep-alive";
    std::shared_ptr<Connection> conn;
    try {
      conn = ConnectionOf(response.peer());
    } catch (const std::exception&) {
      state_->in_flight.fetch_sub(1);
      return;  // the client is already gone
    }
    uint64_t number;
    {
      std::lock_guard lock(conn->mu);
      number = conn->next_request++;
    }
    auto reply = std::make_shared<PistacheReply>(std::move(response), std::move(conn), number,
                                                 keep_alive, state_);
    Call call;
    call.method = Pistache::Http::methodString(request.method());
    call.path = request.resource();
    // Pistache splits the query but leaves its escapes.
    for (auto it = request.query().parameters_begin(); it != request.query().parameters_end();
         ++it) {
      call.query[QueryDecode(it->first)] = QueryDecode(it->second);
    }
    call.authorization = RawHeader(request, "Authorization");
    call.content_type = RawHeader(request, "Content-Type");
    call.idempotency_key = RawHeader(request, "Idempotency-Key");
    call.last_event_id = RawHeader(request, "Last-Event-ID");
    call.forwarded = !RawHeader(request, "X-Runlog-Forwarded").empty();
    call.position = RawHeader(request, "X-Runlog-Position");
    if (call.forwarded) {  // a call runlog made itself, acting as a principal (Api::Route checks
                           // it)
      for (const char* name : {"x-runlog-principal", "x-runlog-principal-signature"}) {
        if (std::string v = RawHeader(request, name); !v.empty()) call.headers[name] = v;
      }
    }
    if (call.path.starts_with("/ui/")) {  // the dashboard's files are cached by ETag
      if (std::string v = RawHeader(request, "If-None-Match"); !v.empty()) {
        call.headers["if-none-match"] = v;
      }
    }
    if (call.path.find("/channels/") != std::string::npos) {
      for (const char* name :
           {"webhook-id", "webhook-timestamp", "webhook-signature", "x-runlog-signature"}) {
        if (std::string v = RawHeader(request, name); !v.empty()) call.headers[name] = v;
      }
    }
    // Binary content (PUT of an artifact's or output's bytes) may be larger.
    const bool content =
        request.method() == Pistache::Http::Method::Put &&
        (call.path.find("/artifacts/") != std::string::npos || call.path.ends_with("/outputs"));
    call.body_too_large = request.body().size() > (content ? max_content_ : max_body_);
    if (!call.body_too_large) call.body = request.body();
    if (state_->draining.load()) {
      reply->Send(
          503, "application/json",
          std::string(R"({"error":{"code":")") + codes::kUnavailable +
              R"(","message":"the server is stopping","details":{}},)"
              R"("agent_contract":{"version":"1","lease_valid":false,"retryable":true,)"
              R"("next_actions":[{"action":"retry_after_wait","recommended":true,"retry_after_seconds":1}]},)"
              R"("version":")" +
              kApiVersion + R"("})",
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
  size_t max_content_;
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
    endpoint_->init(
        Pistache::Http::Endpoint::options()
            .threads(options_.threads)
            .flags(Pistache::Tcp::Options::ReuseAddr)
            .maxRequestSize(std::max(2 * options_.max_body_bytes, options_.max_content_bytes) +
                            65536)
            .maxResponseSize(64 << 20));
    endpoint_->setHandler(Pistache::Http::make_handler<Handler>(
        &api_, state_, options_.max_body_bytes, options_.max_content_bytes));
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
