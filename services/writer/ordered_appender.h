#pragma once
// OrderedAppender: a partition writer's way to the log. It hands each batch
// of decided events to the log, and gives the answers of the commands that
// decided them only once that batch and every batch before it are durable,
// in the order they were decided: no client ever sees a state the log might
// not keep. A command that appended nothing (a refusal, an empty claim)
// still waits for the batches before it, since its answer saw their state.
//
// A failed append latches it at once: failed() turns true, the batches
// decided before it answer as they went, and it and every answer after it
// say WRITER_FAILED (the outcome of that append is unknown; runlogd must
// restart, and recovery rebuilds the state from the log).
//
// Lifecycle: Add under the writer's lock; Stop() waits until every answer is
// given. Thread contract: Add is called under the writer's lock, which orders
// the appends; completions arrive on log threads, or through Refused on the
// writer's caller after it released its lock. One thread at a time delivers
// answers, in order; callbacks run on it, never under the writer's lock.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "events/event_log.h"
#include "services/commands.h"

namespace runlog::services {

class OrderedAppender {
 public:
  struct Answer {
    CommandCallback done;
    Result<CommandResult> result;
  };
  // How many tasks became ready, by (tenant, type).
  using ReadyCounts = std::map<std::pair<std::string, std::string>, int>;
  struct Options {
    uint32_t partition = 0;
    events::EventLog* log = nullptr;
    std::function<void(double seconds)> on_append_latency;  // optional
    // Called (on the delivering thread, must be quick) once tasks that
    // became ready are durable.
    std::function<void(const ReadyCounts&)> on_ready;
  };
  // An append the log refused at once: pass it to Refused() once the
  // writer's lock is released.
  struct Refusal {
    uint64_t seq;
    Error error;
  };

  explicit OrderedAppender(Options options) : options_(std::move(options)) {}

  // Appends `events` (may be empty) with the answers to give once they are
  // durable. Answers that can go at once are moved to `now`, for the caller
  // to deliver after it releases its lock.
  [[nodiscard]] std::optional<Refusal> Add(std::span<const events::Event> events,
                                           std::vector<Answer> answers, ReadyCounts made_ready,
                                           std::vector<Answer>& now);
  void Refused(Refusal refusal) { Completed(refusal.seq, std::unexpected(refusal.error)); }
  // Waits until every answer is given.
  void Stop();

  static void Deliver(std::vector<Answer>& answers);
  // One past the last offset acknowledged to clients.
  uint64_t acked_end() const { return acked_end_.load(); }
  void set_acked_end(uint64_t end) { acked_end_.store(end); }
  bool failed() const { return first_failed_.load() != UINT64_MAX; }

 private:
  struct Pending {
    std::vector<Answer> answers;
    bool has_append = false;
    ReadyCounts made_ready;
    std::chrono::steady_clock::time_point appended_at{};
    std::optional<Result<std::vector<uint64_t>>> outcome;
    bool ready() const { return !has_append || outcome.has_value(); }
  };
  void Completed(uint64_t seq, Result<std::vector<uint64_t>> result);
  // Records that batch `seq` failed (the earliest such batch counts).
  void MarkFailed(uint64_t seq);
  void Give(Pending& p, uint64_t seq);

  const Options options_;
  std::mutex mu_;
  std::condition_variable idle_cv_;
  std::deque<Pending> pending_;  // guarded by mu_
  uint64_t front_seq_ = 0;       // guarded by mu_: the seq of pending_.front()
  bool delivering_ = false;      // guarded by mu_: a thread gives answers now
  std::atomic<uint64_t> acked_end_{0};
  std::atomic<uint64_t> first_failed_{UINT64_MAX};  // seq of the first failed append
};

}  // namespace runlog::services
