#pragma once
// A webhook receiver for tests: a real HTTP/1.1 server on 127.0.0.1 that
// reads each POST, asks `answer` for the status to give it, and keeps every
// request it saw (headers, body, the status it gave). One thread a
// connection; bounded by the test.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace runlog::testing {

class Receiver {
 public:
  struct Request {
    std::map<std::string, std::string> headers;  // names lowercased
    std::string body;
    int status = 0;
  };
  using Answer = std::function<int(const Request&)>;

  explicit Receiver(Answer answer) : answer_(std::move(answer)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 64);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accept_ = std::thread([this] { Accept(); });
  }
  ~Receiver() {
    stopping_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    accept_.join();
    std::vector<std::thread> conns;
    {
      std::lock_guard lock(mu_);
      for (int c : open_) ::shutdown(c, SHUT_RDWR);
      conns.swap(conns_);
    }
    for (auto& t : conns) t.join();
  }

  std::string url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::vector<Request> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  void SetAnswer(Answer answer) {
    std::lock_guard lock(mu_);
    answer_ = std::move(answer);
  }

 private:
  void Accept() {
    while (!stopping_) {
      const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::lock_guard lock(mu_);
      open_.push_back(c);
      conns_.emplace_back([this, c] { Serve(c); });
    }
  }
  void Serve(int c) {
    std::string in;
    char buf[65536];
    while (!stopping_) {
      size_t end = in.find("\r\n\r\n");
      while (end == std::string::npos) {
        const ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) return Close(c);
        in.append(buf, static_cast<size_t>(n));
        end = in.find("\r\n\r\n");
      }
      Request r;
      size_t line = in.find("\r\n") + 2;
      while (line < end) {
        const size_t next = in.find("\r\n", line);
        const std::string h = in.substr(line, next - line);
        const size_t colon = h.find(':');
        if (colon != std::string::npos) {
          std::string name = h.substr(0, colon);
          std::transform(name.begin(), name.end(), name.begin(), ::tolower);
          size_t v = colon + 1;
          while (v < h.size() && h[v] == ' ') ++v;
          r.headers[name] = h.substr(v);
        }
        line = next + 2;
      }
      const size_t length = std::stoul(
          r.headers.count("content-length") != 0 ? r.headers["content-length"] : std::string("0"));
      while (in.size() < end + 4 + length) {
        const ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) return Close(c);
        in.append(buf, static_cast<size_t>(n));
      }
      r.body = in.substr(end + 4, length);
      in.erase(0, end + 4 + length);
      Answer answer;
      {
        std::lock_guard lock(mu_);
        answer = answer_;
      }
      r.status = answer(r);
      {
        std::lock_guard lock(mu_);
        requests_.push_back(r);
      }
      const std::string out = "HTTP/1.1 " + std::to_string(r.status) +
                              " X\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";
      if (::write(c, out.data(), out.size()) < 0) return Close(c);
    }
    Close(c);
  }
  void Close(int c) {
    std::lock_guard lock(mu_);
    open_.erase(std::remove(open_.begin(), open_.end(), c), open_.end());
    ::close(c);
  }

  Answer answer_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_;
  mutable std::mutex mu_;
  std::vector<int> open_;
  std::vector<std::thread> conns_;
  std::vector<Request> requests_;
};

}  // namespace runlog::testing
