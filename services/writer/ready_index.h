#pragma once
// ReadyIndex: which tasks of a partition wait to be claimed, and when the
// leases of its running tasks expire. A claim takes the best ready task of
// the types it asks for: highest priority first, then the one that became
// ready first. Tasks an executor runs next wait in queues of their own, one
// per tenant (and concurrency key), so that executors can share themselves
// out among tenants (TaskService); a task with a concurrency key waits in a
// queue of that key, which a claim skips while the key is at its limit.
//
// Lifecycle and thread contract: owned by one PartitionWriter and used under
// its lock, except Front (the published summary, any thread).

#include <algorithm>
#include <cstdint>
#include <functional>
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

  // Where a ready task waits: (tenant, type) for workers, (tenant, type NUL
  // key NUL max) with a concurrency key; ("", tenant NUL key NUL max) for
  // executors (key empty and max 0 without one).
  static TenantType KeyOf(const events::Task& task);
  struct Queue {
    std::string tenant, type;  // type: empty for executors
    std::string concurrency_key;
    int64_t max_concurrency = 0;
    bool executor = false;
  };
  static Queue Parse(const TenantType& key);
  // True: the queue is not to be claimed from now (its concurrency key is at its limit).
  using Blocked = std::function<bool(const TenantType&)>;

  bool Contains(const std::string& id) const { return where_.contains(id); }
  // Adds a ready task (behind every task already ready at its priority).
  void Add(const events::Task& task) {
    Add(task.id, KeyOf(task), task.priority, task.queued_at_ms);
  }
  // The same, for a task known by its index entry alone (its body parked on disk).
  void Add(const std::string& id, const TenantType& where, int64_t priority, int64_t queued_at_ms);
  void Remove(const std::string& id);
  // The best ready task of `tenant` among `types` (any type if empty) in a
  // queue not `blocked`, or null.
  const std::string* Best(const std::string& tenant, const std::vector<std::string>& types,
                          const Blocked& blocked = {}) const;
  // The best ready task of one queue, or null.
  const std::string* BestIn(const TenantType& queue) const;
  size_t size() const { return where_.size(); }
  std::vector<std::string> Ids() const {
    std::vector<std::string> ids;
    for (const auto& [id, where] : where_) ids.push_back(id);
    return ids;
  }
  // An estimate of the memory it holds, in bytes.
  int64_t MemoryBytes() const {
    // Per ready task: a hash node holding the id and its Where (and the id's
    // heap block, a bucket), and a tree node of its Entry; per lease entry,
    // a tree node and the id.
    return static_cast<int64_t>(where_.size() *
                                    (16 + 32 + sizeof(Where) + 32 + 8 + 32 + sizeof(Entry)) +
                                (expiry_.size() + deadlines_.size()) * (32 + 32 + 48));
  }

  // Leases: remembers that `id`'s lease expires at `at_ms`. Entries made
  // stale by a later heartbeat or claim stay until due and are skipped then.
  void AddExpiry(int64_t at_ms, const std::string& id) { expiry_.emplace(at_ms, id); }
  // Removes and returns the entries due at `now_ms`, oldest first.
  std::vector<std::pair<int64_t, std::string>> TakeDue(int64_t now_ms);
  // Queue deadlines: ready task `id` fails QUEUE_TIMEOUT at `at_ms` unless
  // claimed before; Remove drops its deadline with its entry.
  void AddQueueDeadline(int64_t at_ms, const std::string& id);
  // Removes and returns the deadlines due at `now_ms`, oldest first.
  std::vector<std::pair<int64_t, std::string>> TakeDueDeadlines(int64_t now_ms);
  // The earliest lease expiry or queue deadline.
  int64_t next_expiry_ms() const {
    return std::min(expiry_.empty() ? INT64_MAX : expiry_.begin()->first,
                    deadlines_.empty() ? INT64_MAX : deadlines_.begin()->first);
  }

  // Where a queue's best task stands among other partitions' queues: its
  // priority (negated), then when it became ready. Lower is claimed first.
  using Rank = std::pair<int64_t, int64_t>;
  static constexpr Rank kNone{INT64_MAX, INT64_MAX};
  // Publishes, for each (tenant, type), the rank of its best ready task;
  // Front reads what was last published.
  void Publish();
  // The best rank among `tenant`'s queues of `types` (any type if empty), or kNone.
  Rank Front(const std::string& tenant, const std::vector<std::string>& types) const;
  // The executors' queues with ready tasks, and their ranks, as last published.
  std::vector<std::pair<TenantType, Rank>> ExecutorFronts() const;

 private:
  // A ready task in its queue: ordered by priority, then by when it was
  // added (seq is unique); `id` is the key of its where_ node (stable).
  struct Entry {
    int64_t neg_priority;
    uint64_t seq;
    const std::string* id;
    bool operator<(const Entry& o) const {
      return neg_priority != o.neg_priority ? neg_priority < o.neg_priority : seq < o.seq;
    }
  };
  using Queues = std::map<TenantType, std::set<Entry>>;
  using Timers = std::multimap<int64_t, std::string>;
  struct Where {
    Queues::iterator queue;
    int64_t neg_priority;
    uint64_t seq;
    int64_t queued_at_ms;
    Timers::iterator deadline;  // in deadlines_, or its end() if none
  };
  Queues ready_;
  std::unordered_map<std::string, Where> where_;
  std::multimap<int64_t, std::string> expiry_;  // expires_at_ms -> task id
  Timers deadlines_;                            // queue deadline -> task id
  uint64_t next_seq_ = 0;

  mutable std::mutex summary_mu_;
  std::map<TenantType, Rank> summary_;  // guarded by summary_mu_
};

}  // namespace runlog::services
