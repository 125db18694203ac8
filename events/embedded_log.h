#pragma once
// The embedded backend: the log in a RocksDB database on local disk.
//
// Layout (docs/log_format.md): key 'L' | partition (u32 BE) | offset (u64 BE),
// value = the codec's checksummed record; key 'M' "partitions" holds the
// partition count. The log thread links every record into its partition's
// hash chain as it assigns its offset (codec.h).
//
// Durability and group commit (docs/decisions/0001-embedded-group-commit.md):
// one thread takes every queued append, assigns offsets, writes them as one
// WriteBatch and syncs the WAL once (fdatasync), then publishes the new end
// offsets and answers the appenders. While it writes, syncs and answers, the
// next appends queue up, so each fdatasync covers all appends that arrived
// during the previous one. Offsets follow WAL order, so a crash loses at most
// an unacknowledged suffix, never leaves a gap. Readers see only published
// (synced) offsets. A failed write or sync latches the log: every later
// append fails with LOG_LATCHED.
//
// Thread contract: public methods are thread-safe, but none may be running
// when the log is destroyed (and never destroy it from its own callback). The
// log thread alone owns next_offset_; mu_ guards every field below it.

#include <rocksdb/db.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "events/event_log.h"

namespace runlog::events {

std::string EmbeddedLogKey(uint32_t partition, uint64_t offset);

class EmbeddedLog final : public EventLog {
 public:
  [[nodiscard]] static Result<std::unique_ptr<EmbeddedLog>> Open(const LogOptions& options);
  ~EmbeddedLog() override;

  uint32_t partition_count() const override { return partitions_; }
  std::string Describe() const override { return "embedded:" + dir_; }
  [[nodiscard]] Status AppendAsync(uint32_t partition, std::span<const Event> events,
                                   AppendCallback done) override;
  Result<std::vector<LogRecord>> Read(uint32_t partition, uint64_t from,
                                      size_t max_records) override;
  Result<std::vector<LogRecord>> Tail(uint32_t partition, uint64_t from, size_t max_records,
                                      std::chrono::milliseconds wait) override;
  Result<uint64_t> EndOffset(uint32_t partition) override;
  Result<std::vector<RawRecord>> ReadRaw(uint32_t partition, uint64_t from,
                                         size_t max_records) override;
  bool CanWaitAny() const override { return true; }
  void WaitAny(std::span<const uint64_t> from, std::chrono::milliseconds wait) override;

 private:
  struct Request {
    uint32_t partition;
    std::vector<std::string> records;
    AppendCallback done;
  };

  EmbeddedLog(std::unique_ptr<rocksdb::DB> db, std::string dir, uint32_t partitions,
              std::vector<uint64_t> ends, std::vector<std::string> chain, bool ack_before_write);
  void Loop();
  void Latch(const rocksdb::Status& status, const char* what);  // requires mu_

  const std::unique_ptr<rocksdb::DB> db_;
  const std::string dir_;
  const uint32_t partitions_;
  const bool ack_before_write_;
  std::vector<uint64_t> next_offset_;  // the log thread only
  // Each partition's last record's hash, the next record's link (the log
  // thread only; after a failed write the log is latched, so it is never
  // used ahead of what reached the disk).
  std::vector<std::string> last_hash_;

  std::mutex mu_;
  std::condition_variable queue_cv_;  // work for the log thread
  // One per partition, so an append wakes only that partition's tailers.
  std::unique_ptr<std::condition_variable[]> appended_cv_;
  std::condition_variable appended_any_cv_;  // for WaitAny: any partition grew
  std::deque<Request> queue_;                // appends not yet written
  std::vector<uint64_t> end_offset_;         // guarded by mu_
  bool latched_ = false;                     // guarded by mu_
  std::string latch_reason_;                 // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::thread thread_;
};

}  // namespace runlog::events
