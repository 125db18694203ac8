#pragma once
// A minimal HTTP/1.1 load client: one thread, epoll, keep-alive connections,
// one request in flight per connection. Enough for runlog's own API (answers
// always carry Content-Length). For `runlog bench` only.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace runlog::cli {

class HttpLoad {
 public:
  using Callback = std::function<void(int status, std::string_view body)>;
  struct Conn;

  HttpLoad(std::string host, uint16_t port, std::string auth_header);
  ~HttpLoad();

  // Opens a connection; nullptr (with `error`) if it cannot.
  Conn* Connect(std::string* error);
  bool Busy(const Conn* c) const;
  // Sends a request on an idle connection; `done` runs when the answer is in
  // (status 0: the connection failed). A failed connection stays closed: Send
  // on it returns false and never calls `done`, so a caller that sends again
  // from `done` stops instead of recursing.
  bool Send(Conn* c, std::string_view method, std::string_view path, std::string_view body,
            Callback done);
  // Serves events for up to `max_wait_ms`.
  void Poll(int max_wait_ms);

 private:
  void OnReadable(Conn* c);
  void OnWritable(Conn* c);
  void WantOut(Conn* c, bool want);  // adds or drops EPOLLOUT, if it changes
  void Fail(Conn* c);

  std::string host_;
  uint16_t port_;
  std::string auth_;
  int epoll_fd_;
  std::vector<std::unique_ptr<Conn>> conns_;
};

}  // namespace runlog::cli
