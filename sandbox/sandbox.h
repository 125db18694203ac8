#pragma once
// Runs one untrusted program in a fresh, throw-away sandbox and waits until its
// whole process tree is gone. The isolation itself (namespaces, a read-only root,
// a private /tmp, rlimits, seccomp, cgroups) is done by the single-threaded
// `runlog-sandbox` helper, which runlogd starts with posix_spawn (never a bare
// fork: runlogd is multithreaded). docs/sandbox.md says what is and is not isolated.
//
// Thread contract: a Sandbox holds only its options; Run may be called from many
// threads at once, each call blocks its thread until the run is over. Run reaps
// its own helper with waitpid(pid), so the embedding process must not reap all
// children (waitpid(-1)) nor set SIGCHLD to SIG_IGN.
//
// Errors: Run fails (code SANDBOX_ERROR) only when the sandbox could not be set up
// (helper missing, namespaces refused, a mount failed) and with INVALID_ARGUMENT
// for a malformed request. Whatever the program does, including failing to start
// (exit code 127), is an Outcome.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "infra/base/result.h"

namespace runlog::sandbox {

using codes::kSandboxError;

struct Limits {
  std::chrono::milliseconds wall{10'000};  // whole tree killed at this deadline
  int64_t cpu_seconds = 10;                // RLIMIT_CPU
  int64_t memory_bytes = 512LL << 20;      // RLIMIT_AS and the cgroup memory limit
  int64_t max_processes = 64;              // pids cgroup (RLIMIT_NPROC when no pids cgroup)
  int64_t file_size_bytes = 16LL << 20;    // RLIMIT_FSIZE
  int64_t open_files = 64;                 // RLIMIT_NOFILE
  size_t output_bytes = 64 << 10;          // cap per stream; the rest is drained and dropped
  bool network = false;                    // false: empty network namespace (a down loopback)
};

struct Request {
  std::vector<std::string> argv;  // argv[0] absolute inside the sandbox, e.g. /usr/bin/python3
  std::string stdin_data;
  Limits limits;
};

struct Outcome {
  int exit_code = -1;            // -1 if it died of a signal or never started
  int term_signal = 0;           // the signal that ended it, if any
  bool timed_out = false;        // killed at the wall-clock deadline
  bool cancelled = false;        // killed because *cancel became true
  bool memory_exceeded = false;  // the cgroup saw an OOM kill or hit its limit (best effort)
  std::string stdout_data, stderr_data;
  bool stdout_truncated = false, stderr_truncated = false;
  int64_t wall_ms = 0;
  int64_t cpu_ms = 0;       // user + system CPU time of the run's processes that were reaped
  std::string cgroup_mode;  // how this run was confined: "v1", "v2" or "none"
};

struct Options {
  std::string helper_path;  // the runlog-sandbox executable
  // Where per-run groups are made, relative to each controller's mount (v1) or to
  // the unified mount (v2). Empty: "<this process's own cgroup>/runlog".
  std::string cgroup_parent;
  std::string cgroup_root = "/sys/fs/cgroup";  // injected so tests can point elsewhere
  // When runlogd runs as root, the host uid and gid the sandbox's root is mapped to.
  // Never 0: a sandbox whose root is the host's root owns every root-owned file for
  // permission checks, including /proc/sys/kernel/core_pattern, even without capabilities.
  uint32_t host_id_if_root = 65534;  // nobody/nogroup; a dedicated unused id is better
};

class Sandbox {
 public:
  explicit Sandbox(Options options);

  // Runs one program in a fresh sandbox and waits for the whole tree to be gone.
  // `cancel` (optional) is polled at least every 100 ms; when true the tree is killed.
  [[nodiscard]] Result<Outcome> Run(const Request& request,
                                    const std::atomic<bool>* cancel = nullptr);

  // Where cgroups can be made here: "v1", "v2" or "none" (for docs/tests).
  std::string cgroup_mode() const;

 private:
  Options options_;
};

// The helper next to the running executable: /proc/self/exe's directory + "/runlog-sandbox".
std::string DefaultHelperPath();

}  // namespace runlog::sandbox
