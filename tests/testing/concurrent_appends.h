#pragma once
// Appends from many threads at once, one event per append, each to its
// aggregate's partition, and records what the log acknowledged.

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "events/event_log.h"
#include "events/partitioner.h"
#include "tests/testing/events.h"

namespace runlog::testing {

struct ConcurrentAppends {
  std::map<std::pair<uint32_t, uint64_t>, std::string> acked;  // (partition, offset) -> event id
  int duplicate_offsets = 0;  // an offset acknowledged to two appends
  int failed = 0;
  int64_t max_append_ms = 0;
  std::string first_error;
};

// `progress`, if given, counts acknowledged appends while they happen.
inline ConcurrentAppends AppendFromThreads(events::EventLog& log, int threads, int per_thread,
                                           std::atomic<int>* progress = nullptr) {
  ConcurrentAppends result;
  std::mutex mu;  // guards result
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        events::Event e = TestEvent("agg-" + std::to_string(t) + "-" + std::to_string(i), 1);
        uint32_t p = events::PartitionFor(e.aggregate_id, log.partition_count());
        auto t0 = std::chrono::steady_clock::now();
        auto r = log.Append(p, std::span(&e, 1));
        int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - t0)
                         .count();
        std::lock_guard lock(mu);
        result.max_append_ms = std::max(result.max_append_ms, ms);
        if (!r) {
          if (result.failed++ == 0) result.first_error = r.error().ToString();
          continue;
        }
        if (!result.acked.emplace(std::make_pair(p, r->front()), e.event_id).second) {
          ++result.duplicate_offsets;
        }
        if (progress != nullptr) ++*progress;
      }
    });
  }
  for (auto& w : workers) w.join();
  return result;
}

}  // namespace runlog::testing
