#pragma once
// Projector: keeps the views caught up with the log, tailing each partition
// from the views' stored offset: one thread for all partitions where the log
// can wait on all of them at once (embedded), else one thread per partition.
// Exposes how far each partition is applied, so readers can wait for their
// own writes (read-your-writes).
//
// Lifecycle: CatchUp() before serving (applies everything already in the log),
// Start(), Stop(). A record the views refuse stops that partition's projection
// and marks the projector failed (readyz turns false); it is never skipped.
// Thread contract: all public methods are thread-safe.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "events/event_log.h"
#include "events/read_watch.h"
#include "projections/views.h"

namespace runlog::projections {

class Projector {
 public:
  Projector(events::EventLog& log, Views& views, Views::Observer observer = nullptr);
  ~Projector();

  // Applies what the log holds now, partition by partition; stops with
  // CANCELLED once `watch` says so.
  [[nodiscard]] Status CatchUp(const events::ReadWatch& watch = {});
  void Start();
  void Stop();
  // Called with every record once the views applied it, on the projecting
  // thread; set before CatchUp. Must be quick.
  void SetRecordListener(std::function<void(const events::LogRecord&)> listener) {
    on_record_ = std::move(listener);
  }

  // True once `partition` is applied up to `offset` (exclusive), waiting up to
  // `timeout`: WhenApplied, blocking. Never call it from a projector thread.
  bool WaitApplied(uint32_t partition, uint64_t offset, std::chrono::milliseconds timeout);
  // Calls `done(true)` once every partition p is applied up to `ends[p]`
  // (exclusive), or `done(false)` after `timeout`, if the projector fails, or
  // when it stops. Never blocks: `done` runs at once on the caller's thread if
  // nothing is to wait for, else later on a projector thread.
  void WhenApplied(std::vector<uint64_t> ends, std::chrono::milliseconds timeout,
                   std::function<void(bool)> done);
  uint64_t applied(uint32_t partition) const;
  bool failed() const { return failed_.load(); }
  std::string failure() const;

 private:
  // Reads where the views of `partition` are, once, before its first step.
  [[nodiscard]] Status Resume(uint32_t partition);
  // Applies what the log has past the partition's offset; returns how many records.
  [[nodiscard]] Result<size_t> Step(uint32_t partition, std::chrono::milliseconds wait);
  void Loop(std::vector<uint32_t> partitions);
  void MarkFailed(uint32_t partition, const Error& error);
  // Answers the waiters that are applied (true), or past their deadline, or
  // all of them (false) once failed or stopping.
  void AnswerWaiters();
  // True if every partition p is applied up to ends[p] (requires mu_).
  bool Reached(const std::vector<uint64_t>& ends) const;

  events::EventLog& log_;
  Views& views_;
  const Views::Observer observer_;
  std::function<void(const events::LogRecord&)> on_record_;
  static constexpr uint64_t kUnknown = UINT64_MAX;
  std::vector<uint64_t> next_;  // per partition, owned by the thread tailing it
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> failed_{false};

  mutable std::mutex mu_;
  // Batches under kFullBatch records wait up to kBatchWait for more, so that
  // a task's next events (a claim and its completion, often its whole life)
  // share one views write: fewer task rewrites, less for RocksDB to flush and
  // compact. A reader waiting for its own write cuts the wait short by
  // bumping nudges_, so reads do not see the wait. (5 ms and 256 until
  // 2026-12-01; 20 ms and 2,048 measured claim+complete +7% and 7% less host
  // CPU per pair; 100 ms and 8,192 another +0-12%, +5% on average in seven
  // alternating rounds, docs/performance.md.)
  static constexpr std::chrono::milliseconds kBatchWait{100};
  static constexpr size_t kFullBatch = 8192;
  std::condition_variable nudge_cv_;
  uint64_t nudges_ = 0;            // guarded by mu_
  std::vector<uint64_t> applied_;  // guarded by mu_
  std::string failure_;            // guarded by mu_
  struct Waiter {
    std::vector<uint64_t> ends;
    std::chrono::steady_clock::time_point deadline;
    std::function<void(bool)> done;
  };
  std::vector<Waiter> waiters_;  // guarded by mu_
};

}  // namespace runlog::projections
