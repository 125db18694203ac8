// The real sandbox, end to end: every test starts the runlog-sandbox helper
// (SANDBOX_HELPER_PATH) and runs real programs in it, mostly python3. Tests that
// must see "the tree is gone" pass a unique marker in argv and look for it in the
// command line of every host process after Run returns.

#include "sandbox/sandbox.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#ifndef SANDBOX_HELPER_PATH
#error "SANDBOX_HELPER_PATH must name the runlog-sandbox executable"
#endif

namespace runlog::sandbox {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr char kPython[] = "/usr/bin/python3";

// A string no other process on the host has in its command line.
std::string Marker(const std::string& test) {
  return "runlog-sbx-" + test + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(Clock::now().time_since_epoch().count());
}

// Host pids whose /proc/<pid>/cmdline contains `marker`.
std::vector<pid_t> ProcessesWith(const std::string& marker) {
  std::vector<pid_t> found;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    // Plain reads: the process may exit under us (ESRCH), which is not an error here.
    int fd = ::open((entry.path() / "cmdline").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    std::string cmdline;
    char chunk[4096];
    for (ssize_t n; (n = ::read(fd, chunk, sizeof chunk)) > 0;) cmdline.append(chunk, n);
    ::close(fd);
    if (cmdline.find(marker) != std::string::npos) found.push_back(std::stoi(name));
  }
  return found;
}

bool HostCanSpawn() {
  pid_t pid;
  char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
  if (::posix_spawn(&pid, argv[0], nullptr, nullptr, argv, nullptr) != 0) return false;
  int status = 0;
  return ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

class SandboxTest : public ::testing::Test {
 protected:
  Options options_{SANDBOX_HELPER_PATH, "", "/sys/fs/cgroup"};

  Outcome Run(std::vector<std::string> argv, Limits limits = {}, std::string stdin_data = {},
              const std::atomic<bool>* cancel = nullptr) {
    Sandbox sandbox(options_);
    Result<Outcome> outcome = sandbox.Run({std::move(argv), std::move(stdin_data), limits}, cancel);
    EXPECT_TRUE(outcome.has_value()) << outcome.error().ToString();
    return outcome.value_or(Outcome{});
  }
  Outcome Python(const std::string& code, Limits limits = {}, std::vector<std::string> args = {}) {
    std::vector<std::string> argv = {kPython, "-c", code};
    argv.insert(argv.end(), args.begin(), args.end());
    return Run(std::move(argv), limits);
  }
};

TEST_F(SandboxTest, PythonPrintsTwo) {
  Outcome o = Python("print(1+1)");
  EXPECT_EQ(o.stdout_data, "2\n");
  EXPECT_EQ(o.stderr_data, "");
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_EQ(o.term_signal, 0);
  EXPECT_FALSE(o.timed_out);
  EXPECT_FALSE(o.stdout_truncated);
}

TEST_F(SandboxTest, ExitCodeStdinAndStderrComeThrough) {
  std::string input(1 << 20, 'a');  // more than a pipe holds
  Outcome o = Run({kPython, "-c",
                   "import sys; d = sys.stdin.read(); print(len(d)); "
                   "sys.stderr.write('err\\n'); sys.exit(3)"},
                  {}, input);
  EXPECT_EQ(o.stdout_data, "1048576\n");
  EXPECT_EQ(o.stderr_data, "err\n");
  EXPECT_EQ(o.exit_code, 3);
}

TEST_F(SandboxTest, MissingProgramExits127) {
  Outcome o = Run({"/usr/bin/no-such-program"});
  EXPECT_EQ(o.exit_code, 127);
  EXPECT_NE(o.stderr_data.find("No such file or directory"), std::string::npos) << o.stderr_data;
}

TEST_F(SandboxTest, BadRequestsAndMissingHelperAreErrors) {
  Sandbox sandbox(options_);
  Result<Outcome> relative = sandbox.Run({{"python3"}, "", {}});
  ASSERT_FALSE(relative.has_value());
  EXPECT_EQ(relative.error().code, codes::kInvalidArgument);

  Sandbox broken({"/nonexistent/runlog-sandbox"});
  Result<Outcome> missing = broken.Run({{kPython, "-c", "pass"}, "", {}});
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, kSandboxError);
  EXPECT_NE(missing.error().message.find("/nonexistent/runlog-sandbox"), std::string::npos);
}

// A host listener on 127.0.0.1, port 0; returns its fd and port.
std::pair<int, std::string> LoopbackListener() {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  EXPECT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::listen(listener, 4), 0);
  EXPECT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  return {listener, std::to_string(ntohs(addr.sin_port))};
}

