#pragma once
// A server-sent events reader for tests: a plain socket to 127.0.0.1, one
// GET, then frames parsed as they come (id, event, data).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>

namespace runlog::testing {

class SseClient {
 public:
  struct Frame {
    std::string id, event, data;
  };

  // Connects to `port` and sends GET `path`; status() is the answer's code.
  SseClient(uint16_t port, const std::string& path, const std::string& key,
            const std::string& last_event_id = "") {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return;
    std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                          key + "\r\nAccept: text/event-stream\r\n";
    if (!last_event_id.empty()) request += "Last-Event-ID: " + last_event_id + "\r\n";
    request += "\r\n";
    if (::write(fd_, request.data(), request.size()) < 0) return;
    // The status line and headers.
    while (buffer_.find("\r\n\r\n") == std::string::npos) {
      if (!Fill(std::chrono::seconds(10))) return;
    }
    status_ = std::stoi(buffer_.substr(9, 3));
    headers_ = buffer_.substr(0, buffer_.find("\r\n\r\n"));
    buffer_.erase(0, buffer_.find("\r\n\r\n") + 4);
  }
  ~SseClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  int status() const { return status_; }
  const std::string& headers() const { return headers_; }

  // The next event (comments skipped); none at the end of the stream or timeout.
  std::optional<Frame> Next(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      size_t end;
      while ((end = buffer_.find("\n\n")) != std::string::npos) {
        std::string block = buffer_.substr(0, end);
        buffer_.erase(0, end + 2);
        Frame f;
        bool any = false;
        size_t at = 0;
        while (at <= block.size()) {
          size_t nl = block.find('\n', at);
          if (nl == std::string::npos) nl = block.size();
          const std::string line = block.substr(at, nl - at);
          at = nl + 1;
          if (line.starts_with("id: ")) f.id = line.substr(4), any = true;
          if (line.starts_with("event: ")) f.event = line.substr(7), any = true;
          if (line.starts_with("data: ")) f.data = line.substr(6), any = true;
        }
        if (any) return f;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !Fill(left)) return std::nullopt;
    }
  }

 private:
  bool Fill(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    char buf[16384];
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  int status_ = 0;
  std::string headers_, buffer_;
};

}  // namespace runlog::testing
