// runlog-sandbox: runs one program in fresh namespaces and reports how it ended.
// Started by Sandbox::Run with posix_spawn: fd 0 /dev/null, fds 1 and 2 the
// program's stdout and stderr pipes, fd 3 the control socket (sandbox/protocol.h).
// Single-threaded by design: it clones the namespaces' init without exec.
//
// Lifecycle: read the request; make the run's cgroup; clone init into new user,
// mount, PID, IPC, UTS (and network) namespaces; write init's id maps and put it in
// the cgroup; let it go; feed the program's stdin; at the wall-clock deadline (or
// on cancel, or if runlogd goes away) SIGKILL init, which takes the whole PID
// namespace with it; reap init (the kernel returns it only once every process of
// the namespace is gone); kill what is left in the cgroup and remove it; report.

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "sandbox/cgroup.h"
#include "sandbox/jail.h"
#include "sandbox/protocol.h"

namespace runlog::sandbox {
namespace {

using Clock = std::chrono::steady_clock;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(n);
  }
  return true;
}

bool WriteFile(const std::string& path, const std::string& text, std::string* error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  bool ok = fd >= 0 && WriteAll(fd, text);
  if (!ok) *error = Errno("write " + path);
  if (fd >= 0) ::close(fd);
  return ok;
}

// Reads the request frame. *cancelled: a byte after it (runlogd cancelled already).
std::optional<wire::HelperRequest> ReadRequest(bool* cancelled) {
  std::string buffer;
  char chunk[65536];
  while (true) {
    auto frame = wire::TakeFrame(buffer);
    if (!frame) return std::nullopt;
    if (frame->has_value()) {
      *cancelled = !buffer.empty();
      return wire::DecodeRequest(**frame);
    }
    ssize_t n = ::read(wire::kControlFd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    buffer.append(chunk, n);
  }
}

// RLIMIT_NPROC is counted per user namespace since Linux 5.14; before, it counted
// every process of the same host uid and would be unsafe as a fallback.
bool NprocCountedPerNamespace() {
  utsname u{};
  int major = 0, minor = 0;
  return ::uname(&u) == 0 && std::sscanf(u.release, "%d.%d", &major, &minor) == 2 &&
         (major > 5 || (major == 5 && minor >= 14));
}

// The sandbox's root is our own uid/gid, or when we are root an unprivileged id:
// see Options::host_id_if_root.
bool WriteIdMaps(pid_t pid, int64_t id_if_root, std::string* error) {
  std::string proc = "/proc/" + std::to_string(pid);
  int64_t uid = ::getuid() == 0 ? id_if_root : ::getuid();
  int64_t gid = ::getgid() == 0 ? id_if_root : ::getgid();
  return WriteFile(proc + "/setgroups", "deny", error) &&
         WriteFile(proc + "/uid_map", "0 " + std::to_string(uid) + " 1\n", error) &&
         WriteFile(proc + "/gid_map", "0 " + std::to_string(gid) + " 1\n", error);
}

// Watches init until it has exited: feeds stdin, enforces the deadline, takes
// cancel from runlogd. Returns what init said on its status pipe.
std::string Watch(pid_t init, int status_fd, int stdin_fd, const std::string& stdin_data,
                  Clock::time_point deadline, wire::Report& report) {
  std::string said;
  size_t fed = 0;
  bool killed = false, control_open = true;
  if (stdin_data.empty()) {
    ::close(stdin_fd);
    stdin_fd = -1;
  } else {
    ::fcntl(stdin_fd, F_SETFL, O_NONBLOCK);
  }
  auto kill_init = [&](bool& why) {
    if (killed) return;
    ::kill(init, SIGKILL);
    killed = why = true;
  };
  while (true) {
    pollfd fds[3] = {{status_fd, POLLIN, 0}, {-1, POLLIN, 0}, {-1, POLLOUT, 0}};
    if (control_open) fds[1].fd = wire::kControlFd;
    fds[2].fd = stdin_fd;
    int timeout = -1;
    if (!killed) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      timeout = static_cast<int>(std::max<int64_t>(0, left));
    }
    if (::poll(fds, 3, timeout) < 0 && errno != EINTR) {
      ::kill(init, SIGKILL);  // cannot watch it any more: end it, then reap it
      break;
    }
    if (!killed && Clock::now() >= deadline) kill_init(report.timed_out);
    if (fds[1].revents) {  // a cancel byte, or runlogd went away
      char byte;
      (void)!::read(wire::kControlFd, &byte, 1);
      control_open = false;
      kill_init(report.cancelled);
    }
    if (fds[2].revents) {
      ssize_t n = ::write(stdin_fd, stdin_data.data() + fed, stdin_data.size() - fed);
      if (n > 0) fed += n;
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || fed == stdin_data.size()) {
        ::close(stdin_fd);
        stdin_fd = -1;
      }
    }
    if (fds[0].revents) {
      char chunk[4096];
      ssize_t n = ::read(status_fd, chunk, sizeof chunk);
      if (n > 0) said.append(chunk, n);
      if (n == 0 || (n < 0 && errno != EINTR)) break;  // init has exited
    }
  }
  if (stdin_fd >= 0) ::close(stdin_fd);
  return said;
}

