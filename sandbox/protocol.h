#pragma once
// The wire between Sandbox::Run (in runlogd) and the runlog-sandbox helper, on the
// helper's fd 3 (one end of a socketpair). Each side sends one framed message:
// "<payload length>\n<payload>", the payload a list of fields "<key> <length>\n<bytes>\n",
// so values may hold any bytes. After the request runlogd may send one more byte,
// meaning "cancel"; EOF from runlogd means it is gone, and the helper kills the tree.

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "infra/base/result.h"
#include "sandbox/sandbox.h"

namespace runlog::sandbox::wire {

inline constexpr int kControlFd = 3;
inline constexpr size_t kMaxFrameBytes = size_t{1} << 30;

// What the helper needs besides the program: who its parent must be (the helper
// exits if it was orphaned before it could arm PR_SET_PDEATHSIG), where cgroups go,
// and the program's seccomp filter as raw BPF (sandbox/seccomp_filter.h).
struct HelperRequest {
  Request request;
  int64_t parent_pid = 0;
  std::string cgroup_root;
  std::string cgroup_parent;
  std::string seccomp_bpf;
  int64_t host_id_if_root = 65534;
};

// What the helper found. `error` non-empty: the sandbox could not be set up.
struct Report {
  std::string error;
  int exit_code = -1;
  int term_signal = 0;
  bool timed_out = false;
  bool cancelled = false;
  bool memory_exceeded = false;
  int exec_errno = 0;  // the program could not be executed (its exit code is then 127)
  std::string cgroup_mode = "none";
  std::string cgroup_note;  // why cgroups were not (fully) used, for logs
};

std::string EncodeRequest(const HelperRequest& request);
std::optional<HelperRequest> DecodeRequest(std::string_view payload);
std::string EncodeReport(const Report& report);
std::optional<Report> DecodeReport(std::string_view payload);

std::string Frame(std::string_view payload);
// Takes one whole frame off the front of `buffer`: its payload, nullopt while it is
// still incomplete, an error when the header is malformed or too large.
Result<std::optional<std::string>> TakeFrame(std::string& buffer);

}  // namespace runlog::sandbox::wire