TEST_F(SandboxTest, NetworkIsUnreachable) {
  auto [listener, port] = LoopbackListener();  // on the host: the sandbox must not reach it

  Outcome o = Python(R"(
import fcntl, socket, struct, sys
def connect(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect((host, port))
        return 'connected'
    except OSError as e:
        return 'failed'
print('public', connect('1.1.1.1', 53))
print('loopback', connect('127.0.0.1', int(sys.argv[1])))
print('interfaces', ','.join(name for _, name in socket.if_nameindex()))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack('16sH', fcntl.ioctl(s.fileno(), 0x8913, struct.pack('16sH', b'lo', 0)))[1]
print('lo_up', bool(flags & 1))
)",
                     {}, {port});
  ::close(listener);
  EXPECT_EQ(o.stdout_data, "public failed\nloopback failed\ninterfaces lo\nlo_up False\n")
      << o.stderr_data;
  EXPECT_LT(o.wall_ms, 3000);  // refused at once, not after a timeout
}

TEST_F(SandboxTest, NetworkTrueKeepsTheHostNetwork) {
  auto [listener, port] = LoopbackListener();
  Limits limits;
  limits.network = true;
  Outcome o = Python(
      "import socket, sys\nsocket.create_connection(('127.0.0.1', int(sys.argv[1])), 2)\n"
      "print('connected')",
      limits, {port});
  ::close(listener);
  EXPECT_EQ(o.stdout_data, "connected\n") << o.stderr_data;
}

TEST_F(SandboxTest, HostFilesystemIsNotWritableEvenAsRoot) {
  // Meant to run as root (the interesting case); as another user it checks the same.
  std::string name = Marker("write");
  std::vector<std::string> paths = {"/etc/" + name,     "/usr/" + name, "/" + name,
                                    "/usr/lib/" + name, "/dev/" + name, "/proc/" + name};
  std::string code = R"(
import os, sys
for path in sys.argv[1:]:
    try:
        with open(path, 'w') as f:
            f.write('x')
        print('wrote', path)
    except OSError as e:
        print('refused', path)
for path in ['/etc/passwd', '/usr/bin/python3']:
    try:
        os.chmod(path, 0o777)
        print('chmod', path)
    except OSError:
        print('refused chmod')
print('uid', os.getuid())
with open('/tmp/' + os.path.basename(sys.argv[1]), 'w') as f:
    f.write('fine')
print('tmp ok')
)";
  Outcome o = Python(code, {}, paths);
  for (const std::string& path : paths) {
    EXPECT_NE(o.stdout_data.find("refused " + path + "\n"), std::string::npos) << o.stdout_data;
    EXPECT_FALSE(std::filesystem::exists(path)) << path;
    std::filesystem::remove(path);  // never leave a mess, even on failure
  }
  EXPECT_EQ(o.stdout_data.find("chmod /"), std::string::npos) << o.stdout_data;
  EXPECT_NE(o.stdout_data.find("uid 0\ntmp ok\n"), std::string::npos) << o.stdout_data;
  EXPECT_FALSE(std::filesystem::exists("/tmp/" + name));  // its /tmp is not the host's
  EXPECT_EQ(o.exit_code, 0) << o.stderr_data;
}