// Fills the report from init's status lines and its wait status.
void Interpret(const std::string& said, int wait_status, wire::Report& report) {
  std::istringstream lines(said);
  bool ended = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("E ")) {
      report.error = "sandbox setup failed: " + line.substr(2);
    } else if (line.starts_with("X ")) {
      report.exec_errno = std::atoi(line.c_str() + 2);
    } else if (line.starts_with("S ")) {
      ended = std::sscanf(line.c_str() + 2, "%d %d", &report.exit_code, &report.term_signal) == 2;
    }
  }
  if (!report.error.empty()) return;
  if (ended) {  // the program ended on its own, even if a kill raced with it
    report.timed_out = report.cancelled = false;
  } else if (report.timed_out || report.cancelled || WIFSIGNALED(wait_status)) {
    report.exit_code = -1;
    report.term_signal = WIFSIGNALED(wait_status) ? WTERMSIG(wait_status) : SIGKILL;
  } else {  // init could not write its status line; its exit status says the same
    int code = WEXITSTATUS(wait_status);
    report.exit_code = code < 128 ? code : -1;
    report.term_signal = code < 128 ? 0 : code - 128;
  }
}

// Init as the helper holds it: its pid and our ends of its three pipes.
struct Init {
  pid_t pid = -1;
  int sync_fd = -1;    // we write the go byte
  int status_fd = -1;  // we read its status lines
  int stdin_fd = -1;   // we feed the program's stdin
};

// Clones init into fresh namespaces; it waits for the go byte. Leaves this process
// holding no end of the program's stdout/stderr, so runlogd sees EOF once the tree is gone.
std::optional<Init> CloneInit(const wire::HelperRequest& hr, std::string* error) {
  // Root's supplementary groups (gid 0 among them) must not follow init in.
  if (::getuid() == 0 && ::setgroups(0, nullptr) != 0) {
    *error = Errno("setgroups");
    return std::nullopt;
  }
  int sync[2], status[2], in[2];
  if (::pipe2(sync, O_CLOEXEC) != 0 || ::pipe2(status, O_CLOEXEC) != 0 ||
      ::pipe2(in, O_CLOEXEC) != 0) {
    *error = Errno("pipe");
    return std::nullopt;
  }
  int flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS;
  if (!hr.request.limits.network) flags |= CLONE_NEWNET;
  // A fork-like raw clone, as bubblewrap does (glibc's clone() wants a separate stack).
  pid_t pid =
      static_cast<pid_t>(::syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr));
  if (pid == 0) jail::RunInit({&hr.request, &hr.seccomp_bpf, sync[0], status[1], in[0]});
  int clone_errno = errno;
  for (int fd : {sync[0], status[1], in[0]}) ::close(fd);
  int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  ::dup2(devnull, 1);
  ::dup2(devnull, 2);
  ::close(devnull);
  if (pid < 0) {
    errno = clone_errno;
    *error = Errno("clone into new namespaces (are user namespaces allowed here?)");
    for (int fd : {sync[1], status[0], in[1]}) ::close(fd);
    return std::nullopt;
  }
  return Init{pid, sync[1], status[0], in[1]};
}

wire::Report Supervise(const wire::HelperRequest& hr) {
  wire::Report report;
  const Limits& limits = hr.request.limits;
  std::unique_ptr<cgroup::Group> group;
  if (!hr.cgroup_root.empty()) {
    cgroup::Settings settings{hr.cgroup_root, hr.cgroup_parent, limits.memory_bytes,
                              limits.max_processes};
    group =
        cgroup::Group::Create(settings, "sbx-" + std::to_string(::getpid()), &report.cgroup_note);
  }
  std::string error;
  std::optional<Init> init = CloneInit(hr, &error);
  if (!init || !WriteIdMaps(init->pid, hr.host_id_if_root, &error)) {
    report.error = "sandbox setup failed: " + error;
    if (init) {
      ::kill(init->pid, SIGKILL);
      ::waitpid(init->pid, nullptr, 0);
    }
    return report;
  }
  if (group && !group->Join(init->pid, &report.cgroup_note)) group.reset();
  report.cgroup_mode = group ? cgroup::ModeName(group->mode()) : "none";
  bool nproc = !(group && group->limits_processes()) && NprocCountedPerNamespace();
  char go = nproc ? jail::kGoLimitNproc : jail::kGo;
  auto deadline = Clock::now() + limits.wall;
  (void)!::write(init->sync_fd, &go, 1);
  ::close(init->sync_fd);

  std::string said =
      Watch(init->pid, init->status_fd, init->stdin_fd, hr.request.stdin_data, deadline, report);
  ::close(init->status_fd);
  int wait_status = 0;
  while (::waitpid(init->pid, &wait_status, 0) < 0 && errno == EINTR) {
  }
  Interpret(said, wait_status, report);
  if (group) {
    report.memory_exceeded = group->MemoryExceeded();
    group->Remove();
  }
  return report;
}

}  // namespace
}  // namespace runlog::sandbox

int main() {
  using namespace runlog::sandbox;
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ::signal(SIGPIPE, SIG_IGN);
  ::close_range(wire::kControlFd + 1, ~0U, 0);
  bool cancelled = false;
  std::optional<wire::HelperRequest> request = ReadRequest(&cancelled);
  if (!request) return 2;  // runlogd reports a helper that ended without a report
  if (::getppid() != request->parent_pid) return 3;  // orphaned before PDEATHSIG was armed
  wire::Report report;
  if (cancelled) {
    report.cancelled = true;
  } else {
    report = Supervise(*request);
  }
  return WriteAll(wire::kControlFd, wire::Frame(wire::EncodeReport(report))) ? 0 : 4;
}
