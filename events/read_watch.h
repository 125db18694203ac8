#pragma once
// ReadWatch: lets whoever starts a long read of the log (the writers'
// recovery, the projector's catch-up) see how far it is and abandon it. On a
// topic of millions of records a read takes a while, and neither a person
// watching nor a stop signal should have to wait for its end in silence.
//
// ReadProgress applies a watch to one read: At() reports when the read
// starts a partition and then at most once per `every`, and returns CANCELLED
// once the watch's `cancelled` says so. The reader stops there and returns
// that status.
//
// Thread contract: a ReadProgress belongs to the thread doing the read; the
// watch's callbacks run on that thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "infra/base/result.h"

namespace runlog::events {

struct ReadWatch {
  // `what` is "recovering" or "catching up"; `offset` is the next to read.
  std::function<void(const std::string& what, uint32_t partition, uint64_t offset, uint64_t end)>
      report;
  std::function<bool()> cancelled;
  // A line worth an operator's attention: where a writer's checkpoint let
  // recovery start, or why one was not used.
  std::function<void(const std::string& line)> note;
  std::chrono::milliseconds every{1000};
};

class ReadProgress {
 public:
  ReadProgress(const ReadWatch& watch, std::string what) : watch_(watch), what_(std::move(what)) {}

  [[nodiscard]] Status At(uint32_t partition, uint64_t offset, uint64_t end) {
    if (watch_.cancelled && watch_.cancelled()) {
      return Fail(codes::kCancelled, what_ + " was cancelled at partition " +
                                         std::to_string(partition) + " offset " +
                                         std::to_string(offset));
    }
    const auto now = std::chrono::steady_clock::now();
    if (watch_.report && (partition != partition_ || now - last_ >= watch_.every)) {
      watch_.report(what_, partition, offset, end);
      partition_ = partition;
      last_ = now;
    }
    return {};
  }

 private:
  const ReadWatch& watch_;
  const std::string what_;
  uint32_t partition_ = UINT32_MAX;  // the last one reported
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace runlog::events
