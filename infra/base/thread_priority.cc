#include "infra/base/thread_priority.h"

#include <sys/resource.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace runlog::infra {

int NiceThreadsNamed(std::initializer_list<std::string_view> prefixes, int nice) {
  int changed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream comm(entry.path() / "comm");
    std::string name;
    if (!std::getline(comm, name)) continue;
    for (std::string_view prefix : prefixes) {
      if (!name.starts_with(prefix)) continue;
      const auto tid = static_cast<id_t>(std::stol(entry.path().filename().string()));
      // On Linux a thread's nice value is its own (PRIO_PROCESS takes a thread id).
      if (::setpriority(PRIO_PROCESS, tid, nice) == 0) ++changed;
      break;
    }
  }
  return changed;
}

}  // namespace runlog::infra
