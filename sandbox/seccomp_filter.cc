#include "sandbox/seccomp_filter.h"

#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox/sandbox.h"

namespace runlog::sandbox {
namespace {

// Refused with EPERM. Names unknown on this architecture (iopl on arm64) are skipped.
constexpr const char* kRefused[] = {
    // Filesystem views and namespaces.
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "setns",
    "unshare",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    // Tracing and other processes' memory.
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "process_madvise",
    // Kernel keyrings, BPF, perf, io_uring (its operations bypass seccomp).
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    // The machine itself.
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "iopl",
    "ioperm",
    "acct",
    "quotactl",
    "quotactl_fd",
    "syslog",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "open_by_handle_at",
    "name_to_handle_at",
    "lookup_dcookie",
    "nfsservctl",
    "uselib",
    "vm86",
    "vm86old",
    "_sysctl",
    "fanotify_init",
};

constexpr uint64_t kNamespaceFlags[] = {CLONE_NEWUSER,   CLONE_NEWNS,  CLONE_NEWPID,
                                        CLONE_NEWNET,    CLONE_NEWIPC, CLONE_NEWUTS,
                                        CLONE_NEWCGROUP, CLONE_NEWTIME};

bool Add(scmp_filter_ctx ctx, uint32_t action, int nr, std::string* error, const char* name,
         unsigned count = 0, const scmp_arg_cmp* args = nullptr) {
  int rc = seccomp_rule_add_array(ctx, action, nr, count, args);
  if (rc == 0) return true;
  *error = std::string("seccomp rule for ") + name + ": " + std::strerror(-rc);
  return false;
}

bool AddRules(scmp_filter_ctx ctx, std::string* error) {
  const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
  for (const char* name : kRefused) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;
    if (!Add(ctx, eperm, nr, error, name)) return false;
  }
  // clone3 passes its flags in memory a filter cannot read: make libc use clone.
  int clone3 = seccomp_syscall_resolve_name("clone3");
  if (clone3 != __NR_SCMP_ERROR && !Add(ctx, SCMP_ACT_ERRNO(ENOSYS), clone3, error, "clone3"))
    return false;
  for (uint64_t flag : kNamespaceFlags) {
    scmp_arg_cmp arg = SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag);
    if (!Add(ctx, eperm, SCMP_SYS(clone), error, "clone", 1, &arg)) return false;
  }
  // personality: refuse the flags that weaken memory protections (no ASLR, executable
  // data, a mapping at 0). Bit 31 is never a real flag; it exempts the 0xffffffff query.
  for (uint64_t flag : {uint64_t{ADDR_NO_RANDOMIZE}, uint64_t{READ_IMPLIES_EXEC},
                        uint64_t{MMAP_PAGE_ZERO}, uint64_t{ADDR_COMPAT_LAYOUT}}) {
    scmp_arg_cmp arg = SCMP_A0(SCMP_CMP_MASKED_EQ, flag | 0x80000000ULL, flag);
    if (!Add(ctx, eperm, SCMP_SYS(personality), error, "personality", 1, &arg)) return false;
  }
  return true;
}

Result<std::string> Compile() {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr) return Fail(kSandboxError, "seccomp_init failed");
  std::string error;
  // Another ABI's syscalls (x86 int 0x80, x32) would dodge a filter written for ours.
  if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) != 0)
    error = "seccomp_attr_set failed";
  if (error.empty()) AddRules(ctx, &error);
  std::string program;
  if (error.empty()) {
    int fd = ::memfd_create("runlog-seccomp", MFD_CLOEXEC);
    if (fd < 0 || seccomp_export_bpf(ctx, fd) != 0 || ::lseek(fd, 0, SEEK_SET) != 0) {
      error = "cannot export the seccomp filter";
    } else {
      char chunk[4096];
      for (ssize_t n; (n = ::read(fd, chunk, sizeof chunk)) > 0;) program.append(chunk, n);
    }
    if (fd >= 0) ::close(fd);
  }
  seccomp_release(ctx);
  if (!error.empty()) return Fail(kSandboxError, error);
  return program;
}

}  // namespace

const Result<std::string>& SeccompProgram() {
  static const Result<std::string> program = Compile();
  return program;
}

}  // namespace runlog::sandbox