TEST_F(SandboxTest, RootOwnedFilesAndKernelKnobsAreOutOfReach) {
  // Opened, never written: a failure of this test must not change the host.
  Outcome o = Python(R"(
import os
for path, mode in [('/etc/shadow', 'r'), ('/proc/sys/kernel/core_pattern', 'w'),
                   ('/proc/sys/vm/drop_caches', 'w'), ('/proc/sysrq-trigger', 'w')]:
    try:
        open(path, mode).close()
        print('opened', path)
    except OSError:
        print('refused', path)
print('groups', os.getgroups())
)");
  EXPECT_EQ(o.stdout_data,
            "refused /etc/shadow\nrefused /proc/sys/kernel/core_pattern\n"
            "refused /proc/sys/vm/drop_caches\nrefused /proc/sysrq-trigger\ngroups []\n")
      << o.stderr_data;
}

TEST_F(SandboxTest, TmpIsFreshForEveryRun) {
  std::string name = Marker("tmp");
  Outcome first = Python("open('/tmp/" + name + "', 'w').write('x'); print('written')");
  EXPECT_EQ(first.stdout_data, "written\n") << first.stderr_data;
  Outcome second =
      Python("import os; print(os.path.exists('/tmp/" + name + "'), os.listdir('/tmp'))");
  EXPECT_EQ(second.stdout_data, "False []\n") << second.stderr_data;
}

TEST_F(SandboxTest, PythonForkBombIsContained) {
  std::string marker = Marker("forkbomb");
  Limits limits;
  limits.wall = milliseconds(1500);
  Outcome o = Python(R"(
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
)",
                     limits, {marker});
  EXPECT_TRUE(o.timed_out);
  EXPECT_LT(o.wall_ms, 3500);
  EXPECT_TRUE(ProcessesWith(marker).empty());
  EXPECT_TRUE(HostCanSpawn());
}

TEST_F(SandboxTest, ShellForkBombIsContained) {
  std::string marker = Marker("shellbomb");
  Limits limits;
  limits.wall = milliseconds(1500);
  Outcome o = Run({"/bin/bash", "-c", ":(){ :|:& };:; sleep 100", marker}, limits);
  EXPECT_LT(o.wall_ms, 3500);
  EXPECT_TRUE(ProcessesWith(marker).empty());
  EXPECT_TRUE(HostCanSpawn());
}

TEST_F(SandboxTest, ForkBombIsContainedWithoutCgroups) {
  options_.cgroup_root = "";  // rlimits only: RLIMIT_NPROC in the run's user namespace
  std::string marker = Marker("nocgroup");
  Limits limits;
  limits.wall = milliseconds(1500);
  Outcome o = Python("import os\nwhile True:\n  try: os.fork()\n  except OSError: pass\n", limits,
                     {marker});
  EXPECT_EQ(o.cgroup_mode, "none");
  EXPECT_TRUE(o.timed_out);
  EXPECT_LT(o.wall_ms, 3500);
  EXPECT_TRUE(ProcessesWith(marker).empty());
  EXPECT_TRUE(HostCanSpawn());
}

TEST_F(SandboxTest, MemoryBombFails) {
  Outcome o = Python("b = bytearray(2 << 30)\nprint('allocated')");
  EXPECT_EQ(o.stdout_data, "");
  EXPECT_NE(o.exit_code, 0);
  EXPECT_TRUE(o.stderr_data.find("MemoryError") != std::string::npos || o.term_signal != 0)
      << o.stderr_data;

  Outcome growing = Python("chunks = []\nwhile True:\n  chunks.append(bytearray(16 << 20))");
  EXPECT_NE(growing.exit_code, 0);
  EXPECT_TRUE(growing.stderr_data.find("MemoryError") != std::string::npos ||
              growing.term_signal != 0)
      << growing.stderr_data;
}

