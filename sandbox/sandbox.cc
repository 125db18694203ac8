#include "sandbox/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <utility>

#include "sandbox/cgroup.h"
#include "sandbox/protocol.h"
#include "sandbox/seccomp_filter.h"

namespace runlog::sandbox {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long past the wall deadline the helper gets before runlogd kills it itself,
// and how long a cancel or a finished helper may take to let the pipes reach EOF.
constexpr milliseconds kBackstopSlack{2000};
constexpr milliseconds kGrace{1000};
constexpr milliseconds kCancelPoll{100};

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Close(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Close();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// One captured stream: keeps the first `cap` bytes, reads and drops the rest.
struct Capture {
  Fd fd;
  std::string data;
  bool truncated = false;
  size_t cap = 0;

  void Read() {
    char chunk[65536];
    ssize_t n = ::read(fd.get(), chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) return fd.Close();
    size_t keep = std::min(static_cast<size_t>(n), cap - data.size());
    data.append(chunk, keep);
    if (keep < static_cast<size_t>(n)) truncated = true;
  }
};

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

Result<pid_t> SpawnHelper(const std::string& path, int out, int err, int control) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out, 1);
  posix_spawn_file_actions_adddup2(&actions, err, 2);
  posix_spawn_file_actions_adddup2(&actions, control, wire::kControlFd);
  posix_spawn_file_actions_addclosefrom_np(&actions, wire::kControlFd + 1);
  // runlogd's threads may block or handle signals; the helper starts clean and in
  // its own process group, away from terminal signals meant for runlogd.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  char* argv[] = {const_cast<char*>(path.c_str()), nullptr};
  char* envp[] = {nullptr};
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, path.c_str(), &actions, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return Fail(kSandboxError,
                "cannot start the sandbox helper " + path + ": " + std::strerror(rc));
  }
  return pid;
}

Status Validate(const Request& request) {
  const Limits& l = request.limits;
  if (request.argv.empty() || request.argv[0].empty() || request.argv[0][0] != '/')
    return Fail(codes::kInvalidArgument, "argv[0] must be an absolute path inside the sandbox");
  if (l.wall.count() <= 0 || l.cpu_seconds <= 0 || l.memory_bytes <= 0 || l.max_processes <= 0 ||
      l.file_size_bytes <= 0 || l.open_files <= 0)
    return Fail(codes::kInvalidArgument, "sandbox limits must all be positive");
  return {};
}

std::string ExecMessage(const std::string& path, int err) {
  return "runlog-sandbox: cannot execute " + path + ": " + std::strerror(err) + "\n";
}

// One run as runlogd sees it: the helper process, its stdout/stderr pipes and
// control socket, the request still to send, the report received, the deadlines.
// Lives inside one Run call, on its thread.
class HelperSession {
 public:
  HelperSession(const Request& request, const std::atomic<bool>* cancel)
      : cancel_(cancel), backstop_(start_ + request.limits.wall + kBackstopSlack) {
    stdout_.cap = stderr_.cap = request.limits.output_bytes;
  }
  ~HelperSession() {
    if (helper_ > 0 && !reaped_) {
      KillHelper();
      Reap();
    }
  }

