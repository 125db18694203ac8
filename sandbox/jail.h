#pragma once
// The inside of a sandbox: the code the helper's clone runs as PID 1 of the fresh
// user, mount, PID, IPC, UTS (and network) namespaces. Init waits for the helper
// to write its id maps and put it in the run's cgroup, builds a read-only root
// (tmpfs + read-only binds of /usr, /etc, ..., a minimal /dev, a fresh /proc and a
// private size-capped /tmp), pivots into it, then forks the program, which drops
// every capability, takes its rlimits and seccomp filter and execs. Init reaps all
// orphans; when the program exits, init reports its status and exits, and the
// kernel kills whatever else is left in the PID namespace.
//
// Status lines init (or the program child) writes on status_fd, in order:
//   "E <message>"       the sandbox could not be set up (init then exits 1)
//   "X <errno>"         execve of the program failed (the program then exits 127)
//   "S <code> <signal>" the program ended: its exit code (-1 if signalled) and signal;
//                       init then exits with the code, or 128 + the signal, as a fallback

#include <string>

#include "sandbox/sandbox.h"

namespace runlog::sandbox::jail {

// The byte the helper sends on sync_fd once init may go on.
inline constexpr char kGo = 'G';            // a pids cgroup caps the process count
inline constexpr char kGoLimitNproc = 'N';  // no pids cgroup: use RLIMIT_NPROC instead

struct InitConfig {
  const Request* request = nullptr;
  const std::string* seccomp_bpf = nullptr;  // raw struct sock_filter array
  int sync_fd = -1;                          // read: kGo or kGoLimitNproc; EOF: the helper is gone
  int status_fd = -1;                        // write: the status lines above
  int stdin_fd = -1;  // the program's stdin (fds 1 and 2 are already its stdout/stderr)
};

// Runs init in the child of the helper's clone; never returns.
[[noreturn]] void RunInit(const InitConfig& config);

}  // namespace runlog::sandbox::jail