TEST_F(SandboxTest, MemoryCgroupCatchesWhatRlimitsCannot) {
  if (Sandbox(options_).cgroup_mode() == "none") GTEST_SKIP() << "no cgroups here";
  // tmpfs pages count against the memory cgroup but not against RLIMIT_AS.
  Limits limits;
  limits.memory_bytes = 40LL << 20;
  Outcome o = Python(R"(
chunk = b'x' * (1 << 20)
for i in range(4):
    with open('/tmp/f%d' % i, 'wb') as f:
        for _ in range(14):
            f.write(chunk)
print('done')
)",
                     limits);
  if (o.cgroup_mode == "v2" && !o.memory_exceeded)
    GTEST_SKIP() << "memory controller not delegated";
  EXPECT_TRUE(o.memory_exceeded);
  EXPECT_EQ(o.stdout_data, "");
  EXPECT_NE(o.exit_code, 0);
}

TEST_F(SandboxTest, CpuSpinIsKilledAtTheWallDeadline) {
  Limits limits;
  limits.wall = milliseconds(1000);
  Outcome o = Python("while True: pass", limits);
  EXPECT_TRUE(o.timed_out);
  EXPECT_EQ(o.exit_code, -1);
  EXPECT_EQ(o.term_signal, SIGKILL);
  EXPECT_GE(o.wall_ms, 1000);
  EXPECT_LE(o.wall_ms, 3000);
}

TEST_F(SandboxTest, CpuLimitKillsASpin) {
  Limits limits;
  limits.cpu_seconds = 1;
  limits.wall = milliseconds(5000);
  Outcome o = Python("while True: pass", limits);
  EXPECT_FALSE(o.timed_out);
  EXPECT_TRUE(o.term_signal == SIGXCPU || o.term_signal == SIGKILL) << o.term_signal;
  EXPECT_LT(o.wall_ms, 4000);
}

TEST_F(SandboxTest, OutputFloodIsCapped) {
  Limits limits;
  Outcome o = Python(
      "import sys\nsys.stdout.write('x' * 10_000_000)\nsys.stderr.write('y' * 10_000_000)", limits);
  EXPECT_EQ(o.stdout_data.size(), limits.output_bytes);
  EXPECT_EQ(o.stderr_data.size(), limits.output_bytes);
  EXPECT_TRUE(o.stdout_truncated);
  EXPECT_TRUE(o.stderr_truncated);
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_LT(o.wall_ms, 3000);
}

TEST_F(SandboxTest, GrandchildIgnoringSigtermIsKilledAtTheDeadline) {
  std::string marker = Marker("grandchild");
  Limits limits;
  limits.wall = milliseconds(1000);
  Outcome o = Python(R"(
import os, signal, time
if os.fork() == 0:
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            time.sleep(1000)
        os._exit(0)
    os._exit(0)
time.sleep(1000)
)",
                     limits, {marker});
  EXPECT_TRUE(o.timed_out);
  EXPECT_GE(o.wall_ms, 1000);
  EXPECT_LT(o.wall_ms, 2000);
  EXPECT_TRUE(ProcessesWith(marker).empty());
}

TEST_F(SandboxTest, DaemonLeftBehindDoesNotHoldTheRun) {
  std::string marker = Marker("daemon");
  Outcome o = Python(R"(
import os, signal, subprocess, sys, time
for _ in range(3):
    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(1000)', sys.argv[1]])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(1000)  # still holding stdout and stderr
    os._exit(0)
os.wait()
print('parent done')
)",
                     {}, {marker});
  EXPECT_EQ(o.stdout_data, "parent done\n") << o.stderr_data;
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_FALSE(o.timed_out);
  EXPECT_LT(o.wall_ms, 2000);
  EXPECT_TRUE(ProcessesWith(marker).empty());
}

