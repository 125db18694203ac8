#include "infra/cli/http_load.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace runlog::cli {

struct HttpLoad::Conn {
  int fd = -1;
  std::string out;
  size_t out_off = 0;
  std::string in;
  Callback done;
  bool busy = false;
  bool want_out = false;  // EPOLLOUT is in the socket's epoll interest
};

HttpLoad::HttpLoad(std::string host, uint16_t port, std::string auth_header)
    : host_(std::move(host)),
      port_(port),
      auth_(std::move(auth_header)),
      epoll_fd_(::epoll_create1(0)) {}

HttpLoad::~HttpLoad() {
  for (auto& c : conns_) {
    if (c->fd >= 0) ::close(c->fd);
  }
  ::close(epoll_fd_);
}

HttpLoad::Conn* HttpLoad::Connect(std::string* error) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  if (::inet_pton(AF_INET, host_.c_str(), &addr.sin_addr) != 1) {
    *error = "bench needs an IPv4 address, got " + host_;
    ::close(fd);
    return nullptr;
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    *error = std::string("connect: ") + std::strerror(errno);
    ::close(fd);
    return nullptr;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  auto conn = std::make_unique<Conn>();
  conn->fd = fd;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = conn.get();
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  conns_.push_back(std::move(conn));
  return conns_.back().get();
}

bool HttpLoad::Busy(const Conn* c) const { return c->busy; }

bool HttpLoad::Send(Conn* c, std::string_view method, std::string_view path, std::string_view body,
                    Callback done) {
  if (c->fd < 0) return false;
  c->busy = true;
  c->done = std::move(done);
  c->in.clear();
  c->out.clear();
  c->out_off = 0;
  c->out.append(method).append(" ").append(path).append(" HTTP/1.1\r\nHost: ").append(host_);
  c->out.append("\r\n").append(auth_).append("Content-Type: application/json\r\nContent-Length: ");
  c->out.append(std::to_string(body.size())).append("\r\n\r\n").append(body);
  OnWritable(c);
  return true;
}

void HttpLoad::OnWritable(Conn* c) {
  while (c->out_off < c->out.size()) {
    ssize_t n = ::send(c->fd, c->out.data() + c->out_off, c->out.size() - c->out_off, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return WantOut(c, true);
    if (n <= 0) return Fail(c);
    c->out_off += static_cast<size_t>(n);
  }
  WantOut(c, false);
}

void HttpLoad::WantOut(Conn* c, bool want) {
  if (c->want_out == want) return;  // a system call saved per request: they are dear here
  c->want_out = want;
  epoll_event ev{};
  ev.events = want ? EPOLLIN | EPOLLOUT : EPOLLIN;
  ev.data.ptr = c;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd, &ev);
}

void HttpLoad::Fail(Conn* c) {
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
  ::close(c->fd);
  c->fd = -1;
  if (c->busy) {
    c->busy = false;
    auto done = std::move(c->done);
    done(0, {});
  }
}

void HttpLoad::OnReadable(Conn* c) {
  char buf[65536];
  while (true) {
    ssize_t n = ::recv(c->fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n <= 0) return Fail(c);
    c->in.append(buf, static_cast<size_t>(n));
    // A short read emptied the socket: no second recv just to hear EAGAIN
    // (epoll is level-triggered, so anything arriving later wakes us again).
    if (static_cast<size_t>(n) < sizeof buf) break;
  }
  if (!c->busy) {
    // An answer to no request (the server timing out an idle connection,
    // e.g. while another one waits for /readyz): nobody waits for it.
    c->in.clear();
    return;
  }
  size_t header_end = c->in.find("\r\n\r\n");
  if (header_end == std::string::npos) return;
  // Content-Length, case-insensitively.
  size_t length = 0;
  for (size_t pos = 0; pos < header_end;) {
    size_t eol = c->in.find("\r\n", pos);
    std::string_view line(c->in.data() + pos, eol - pos);
    if (line.size() > 15 && strncasecmp(line.data(), "content-length:", 15) == 0) {
      length = std::strtoul(std::string(line.substr(15)).c_str(), nullptr, 10);
    }
    pos = eol + 2;
  }
  if (c->in.size() < header_end + 4 + length) return;
  int status = std::atoi(c->in.c_str() + 9);
  std::string body = c->in.substr(header_end + 4, length);
  c->busy = false;
  auto done = std::move(c->done);
  done(status, body);
}

void HttpLoad::Poll(int max_wait_ms) {
  epoll_event events[256];
  int n = ::epoll_wait(epoll_fd_, events, 256, max_wait_ms);
  for (int i = 0; i < n; ++i) {
    auto* c = static_cast<Conn*>(events[i].data.ptr);
    if (c->fd < 0) continue;
    if (events[i].events & EPOLLOUT) OnWritable(c);
    if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) OnReadable(c);
  }
}

}  // namespace runlog::cli
