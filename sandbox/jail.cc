#include "sandbox/jail.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace runlog::sandbox::jail {
namespace {

// Fixed descriptor numbers inside init, so everything else can be closed at once.
constexpr int kSyncFd = 3;
constexpr int kStatusFd = 4;

// The new root is staged on a tmpfs mounted over /tmp; our mount namespace is
// private, so the host's /tmp is neither touched nor seen.
constexpr char kStage[] = "/tmp";

// Host directories shown read-only; the ones that are symlinks (/bin -> usr/bin
// on merged-/usr systems) are recreated as the same symlinks.
constexpr const char* kHostDirs[] = {"usr", "etc", "bin", "sbin", "lib", "lib64"};
constexpr const char* kDevices[] = {"null", "zero", "random", "urandom"};

void Say(const std::string& line) {
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(kStatusFd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= n;
  }
}

[[noreturn]] void Die(const std::string& what) {
  Say("E " + what + ": " + std::strerror(errno) + "\n");
  ::_exit(1);
}

void Check(bool ok, const std::string& what) {
  if (!ok) Die(what);
}

void SetReadOnly(const char* path, bool recursive, uint64_t extra) {
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | extra;
  Check(::mount_setattr(AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, &attr, sizeof attr) == 0,
        std::string("make ") + path + " read-only");
}

// In the staged root (the cwd): read-only binds of the host's system directories,
// or the same symlinks where they are symlinks.
void ShowHostDirs() {
  for (const char* name : kHostDirs) {
    std::string host = std::string("/") + name;
    struct stat st {};
    if (::lstat(host.c_str(), &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlink(host.c_str(), target, sizeof target - 1);
      Check(n > 0, "readlink " + host);
      target[n] = '\0';
      Check(::symlink(target, name) == 0, std::string("symlink ") + name);
    } else if (S_ISDIR(st.st_mode)) {
      Check(::mkdir(name, 0755) == 0, std::string("mkdir ") + name);
      Check(::mount(host.c_str(), name, nullptr, MS_BIND | MS_REC, nullptr) == 0, "bind " + host);
    }
  }
}

// Empty files for the device binds and the usual /dev links. Before the root goes read-only.
void MakeDevPlaceholders() {
  Check(::mkdir("dev", 0755) == 0, "mkdir dev");
  for (const char* dev : kDevices) {
    int fd = ::open(("dev/" + std::string(dev)).c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
    Check(fd >= 0, std::string("create dev/") + dev);
    ::close(fd);
  }
  const char* links[][2] = {{"/proc/self/fd", "dev/fd"},
                            {"/proc/self/fd/0", "dev/stdin"},
                            {"/proc/self/fd/1", "dev/stdout"},
                            {"/proc/self/fd/2", "dev/stderr"}};
  for (auto& link : links)
    Check(::symlink(link[0], link[1]) == 0, std::string("symlink ") + link[1]);
}

// The host's device nodes (read-only mounts; writing to a device is still allowed).
void BindDevices() {
  for (const char* dev : kDevices) {
    std::string host = std::string("/dev/") + dev, inside = std::string("dev/") + dev;
    Check(::mount(host.c_str(), inside.c_str(), nullptr, MS_BIND, nullptr) == 0, "bind " + host);
    SetReadOnly(inside.c_str(), false, 0);
  }
}

// A fresh /proc for our PID namespace, its kernel knobs read-only. Must happen
// before the old root goes: the kernel lets a user namespace mount proc only while
// an unobstructed proc is already visible in its mount namespace.
void MountProc() {
  Check(::mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0,
        "mount /proc");
  for (const char* knob : {"proc/sys", "proc/sysrq-trigger"}) {
    if (::access(knob, F_OK) != 0) continue;  // a kernel without magic SysRq
    Check(::mount(knob, knob, nullptr, MS_BIND | MS_REC, nullptr) == 0,
          std::string("bind ") + knob);
    SetReadOnly(knob, true, MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
  }
}

void BuildRoot(const Limits& limits) {
  Check(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0, "make / private");
  Check(::mount("tmpfs", kStage, "tmpfs", MS_NOSUID | MS_NODEV,
                "size=256k,nr_inodes=256,mode=0755") == 0,
        "mount the root tmpfs");
  Check(::chdir(kStage) == 0, "chdir to the new root");
  ShowHostDirs();
  MakeDevPlaceholders();
  Check(::mkdir("proc", 0755) == 0 && ::mkdir("tmp", 0755) == 0, "mkdir proc, tmp");
  // The root tmpfs and every bind under it, submounts included: read-only, nosuid, nodev.
  SetReadOnly(".", true, MOUNT_ATTR_NODEV);
  BindDevices();
  int64_t tmp_bytes = std::clamp<int64_t>(limits.file_size_bytes * 4, 1 << 20, 64LL << 20);
  std::string tmp_options = "size=" + std::to_string(tmp_bytes) + ",nr_inodes=4096,mode=1777";
  Check(::mount("tmpfs", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, tmp_options.c_str()) == 0,
        "mount /tmp");
  MountProc();
  Check(::syscall(SYS_pivot_root, ".", ".") == 0, "pivot_root");
  Check(::umount2(".", MNT_DETACH) == 0, "detach the old root");
  Check(::chdir("/tmp") == 0, "chdir /tmp");
}

// Places stdin at 0, sync at 3 and status at 4 (1 and 2 are already in place), and
// closes everything else this process inherited from the helper.
void ArrangeFds(const InitConfig& c) {
  int in = ::fcntl(c.stdin_fd, F_DUPFD_CLOEXEC, 10);
  int sync = ::fcntl(c.sync_fd, F_DUPFD_CLOEXEC, 10);
  int status = ::fcntl(c.status_fd, F_DUPFD_CLOEXEC, 10);
  if (in < 0 || sync < 0 || status < 0 || ::dup2(in, 0) != 0 ||
      ::dup3(sync, kSyncFd, O_CLOEXEC) != kSyncFd ||
      ::dup3(status, kStatusFd, O_CLOEXEC) != kStatusFd)
    ::_exit(1);  // no status channel to speak on; the helper reports "no status"
  ::close_range(kStatusFd + 1, ~0U, 0);
}

void DropCapabilities() {
  for (int cap = 0; ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; ++cap) {
    Check(::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0, "drop capability bounding set");
  }
  Check(::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == 0, "clear ambient caps");
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  Check(::syscall(SYS_capset, &header, data) == 0, "drop capabilities");
}

void SetLimit(int resource, int64_t soft, int64_t hard, const char* name) {
  rlimit limit{static_cast<rlim_t>(soft), static_cast<rlim_t>(hard)};
  Check(::setrlimit(resource, &limit) == 0, std::string("setrlimit ") + name);
}

void LoadSeccomp(const std::string& bpf) {
  size_t count = bpf.size() / sizeof(sock_filter);
  errno = EINVAL;
  Check(bpf.size() % sizeof(sock_filter) == 0 && count > 0 && count <= BPF_MAXINSNS,
        "the seccomp program is malformed");
  sock_fprog program{static_cast<unsigned short>(count),
                     reinterpret_cast<sock_filter*>(const_cast<char*>(bpf.data()))};
  Check(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "set no_new_privs");
  Check(::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) == 0,
        "load the seccomp filter");
}

[[noreturn]] void ExecProgram(const Request& request, bool limit_nproc, const std::string& bpf,
                              char* const* argv, char* const* envp) {
  ::setsid();
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::close(kSyncFd);
  DropCapabilities();
  LoadSeccomp(bpf);
  const Limits& l = request.limits;
  SetLimit(RLIMIT_CPU, l.cpu_seconds, l.cpu_seconds + 1, "RLIMIT_CPU");
  SetLimit(RLIMIT_AS, l.memory_bytes, l.memory_bytes, "RLIMIT_AS");
  SetLimit(RLIMIT_FSIZE, l.file_size_bytes, l.file_size_bytes, "RLIMIT_FSIZE");
  SetLimit(RLIMIT_NOFILE, l.open_files, l.open_files, "RLIMIT_NOFILE");
  SetLimit(RLIMIT_CORE, 0, 0, "RLIMIT_CORE");
  // Counted per user namespace, so only this sandbox's processes (init included).
  if (limit_nproc) SetLimit(RLIMIT_NPROC, l.max_processes + 1, l.max_processes + 1, "RLIMIT_NPROC");
  ::execve(argv[0], argv, envp);
  Say("X " + std::to_string(errno) + "\n");
  ::_exit(127);
}

}  // namespace

[[noreturn]] void RunInit(const InitConfig& config) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  ArrangeFds(config);
  char go = 0;
  while (::read(kSyncFd, &go, 1) < 0 && errno == EINTR) {
  }
  if (go != kGo && go != kGoLimitNproc) ::_exit(1);  // the helper is gone
  // Become the namespace's root, i.e. the mapped host id (we still carry the
  // helper's ids until now); capabilities inside the namespace are kept.
  Check(::setresgid(0, 0, 0) == 0 && ::setresuid(0, 0, 0) == 0, "become root of the namespace");
  ::sethostname("sandbox", 7);
  const Request& request = *config.request;
  BuildRoot(request.limits);

  // Everything the program child needs is prepared before the fork.
  std::vector<char*> argv;
  for (const std::string& arg : request.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  static char env_path[] = "PATH=/usr/local/bin:/usr/bin:/bin";
  static char env_home[] = "HOME=/tmp";
  static char env_tmp[] = "TMPDIR=/tmp";
  static char env_lang[] = "LANG=C.UTF-8";
  char* envp[] = {env_path, env_home, env_tmp, env_lang, nullptr};
  pid_t program = ::fork();
  Check(program >= 0, "fork the program");
  if (program == 0)
    ExecProgram(request, go == kGoLimitNproc, *config.seccomp_bpf, argv.data(), envp);
  // Init keeps no end of the program's pipes, so readers see EOF once the tree is gone.
  ::close(0);
  ::close(1);
  ::close(2);
  ::close(kSyncFd);

  // PID 1 of the namespace: reap every orphan until the program itself ends.
  int status = 0;
  while (true) {
    pid_t pid = ::waitpid(-1, &status, 0);
    if (pid == program) break;
    if (pid < 0 && errno != EINTR) Die("waitpid");
  }
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  Say("S " + std::to_string(code) + " " + std::to_string(sig) + "\n");
  // The same in the exit status, in case the line could not be written (a full
  // memory cgroup can refuse even a pipe buffer): the code, or 128 + the signal.
  ::_exit(sig != 0 ? 128 + sig : code);
}

}  // namespace runlog::sandbox::jail