TEST_F(SandboxTest, CancelKillsWithinOneSecond) {
  std::atomic<bool> cancel{false};
  Clock::time_point cancelled_at;
  std::thread canceller([&] {
    std::this_thread::sleep_for(milliseconds(300));
    cancelled_at = Clock::now();
    cancel = true;
  });
  Limits limits;
  limits.wall = milliseconds(30'000);
  Outcome o = Run({"/bin/sleep", "30"}, limits, "", &cancel);
  auto returned = Clock::now();
  canceller.join();
  EXPECT_TRUE(o.cancelled);
  EXPECT_FALSE(o.timed_out);
  EXPECT_EQ(o.exit_code, -1);
  EXPECT_LT(returned - cancelled_at, milliseconds(1000));
}

TEST_F(SandboxTest, PtraceMountUnshareAndNewNamespacesAreRefused) {
  Outcome o = Python(R"(
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def show(name, rc):
    print(name, rc, os.strerror(ctypes.get_errno()) if rc == -1 else '')
show('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))
show('umount', libc.umount2(b'/proc', 2))
show('unshare', libc.unshare(0x10000000))
show('ptrace', libc.ptrace(0, 0, None, None))
show('chroot', libc.chroot(b'/tmp'))
# clone(CLONE_NEWUSER | SIGCHLD): refused before it could fork
print('clone', libc.syscall(56, 0x10000000 | 17, None, None, None, None))
print('caps', [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0])
)");
  EXPECT_EQ(o.stdout_data,
            "mount -1 Operation not permitted\n"
            "umount -1 Operation not permitted\n"
            "unshare -1 Operation not permitted\n"
            "ptrace -1 Operation not permitted\n"
            "chroot -1 Operation not permitted\n"
            "clone -1\n"
            "caps 0000000000000000\n")
      << o.stderr_data;
}

TEST_F(SandboxTest, CgroupsAreUsedAndRemoved) {
  Sandbox sandbox(options_);
  std::string mode = sandbox.cgroup_mode();
  ASSERT_TRUE(mode == "v1" || mode == "v2" || mode == "none") << mode;
  Outcome o = Python("print(open('/proc/self/cgroup').read())");
  EXPECT_EQ(o.cgroup_mode, mode);
  if (mode == "none") return;
  // The program saw itself in a per-run group, which is gone now.
  size_t at = o.stdout_data.find("/runlog/sbx-");
  ASSERT_NE(at, std::string::npos) << o.stdout_data;
  std::string group = o.stdout_data.substr(at + 8, o.stdout_data.find('\n', at) - at - 8);
  std::vector<std::string> bases = {"/sys/fs/cgroup"};
  if (mode == "v1") bases = {"/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"};
  // Other tests' runs make and remove cgroups meanwhile: a walk that loses a
  // directory under it is walked again (at most 5 times).
  for (const std::string& base : bases) {
    bool walked = false;
    for (int attempt = 0; attempt < 5 && !walked; ++attempt) {
      std::error_code ec;
      std::filesystem::recursive_directory_iterator it(base, ec), end;
      for (; !ec && it != end; it.increment(ec)) {
        EXPECT_NE(it->path().filename().string(), group) << it->path();
      }
      walked = !ec;
    }
    EXPECT_TRUE(walked) << base;
  }
}

TEST_F(SandboxTest, CgroupV2OnTheUnifiedHierarchy) {
  const std::string unified = "/sys/fs/cgroup/unified";
  struct statfs st {};
  if (::statfs(unified.c_str(), &st) != 0 || st.f_type != CGROUP2_SUPER_MAGIC)
    GTEST_SKIP() << "no cgroup2 mount at " << unified;
  options_.cgroup_root = unified;
  if (Sandbox(options_).cgroup_mode() == "none") GTEST_SKIP() << unified << " is not writable";
  ASSERT_EQ(Sandbox(options_).cgroup_mode(), "v2");
  std::string marker = Marker("v2");
  Outcome o = Python(
      "import subprocess\nsubprocess.Popen(['/bin/sleep', '100'])\n"
      "print([l for l in open('/proc/self/cgroup') if l.startswith('0::')][0].strip())",
      {}, {marker});
  EXPECT_EQ(o.cgroup_mode, "v2");
  size_t at = o.stdout_data.find("/runlog/sbx-");
  ASSERT_NE(at, std::string::npos) << o.stdout_data << o.stderr_data;
  std::string group = o.stdout_data.substr(at, o.stdout_data.find('\n', at) - at);
  EXPECT_FALSE(std::filesystem::exists(unified + group)) << group;  // removed after the run
  EXPECT_TRUE(ProcessesWith(marker).empty());
}

}  // namespace
}  // namespace runlog::sandbox
