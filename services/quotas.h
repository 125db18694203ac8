#pragma once
// Quotas: the counts an account's plan limits (services/account_plans.h),
// kept exact across partitions. The partition writers check and count as
// they decide (a create against tasks a month, a worker's claim against
// claims an hour and workers), under this object's lock, so two writers
// cannot both take the last unit. What each writer counted is in its
// checkpoint and its log, so the counts survive a restart.
//
// Windows are calendar months and clock hours, UTC. Only the current window
// of each count is kept.
//
// Thread contract: thread-safe (one mutex).

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

namespace runlog::services {

class Quotas {
 public:
  // kCostPerMonth counts nanodollars (events::Usage::cost_nanos), against a monthly budget.
  enum Counter { kTasksPerMonth = 0, kClaimsPerHour = 1, kCostPerMonth = 2 };
  static constexpr size_t kCounters = 3;
  // The window [start, end) in Unix ms that `at_ms` falls in.
  static std::pair<int64_t, int64_t> Window(Counter counter, int64_t at_ms);

  // Counts one for `tenant` at `at_ms` unless that reaches past `limit`
  // (0: unlimited); false, counting nothing, at the limit.
  bool TryCount(const std::string& tenant, Counter counter, int64_t at_ms, int64_t limit);
  void Uncount(const std::string& tenant, Counter counter, int64_t at_ms);
  // Adds `n` counted in the window starting at `window_start` (recovery).
  void Add(const std::string& tenant, Counter counter, int64_t window_start, int64_t n);
  int64_t Count(const std::string& tenant, Counter counter, int64_t at_ms) const;

  // A lease taken by `worker` of `tenant`: false (nothing held) if the
  // worker holds no lease yet and `limit` (0: unlimited) workers already do.
  bool TryHold(const std::string& tenant, const std::string& worker, int64_t limit);
  void Hold(const std::string& tenant, const std::string& worker) {
    (void)TryHold(tenant, worker, 0);
  }
  void Release(const std::string& tenant, const std::string& worker);
  int64_t WorkersInUse(const std::string& tenant) const;

  // Runs: a claim of a task with a concurrency key, or an executor's claim
  // (a task running on runlog's executors), holds a run until its lease
  // ends. False (nothing held) if that would pass `key_limit` runs of the
  // tenant's `key` or `tenant_limit` executor runs of the tenant (0: none).
  bool TryRun(const std::string& tenant, bool executor, const std::string& key, int64_t key_limit,
              int64_t tenant_limit);
  void Run(const std::string& tenant, bool executor, const std::string& key) {
    (void)TryRun(tenant, executor, key, 0, 0);
  }
  void EndRun(const std::string& tenant, bool executor, const std::string& key);
  int64_t ExecutorRuns(const std::string& tenant) const;
  int64_t KeyRuns(const std::string& tenant, const std::string& key) const;

  // A count and its window, as a writer keeps and checkpoints its own.
  struct Slot {
    int64_t start = 0;
    int64_t count = 0;
  };
  using Slots = std::array<Slot, kCounters>;  // by Counter
  // Adds one at `at_ms` to `slots`; a later window replaces an earlier one.
  static void Bump(Slots& slots, Counter counter, int64_t at_ms, int64_t n = 1);

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, Slots> counts_;
  std::unordered_map<std::string, std::unordered_map<std::string, int64_t>>
      leases_;                                              // tenant → worker → leases
  std::unordered_map<std::string, int64_t> executor_runs_;  // by tenant
  std::unordered_map<std::string, int64_t> key_runs_;       // by tenant NUL key
};

}  // namespace runlog::services
