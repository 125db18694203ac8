#include "projections/projector.h"

#include <future>

namespace runlog::projections {

namespace {
// How long one read of the catch-up may wait for records it knows are there.
constexpr std::chrono::milliseconds kCatchUpWait{500};
}  // namespace

Projector::Projector(events::EventLog& log, Views& views, Views::Observer observer)
    : log_(log),
      views_(views),
      observer_(std::move(observer)),
      next_(log.partition_count(), kUnknown),
      applied_(log.partition_count(), 0) {}

Projector::~Projector() { Stop(); }

Status Projector::Resume(uint32_t p) {
  if (next_[p] != kUnknown) return {};
  auto next = views_.NextOffset(p);
  if (!next) return std::unexpected(next.error());
  next_[p] = *next;
  std::lock_guard lock(mu_);
  applied_[p] = *next;
  return {};
}

Result<size_t> Projector::Step(uint32_t p, std::chrono::milliseconds wait) {
  if (auto s = Resume(p); !s) return std::unexpected(s.error());
  auto records = log_.Tail(p, next_[p], 2048, wait);
  if (!records) return std::unexpected(records.error());
  if (auto s = views_.Apply(p, *records, observer_); !s) return std::unexpected(s.error());
  if (on_record_) {
    for (const events::LogRecord& r : *records) on_record_(r);
  }
  if (!records->empty()) next_[p] = records->back().offset + 1;
  {
    std::lock_guard lock(mu_);
    applied_[p] = next_[p];
  }
  AnswerWaiters();
  return records->size();
}

Status Projector::CatchUp(const events::ReadWatch& watch) {
  events::ReadProgress progress(watch, "catching up");
  for (uint32_t p = 0; p < log_.partition_count(); ++p) {
    auto end = log_.EndOffset(p);
    if (!end) return std::unexpected(end.error());
    if (auto s = Resume(p); !s) return s;  // so that progress starts where the views are
    while (applied(p) < *end) {
      if (auto s = progress.At(p, applied(p), *end); !s) return s;
      // Not a zero wait: on Kafka a read needs time for its fetch, and with
      // none it returns nothing, for ever.
      auto stepped = Step(p, kCatchUpWait);
      if (!stepped) return std::unexpected(stepped.error());
      // Where offsets skip (Kafka's transaction markers), the end may hold no record.
      if (*stepped == 0 && !log_.OffsetsContiguous()) break;
    }
  }
  return {};
}

void Projector::Start() {
  const uint32_t n = log_.partition_count();
  if (log_.CanWaitAny()) {
    std::vector<uint32_t> all(n);
    for (uint32_t p = 0; p < n; ++p) all[p] = p;
    threads_.emplace_back([this, all] {
      pthread_setname_np(pthread_self(), "rl-project");
      Loop(all);
    });
    return;
  }
  for (uint32_t p = 0; p < n; ++p) {
    threads_.emplace_back([this, p] {
      pthread_setname_np(pthread_self(), ("rl-project-" + std::to_string(p)).c_str());
      Loop({p});
    });
  }
}

void Projector::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_.store(true);
  }
  nudge_cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  AnswerWaiters();  // stopping: whoever still waits hears false
}

void Projector::Loop(std::vector<uint32_t> partitions) {
  const bool alone = partitions.size() == 1;
  while (!stopping_.load() && !partitions.empty()) {
    size_t applied = 0;
    // Alone, the thread waits in Tail (new records wake it at once); with
    // several partitions it looks at each and then waits on all of them.
    for (size_t i = 0; i < partitions.size();) {
      auto s = Step(partitions[i], std::chrono::milliseconds(alone ? 50 : 0));
      if (!s) {
        MarkFailed(partitions[i], s.error());
        partitions.erase(partitions.begin() + static_cast<std::ptrdiff_t>(i));
        continue;
      }
      applied += *s;
      ++i;
    }
    if (applied == 0) AnswerWaiters();  // deadlines pass while nothing arrives
    if (applied == 0 && !alone) {
      std::vector<uint64_t> from(next_.size(), UINT64_MAX);  // failed partitions: never
      for (uint32_t p : partitions) from[p] = next_[p];
      log_.WaitAny(from, std::chrono::milliseconds(50));
    }
    // A small batch means the next records are close behind: wait a moment so
    // they share one views write instead of one write (and wake-up) per sync,
    // and a task's created, claimed and completed often become one update.
    // A reader waiting for its own write (WhenApplied) ends the wait at once.
    if (applied > 0 && applied < kFullBatch) {
      std::unique_lock lock(mu_);
      const uint64_t seen = nudges_;
      nudge_cv_.wait_for(lock, kBatchWait, [&] { return nudges_ != seen || stopping_.load(); });
    }
  }
}

void Projector::MarkFailed(uint32_t p, const Error& error) {
  {
    std::lock_guard lock(mu_);
    failed_.store(true);
    if (failure_.empty()) failure_ = "partition " + std::to_string(p) + ": " + error.message;
  }
  AnswerWaiters();
}

void Projector::WhenApplied(std::vector<uint64_t> ends, std::chrono::milliseconds timeout,
                            std::function<void(bool)> done) {
  bool applied;
  {
    std::lock_guard lock(mu_);
    applied = Reached(ends);
    if (!applied && !failed_.load() && !stopping_.load()) {
      waiters_.push_back(
          {std::move(ends), std::chrono::steady_clock::now() + timeout, std::move(done)});
      ++nudges_;  // a reader is waiting: no batching pause
      nudge_cv_.notify_all();
      return;
    }
  }
  done(applied);
}

bool Projector::Reached(const std::vector<uint64_t>& ends) const {
  for (size_t p = 0; p < ends.size() && p < applied_.size(); ++p) {
    if (applied_[p] < ends[p]) return false;
  }
  return true;
}

void Projector::AnswerWaiters() {
  std::vector<std::pair<std::function<void(bool)>, bool>> answers;
  {
    std::lock_guard lock(mu_);
    if (waiters_.empty()) return;
    const auto now = std::chrono::steady_clock::now();
    const bool give_up = failed_.load() || stopping_.load();
    std::erase_if(waiters_, [&](Waiter& w) {
      const bool applied = Reached(w.ends);
      if (!applied && !give_up && now < w.deadline) return false;
      answers.emplace_back(std::move(w.done), applied);
      return true;
    });
  }
  for (auto& [done, applied] : answers) done(applied);
}

bool Projector::WaitApplied(uint32_t p, uint64_t offset, std::chrono::milliseconds timeout) {
  std::vector<uint64_t> ends(applied_.size(), 0);
  ends[p] = offset;
  std::promise<bool> applied;
  auto answer = applied.get_future();
  WhenApplied(std::move(ends), timeout, [&applied](bool ok) { applied.set_value(ok); });
  return answer.get();
}

uint64_t Projector::applied(uint32_t p) const {
  std::lock_guard lock(mu_);
  return applied_[p];
}

std::string Projector::failure() const {
  std::lock_guard lock(mu_);
  return failure_;
}

}  // namespace runlog::projections
