#pragma once
// A child process for tests: runs a binary with arguments, captures stdout and
// stderr through pipes, and lets the test read them line by line with a
// deadline. The destructor SIGKILLs a child that is still running.

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace runlog::testing {

class Process {
 public:
  explicit Process(std::vector<std::string> argv) {
    int out[2], err[2];
    if (::pipe(out) != 0 || ::pipe(err) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      for (int fd : {out[0], out[1], err[0], err[1]}) ::close(fd);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    out_ = out[0];
    err_ = err[0];
  }
  ~Process() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      Wait();
    }
    if (out_ >= 0) ::close(out_);
    if (err_ >= 0) ::close(err_);
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // The next whole line of stdout (or stderr), or nullopt at EOF or deadline.
  std::optional<std::string> ReadStdoutLine(std::chrono::milliseconds timeout) {
    return ReadLine(out_, out_buffer_, timeout);
  }
  std::optional<std::string> ReadStderrLine(std::chrono::milliseconds timeout) {
    return ReadLine(err_, err_buffer_, timeout);
  }
  // Everything left on stderr until the child closes it.
  std::string DrainStderr() {
    std::string all = err_buffer_;
    err_buffer_.clear();
    char buf[4096];
    ssize_t n;
    while ((n = ::read(err_, buf, sizeof buf)) > 0) all.append(buf, n);
    return all;
  }

  pid_t pid() const { return pid_; }
  void Signal(int sig) { ::kill(pid_, sig); }
  // Waits for the child; returns its exit code, or 128+signal.
  int Wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  static std::optional<std::string> ReadLine(int fd, std::string& buffer,
                                             std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      if (auto nl = buffer.find('\n'); nl != std::string::npos) {
        std::string line = buffer.substr(0, nl);
        buffer.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) return std::nullopt;
      buffer.append(buf, n);
    }
  }

  pid_t pid_ = -1;
  int out_ = -1;
  int err_ = -1;
  bool exited_ = false;
  std::string out_buffer_;
  std::string err_buffer_;
};

// What a command did, run to its end: exit code, stdout and stderr.
struct Outcome {
  int code = -1;
  std::string out, err;
};

inline Outcome Execute(std::vector<std::string> argv,
                       std::chrono::milliseconds line_timeout = std::chrono::seconds(60)) {
  Process p(std::move(argv));
  Outcome r;
  while (auto line = p.ReadStdoutLine(line_timeout)) r.out += *line + "\n";
  r.err = p.DrainStderr();
  r.code = p.Wait();
  return r;
}

}  // namespace runlog::testing
