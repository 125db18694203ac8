#include "services/writer/ordered_appender.h"

namespace runlog::services {

std::optional<OrderedAppender::Refusal> OrderedAppender::Add(std::span<const events::Event> events,
                                                             std::vector<Answer> answers,
                                                             ReadyCounts made_ready,
                                                             std::vector<Answer>& now) {
  std::unique_lock lock(mu_);
  if (events.empty()) {
    if (pending_.empty() && !delivering_) {
      now = std::move(answers);
    } else if (!answers.empty()) {
      pending_.push_back(Pending{std::move(answers), false, {}, {}, std::nullopt});
    }
    return std::nullopt;
  }
  const uint64_t seq = front_seq_ + pending_.size();
  pending_.push_back(Pending{std::move(answers), true, std::move(made_ready),
                             std::chrono::steady_clock::now(), std::nullopt});
  lock.unlock();
  auto appended = options_.log->AppendAsync(
      options_.partition, events,
      [this, seq](Result<std::vector<uint64_t>> r) { Completed(seq, std::move(r)); });
  if (!appended) {
    MarkFailed(seq);  // at once: the writer must decide nothing more on this state
    return Refusal{seq, appended.error()};
  }
  return std::nullopt;
}

void OrderedAppender::Completed(uint64_t seq, Result<std::vector<uint64_t>> result) {
  if (!result) MarkFailed(seq);  // at once, not when its turn to answer comes
  std::unique_lock lock(mu_);
  pending_[seq - front_seq_].outcome = std::move(result);
  if (delivering_) return;  // the thread delivering now gives this answer too
  delivering_ = true;
  while (!pending_.empty() && pending_.front().ready()) {
    Pending p = std::move(pending_.front());
    pending_.pop_front();
    const uint64_t given = front_seq_++;
    lock.unlock();
    Give(p, given);
    lock.lock();
  }
  delivering_ = false;
  if (pending_.empty()) idle_cv_.notify_all();
}

void OrderedAppender::MarkFailed(uint64_t seq) {
  uint64_t first = first_failed_.load();
  while (seq < first && !first_failed_.compare_exchange_weak(first, seq)) {
  }
}

void OrderedAppender::Give(Pending& p, uint64_t seq) {
  // Batches decided before the first failed append answer as they went;
  // from it on, every answer is WRITER_FAILED and nothing is acknowledged:
  // later offsets would not say what the log holds.
  const bool before_failure = seq < first_failed_.load();
  if (p.has_append) {
    const auto& result = *p.outcome;
    if (result && before_failure) acked_end_.store(result->back() + 1);
    if (options_.on_append_latency) {
      options_.on_append_latency(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - p.appended_at).count());
    }
  }
  if (!before_failure) {
    const std::string why =
        p.has_append && !*p.outcome ? p.outcome->error().message : "an earlier append failed";
    for (Answer& a : p.answers) {
      a.result =
          Fail(codes::kWriterFailed, "the log append failed (" + why +
                                         "); the outcome is unknown and runlogd must restart");
    }
  }
  Deliver(p.answers);
  if (!p.made_ready.empty() && before_failure && options_.on_ready) {
    options_.on_ready(p.made_ready);
  }
}

void OrderedAppender::Stop() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [&] { return pending_.empty() && !delivering_; });
}

void OrderedAppender::Deliver(std::vector<Answer>& answers) {
  for (Answer& a : answers) a.done(std::move(a.result));
}

}  // namespace runlog::services
