#pragma once
// One cgroup per sandbox run, so the run's memory and process count are capped and
// every process of it can be found and killed. Made under "<parent>" in each
// controller we use: v1 (memory, pids, each its own mount) or v2 (one unified tree,
// with memory and pids enabled where the kernel lets us). Everything here is best
// effort: where cgroups cannot be made (not root, read-only, controllers not
// delegated) the run goes on without them and the rlimits still apply; `note` says why.
//
// Thread contract: a Group is used by one thread (the helper is single-threaded).
// Plain file I/O only, so it is also safe in runlogd for DetectMode and RemoveByName.

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace runlog::sandbox::cgroup {

enum class Mode { kNone, kV1, kV2 };
const char* ModeName(Mode mode);

struct Settings {
  std::string root = "/sys/fs/cgroup";
  std::string parent;  // relative to each controller's mount; empty: own cgroup + "/runlog"
  int64_t memory_bytes = 0;
  int64_t max_processes = 0;
};

// Where groups can be made under `settings` (creates the parent directories).
Mode DetectMode(const Settings& settings);

class Group {
 public:
  // Makes group `name` with the limits in `settings`; nullptr when no controller
  // could be used, with the reason in *note. A partial success also fills *note.
  static std::unique_ptr<Group> Create(const Settings& settings, const std::string& name,
                                       std::string* note);
  // An existing group, for cleanup after the helper itself was killed.
  static std::unique_ptr<Group> Open(const Settings& settings, const std::string& name);
  ~Group();  // Remove()
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  Mode mode() const { return mode_; }
  bool limits_processes() const { return limits_processes_; }
  // Moves `pid` into the group (every controller's directory); false with *note.
  bool Join(pid_t pid, std::string* note);
  // True when the memory controller saw an OOM kill or the limit being hit.
  bool MemoryExceeded() const;
  // SIGKILLs everything in the group and waits (bounded) until it is empty.
  void KillAll();
  // KillAll, then removes the directories. Idempotent.
  void Remove();

 private:
  Group(Mode mode, std::vector<std::string> dirs) : mode_(mode), dirs_(std::move(dirs)) {}

  Mode mode_;
  std::vector<std::string> dirs_;  // v1: one per controller; v2: one
  std::string memory_dir_;         // the directory holding memory.* files, if any
  bool limits_processes_ = false;
  bool removed_ = false;
};

}  // namespace runlog::sandbox::cgroup