  Status Start(const std::string& helper_path, std::string request_frame) {
    int out[2], err[2], control[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return Fail(kSandboxError, Errno("pipe"));
    stdout_.fd = Fd(out[0]);
    Fd out_write(out[1]);
    if (::pipe2(err, O_CLOEXEC) != 0) return Fail(kSandboxError, Errno("pipe"));
    stderr_.fd = Fd(err[0]);
    Fd err_write(err[1]);
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, control) != 0)
      return Fail(kSandboxError, Errno("socketpair"));
    control_ = Fd(control[0]);
    Fd control_child(control[1]);
    Result<pid_t> spawned = SpawnHelper(helper_path, out[1], err[1], control[1]);
    if (!spawned) return std::unexpected(spawned.error());
    helper_ = *spawned;
    to_send_ = std::move(request_frame);
    return {};
  }

  // Moves bytes until the helper is gone and both pipes are at EOF (or a grace
  // period after the helper is gone: something outside the run holds a pipe).
  void Pump() {
    while (stdout_.fd.get() >= 0 || stderr_.fd.get() >= 0 || !control_eof_) {
      auto now = Clock::now();
      if (control_eof_ && !reaped_) {  // the helper has exited or is exiting
        Reap();
        drain_deadline_ = Clock::now() + kGrace;
      }
      if (drain_deadline_ && now >= *drain_deadline_) break;
      if (now >= backstop_ || (cancel_deadline_ && now >= *cancel_deadline_)) KillHelper();
      if (cancel_ != nullptr && !cancel_sent_ && cancel_->load()) SendCancel(now);
      if (!PollOnce(now)) break;
    }
    if (!reaped_) {
      if (!control_eof_) KillHelper();
      Reap();
    }
  }

  Result<Outcome> Finish(const Request& request, const Options& options) {
    Outcome outcome;
    outcome.wall_ms = std::chrono::duration_cast<milliseconds>(Clock::now() - start_).count();
    outcome.cpu_ms = cpu_ms_;
    outcome.stdout_data = std::move(stdout_.data);
    outcome.stderr_data = std::move(stderr_.data);
    outcome.stdout_truncated = stdout_.truncated;
    outcome.stderr_truncated = stderr_.truncated;
    auto frame = wire::TakeFrame(received_);
    std::optional<wire::Report> report;
    if (frame && frame->has_value()) report = wire::DecodeReport(**frame);
    if (!report) return NoReport(options, std::move(outcome));
    if (!report->error.empty()) return Fail(kSandboxError, report->error);
    outcome.exit_code = report->exit_code;
    outcome.term_signal = report->term_signal;
    outcome.timed_out = report->timed_out;
    outcome.cancelled = report->cancelled;
    outcome.memory_exceeded = report->memory_exceeded;
    outcome.cgroup_mode = report->cgroup_mode;
    if (report->exec_errno != 0) {
      outcome.exit_code = 127;
      outcome.stderr_data += ExecMessage(request.argv[0], report->exec_errno);
    }
    return outcome;
  }

 private:
  void KillHelper() {
    if (!helper_killed_ && !reaped_) ::kill(helper_, SIGKILL);  // a reaped pid may be reused
    helper_killed_ = true;
  }
  void Reap() {
    // wait4: the helper's CPU time includes the jail's and the code's, which
    // it and the jail's init reaped.
    rusage usage{};
    while (::wait4(helper_, &helper_status_, 0, &usage) < 0 && errno == EINTR) {
    }
    cpu_ms_ = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000 +
              (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1000;
    reaped_ = true;
  }
  void SendCancel(Clock::time_point now) {
    cancel_sent_ = true;
    cancel_deadline_ = now + kGrace;
    char byte = 'C';
    if (sent_ < to_send_.size() ||
        ::send(control_.get(), &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1)
      KillHelper();
  }

  // One poll over the pipes and the control socket; false on an unexpected error.
  bool PollOnce(Clock::time_point now) {
    short control_events = POLLIN | (sent_ < to_send_.size() ? POLLOUT : 0);
    pollfd fds[3] = {{stdout_.fd.get(), POLLIN, 0},
                     {stderr_.fd.get(), POLLIN, 0},
                     {control_eof_ ? -1 : control_.get(), control_events, 0}};
    auto wake = now + kCancelPoll;
    if (!helper_killed_) wake = std::min(wake, backstop_);
    if (drain_deadline_) wake = std::min(wake, *drain_deadline_);
    auto timeout = std::chrono::ceil<milliseconds>(wake - now).count();
    if (::poll(fds, 3, static_cast<int>(std::max<int64_t>(0, timeout))) < 0) return errno == EINTR;
    if (fds[0].revents) stdout_.Read();
    if (fds[1].revents) stderr_.Read();
    if (fds[2].revents & POLLOUT) {
      ssize_t n = ::send(control_.get(), to_send_.data() + sent_, to_send_.size() - sent_,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) sent_ += n;
      if (n < 0 && errno != EAGAIN && errno != EINTR) sent_ = to_send_.size();  // helper gone
    }
    if (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) {
      char chunk[4096];
      ssize_t n = ::recv(control_.get(), chunk, sizeof chunk, MSG_DONTWAIT);
      if (n > 0) received_.append(chunk, n);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) control_eof_ = true;
    }
    return true;
  }

  // The helper died without a word: killed by the backstop or for an unanswered
  // cancel, or it crashed. Its init died with it (PDEATHSIG); its cgroup is ours to clean.
  Result<Outcome> NoReport(const Options& options, Outcome outcome) {
    if (!options.cgroup_root.empty()) {
      cgroup::Settings settings{options.cgroup_root, options.cgroup_parent};
      if (auto group = cgroup::Group::Open(settings, "sbx-" + std::to_string(helper_)))
        group->Remove();
    }
    if (cancel_sent_) {
      outcome.cancelled = true;
      outcome.term_signal = SIGKILL;
      return outcome;
    }
    std::string why = helper_killed_ ? "did not finish by the wall limit + 2 s and was killed"
                      : WIFSIGNALED(helper_status_)
                          ? "died of signal " + std::to_string(WTERMSIG(helper_status_))
                          : "exited with status " + std::to_string(WEXITSTATUS(helper_status_));
    return Fail(kSandboxError, "the sandbox helper " + why + " without a report");
  }

  const std::atomic<bool>* cancel_;
  const Clock::time_point start_ = Clock::now();
  const Clock::time_point backstop_;
  Capture stdout_, stderr_;
  Fd control_;
  pid_t helper_ = -1;
  int helper_status_ = 0;
  int64_t cpu_ms_ = 0;
  std::string to_send_, received_;
  size_t sent_ = 0;
  bool control_eof_ = false, helper_killed_ = false, cancel_sent_ = false, reaped_ = false;
  std::optional<Clock::time_point> cancel_deadline_, drain_deadline_;
};

}  // namespace

Sandbox::Sandbox(Options options) : options_(std::move(options)) {}

std::string Sandbox::cgroup_mode() const {
  if (options_.cgroup_root.empty()) return "none";
  return cgroup::ModeName(cgroup::DetectMode({options_.cgroup_root, options_.cgroup_parent}));
}

Result<Outcome> Sandbox::Run(const Request& request, const std::atomic<bool>* cancel) {
  if (Status valid = Validate(request); !valid) return std::unexpected(valid.error());
  if (options_.host_id_if_root == 0)
    return Fail(codes::kInvalidArgument, "the sandbox's root must not map to the host's root");
  const Result<std::string>& seccomp = SeccompProgram();
  if (!seccomp) return std::unexpected(seccomp.error());
  HelperSession session(request, cancel);
  std::string frame = wire::Frame(
      wire::EncodeRequest({request, ::getpid(), options_.cgroup_root, options_.cgroup_parent,
                           *seccomp, options_.host_id_if_root}));
  if (Status started = session.Start(options_.helper_path, std::move(frame)); !started)
    return std::unexpected(started.error());
  session.Pump();
  return session.Finish(request, options_);
}

std::string DefaultHelperPath() {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "runlog-sandbox";
  return (self.parent_path() / "runlog-sandbox").string();
}

}  // namespace runlog::sandbox
