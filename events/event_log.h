#pragma once
// EventLog: the append-only log that is runlog's only source of truth.
//
// A log has a fixed number of partitions; an aggregate's events all go to
// PartitionFor(aggregate_id) (events/partitioner.h). Offsets are per partition,
// start at 0 and grow by one per record.
//
// Thread contract: every method is safe to call from any thread, concurrently.
// Lifecycle: opened by OpenEventLog, closed by its destructor, which waits for
// appends in flight and fails those it cannot finish.
//
// Errors: INVALID_ARGUMENT (the caller's mistake), UNAVAILABLE (retry later),
// LOG_LATCHED (a durable write failed earlier; the log refuses further appends
// until it is reopened, rather than guess what reached the disk), LOG_CORRUPT (a
// record failed its checksum or is missing; details name partition and offset).
// A failed append has an unknown outcome unless it failed validation: its
// records may still appear after the log is reopened, so a writer that sees
// LOG_LATCHED or UNAVAILABLE from an append rebuilds its state from the log.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "events/event.h"
#include "infra/base/result.h"

namespace rocksdb {
class Env;  // LogOptions::embedded_env_for_test; this header stays free of RocksDB
}  // namespace rocksdb

namespace runlog::events {

class EventLog {
 public:
  virtual ~EventLog() = default;

  virtual uint32_t partition_count() const = 0;
  // "embedded:DIR" or "kafka:BROKERS/TOPIC", for logs and messages.
  virtual std::string Describe() const = 0;

  using AppendCallback = std::function<void(Result<std::vector<uint64_t>>)>;

  // Appends `events` to `partition`, in order, and calls `done` with their
  // offsets once they are durable (embedded: the WAL is synced; Kafka:
  // acks=all), or with the error. Every event's aggregate must belong to
  // `partition`. On the embedded backend a batch is atomic; on Kafka a failed
  // append may have landed in part. An append refused at once (bad input, a
  // latched or closing log) returns its error and never calls `done`;
  // otherwise `done` runs exactly once, on a thread of the log: it must be
  // quick and must not block, but it may call AppendAsync again. So a caller
  // holding a lock while it appends never hears back under that lock.
  [[nodiscard]] virtual Status AppendAsync(uint32_t partition, std::span<const Event> events,
                                           AppendCallback done) = 0;

  // AppendAsync, waiting for the answer.
  [[nodiscard]] Result<std::vector<uint64_t>> Append(uint32_t partition,
                                                     std::span<const Event> events);

  // Up to `max_records` records from offset `from` on; fewer (or none) at the end.
  [[nodiscard]] virtual Result<std::vector<LogRecord>> Read(uint32_t partition, uint64_t from,
                                                            size_t max_records) = 0;

  // Like Read, but first waits up to `wait` for a record at or after `from`.
  [[nodiscard]] virtual Result<std::vector<LogRecord>> Tail(uint32_t partition, uint64_t from,
                                                            size_t max_records,
                                                            std::chrono::milliseconds wait) = 0;

  // One past the last durable offset of `partition`.
  [[nodiscard]] virtual Result<uint64_t> EndOffset(uint32_t partition) = 0;

  // Whether WaitAny works on this backend; if not, tail each partition on its own.
  virtual bool CanWaitAny() const { return false; }
  // Waits up to `wait` until some partition p has a durable record at or past
  // `from[p]` (one entry per partition), or the log closes. Lets one thread
  // tail every partition without a wake-up per partition.
  virtual void WaitAny(std::span<const uint64_t> from, std::chrono::milliseconds wait);

  // Whether offsets grow by exactly one per record. On Kafka they need not:
  // a transaction's commit marker takes an offset, and read_committed skips
  // aborted records. Where they may not, a Read that returns nothing before
  // EndOffset means the rest up to the end holds no record.
  virtual bool OffsetsContiguous() const { return true; }

  // A record's bytes as stored, undecoded.
  struct RawRecord {
    uint64_t offset = 0;
    std::string bytes;
  };
  // Up to `max_records` records from offset `from` on, undecoded and
  // unchecked, for the audit, which must read past damage: a missing record
  // is simply absent (the offsets show the gap), and a record that fails its
  // checksum is returned as it is. Storage that cannot be read at all ends
  // the batch; a call that starts there fails, naming `from` in its details.
  [[nodiscard]] virtual Result<std::vector<RawRecord>> ReadRaw(uint32_t partition, uint64_t from,
                                                               size_t max_records);
};

// The hash of `partition`'s last record (its chain's head, which the next
// record links to), or kNoPrev if the partition is empty.
[[nodiscard]] Result<std::string> ChainHead(EventLog& log, uint32_t partition);

struct LogOptions {
  // "embedded" (the default) or "kafka://HOST:PORT[,HOST:PORT…]".
  std::string uri = "embedded";
  // Embedded: the log lives in DATA_DIR/log.
  std::string data_dir = "./data";
  uint32_t partitions = 8;
  std::string kafka_topic = "runlog.events";
  // Kafka: how long to wait for brokers at open, and for one append.
  std::chrono::milliseconds kafka_connect_timeout{10'000};
  std::chrono::milliseconds kafka_append_timeout{30'000};
  // Kafka: librdkafka properties set on every client runlog makes (SASL,
  // SSL…): runlogd --kafka-config KEY=VALUE.
  std::vector<std::pair<std::string, std::string>> kafka_config;
  // Kafka, cluster mode: every partition is written through a transactional
  // producer of its own (transactional.id runlog-writer-<topic>-p<N>), opened
  // by KafkaLog::OpenWriter when this node comes to own the partition.
  // Without it one idempotent producer writes every partition.
  bool kafka_transactional = false;
  // Kafka: stamped on every record this process writes (header runlog-node).
  std::string node_id;
  // Fault injection for the crash test only: acknowledge an append before it
  // is written. Never set outside tests.
  bool unsafe_ack_before_write_for_test = false;
  // Fault injection for the embedded log's tests only: its RocksDB does all
  // its file I/O (and reads the clock) through this Env instead of the
  // default, so a test can make the WAL's writes and syncs fail
  // (tests/events/embedded_fault_test.cc). Not owned; must outlive the log.
  // Never set outside tests.
  rocksdb::Env* embedded_env_for_test = nullptr;
};

// INVALID_ARGUMENT when OpenEventLog would refuse the options without
// touching a disk or a broker: an unknown log, a kafka:// without an
// address, a partition count outside 1..4096, a --kafka-config property
// librdkafka does not take. runlog doctor asks it first.
[[nodiscard]] Status CheckLogOptions(const LogOptions& options);

// Opens (creating if needed) the log the options name. A log remembers its
// partition count; reopening with another count is FAILED_PRECONDITION.
[[nodiscard]] Result<std::unique_ptr<EventLog>> OpenEventLog(const LogOptions& options);

// LOG_CORRUPT for the record at `partition`/`offset`, with both in details:
// shared by the backends so damage reads the same wherever it is found.
std::unexpected<Error> CorruptRecord(uint32_t partition, uint64_t offset, const std::string& what);

// Checks the partition and the events of an append: shared by the backends.
[[nodiscard]] Status ValidateAppend(uint32_t partition, uint32_t partition_count,
                                    std::span<const Event> events);

}  // namespace runlog::events
