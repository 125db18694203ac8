#pragma once
// EndedTasks: what a partition writer remembers of tasks that ended, once
// they leave its live state. A task created with an Idempotency-Key is kept
// whole for 25 hours, so that a repeated create is answered with it; any
// other as a stub (tenant, status, error code) for a minute, so that a late
// command is answered 409, not 404; after that the API answers late commands
// from the task view (docs/decisions/0010-ended-tasks-leave-the-writer.md).
//
// Lifecycle and thread contract: owned by one PartitionWriter, used under its lock.

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "events/task.h"

namespace runlog::services {

class EndedTasks {
 public:
  static constexpr int64_t kKeyedRetentionMs = 25LL * 3600 * 1000;
  static constexpr int64_t kStubRetentionMs = 60 * 1000;

  // Remembers the ended `task` (moved from) if it ended within its retention of `now_ms`.
  void Add(events::Task&& task, int64_t now_ms);
  // Forgets the tasks past their retention at `now_ms`; their ids go to `forgotten`.
  void ForgetOld(int64_t now_ms, std::vector<std::string>* forgotten);
  // The ended task `id` of `tenant` as a stub (id, tenant, status, error code), if remembered.
  std::optional<events::Task> Stub(const std::string& id, const std::string& tenant) const;
  // Whether `id` is remembered; `*keyed` is then its whole task if it had a key, else null.
  bool Find(const std::string& id, const events::Task** keyed) const;
  size_t size() const { return ended_.size(); }

  // An estimate of the memory it holds, in bytes.
  int64_t MemoryBytes() const;
  std::vector<std::string> Ids() const {
    std::vector<std::string> ids;
    for (const auto& [id, e] : ended_) ids.push_back(id);
    return ids;
  }
  // The remembered task `id` as a snapshot entry, or "" if it is not remembered.
  std::string Export(const std::string& id) const;
  // Remembers a task Export described, unless it is past its retention at
  // `now_ms`; INVALID_ARGUMENT if `entry` is not one.
  [[nodiscard]] Status Import(std::string_view entry, int64_t now_ms);
  // After the last Import: puts the forgetting order back in time order.
  void SortAfterImport();

 private:
  struct Ended {
    std::string tenant_id;
    events::TaskStatus status;
    std::string error_code;
    int64_t ended_at_ms;
    std::unique_ptr<const events::Task> keyed;
  };
  std::unordered_map<std::string, Ended> ended_;
  // (ended_at_ms, id) of the tasks kept with a key and as stubs, oldest first.
  std::deque<std::pair<int64_t, std::string>> keyed_order_, stub_order_;
};

}  // namespace runlog::services
