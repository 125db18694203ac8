#pragma once
// ReadyIndex: which tasks of a partition wait to be claimed, and when the
// leases of its running tasks expire. A claim takes the best ready task of
// the types it asks for: highest priority first, then the one that became
// ready first. Tasks an executor runs next wait under the empty (tenant, type).
//
// Lifecycle and thread contract: owned by one PartitionWriter and used under
// its lock, except Oldest (the published summary, any thread).

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "events/task.h"

namespace runlog::services {

class ReadyIndex {
 public:
  using TenantType = std::pair<std::string, std::string>;

  // Where a ready task waits: its tenant and type, or ("", "") for executors.
  static TenantType KeyOf(const events::Task& task);

  bool Contains(const std::string& id) const { return where_.contains(id); }
  // Adds a ready task (behind every task already ready at its priority).
  void Add(const events::Task& task);
  void Remove(const std::string& id);
  // The best ready task of `tenant` among `types` (any type if empty), or null.
  const std::string* Best(const std::string& tenant, const std::vector<std::string>& types) const;
  size_t size() const { return where_.size(); }
  // An estimate of the memory it holds, in bytes.
  int64_t MemoryBytes() const {
    // Per ready task: its entry in where_ (a hash node) and in a set (a tree
    // node), each holding the id; per lease entry, a tree node and the id.
    return static_cast<int64_t>(where_.size() * (sizeof(Where) + sizeof(Key) + 2 * 32 + 48 + 64) +
                                expiry_.size() * (32 + 32 + 48));
  }

  // Leases: remembers that `id`'s lease expires at `at_ms`. Entries made
  // stale by a later heartbeat or claim stay until due and are skipped then.
  void AddExpiry(int64_t at_ms, const std::string& id) { expiry_.emplace(at_ms, id); }
  // Removes and returns the entries due at `now_ms`, oldest first.
  std::vector<std::pair<int64_t, std::string>> TakeDue(int64_t now_ms);
  int64_t next_expiry_ms() const { return expiry_.empty() ? INT64_MAX : expiry_.begin()->first; }

  // Publishes, for each (tenant, type), when its oldest ready task became
  // ready; Oldest reads what was last published.
  void Publish();
  int64_t Oldest(const std::string& tenant, const std::vector<std::string>& types) const;

 private:
  struct Key {
    int64_t neg_priority;
    uint64_t seq;
    std::string id;
    auto operator<=>(const Key&) const = default;
  };
  struct Where {
    TenantType tenant_type;
    Key key;
    int64_t queued_at_ms;
  };
  std::map<TenantType, std::set<Key>> ready_;
  std::unordered_map<std::string, Where> where_;
  std::multimap<int64_t, std::string> expiry_;  // expires_at_ms -> task id
  uint64_t next_seq_ = 0;

  mutable std::mutex summary_mu_;
  std::map<TenantType, int64_t> summary_;  // guarded by summary_mu_
};

}  // namespace runlog::services
