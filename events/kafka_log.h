#pragma once
// The Kafka backend: the log as topic `runlog.events` (configurable) with P
// partitions, for deployments that outgrow one machine.
//
// Appends go through one idempotent producer (acks=all, so an acknowledged
// record is on every in-sync replica, and broker retries never duplicate).
// Each Append waits for the delivery reports of all its records. A record that
// cannot be delivered latches the log, as on the embedded backend.
// In cluster mode (LogOptions::kafka_transactional) each partition is written
// instead through a transactional producer of its own, opened by OpenWriter
// once this node owns the partition: a thread per partition commits what was
// appended meanwhile as one transaction (group commit), asking the write gate
// before it begins and after it commits (docs/decisions/0023).
// Every record carries headers: runlog-type, runlog-tenant, runlog-aggregate
// and, given a node id, runlog-node (docs/kafka.md, "Reading runlog.events").
// Reads use one KafkaConsumer per partition (read_committed), assigned (not
// subscribed) and moved to the requested offset; consumer groups are not used
// for reading.
//
// Thread contract: public methods are thread-safe, but none may be running
// when the log is destroyed (and never destroy it from its own callback). A
// poll thread serves the producer's delivery reports; each partition's reader
// has its own mutex.

#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "events/event_log.h"

namespace runlog::events {

// A librdkafka client's config: the brokers, `client_id`, errors-only logging
// (failures reach callers as Results) and the --kafka-config properties.
std::unique_ptr<RdKafka::Conf> KafkaClientConf(
    const std::string& brokers, const std::string& client_id,
    const std::vector<std::pair<std::string, std::string>>& extra);
// --kafka-config arguments ("KEY=VALUE") as pairs; INVALID_ARGUMENT naming
// the first that is not KEY=VALUE. runlogd and runlog doctor read them alike.
[[nodiscard]] Result<std::vector<std::pair<std::string, std::string>>> ParseKafkaConfig(
    const std::vector<std::string>& arguments);
// INVALID_ARGUMENT naming the first --kafka-config property librdkafka refuses.
[[nodiscard]] Status CheckKafkaConfig(
    const std::vector<std::pair<std::string, std::string>>& properties);
// Whether the brokers know `topic`, asked through `client` (waits up to 10 s).
bool KafkaTopicExists(RdKafka::Handle& client, const std::string& topic);
// `topic`'s config as the brokers describe it, asked through `client`. UNAVAILABLE
// when they cannot say: no controller (librdkafka's mock cluster), or no answer
// within `timeout`.
Result<std::vector<std::pair<std::string, std::string>>> KafkaTopicConfig(
    RdKafka::Handle& client, const std::string& topic, std::chrono::milliseconds timeout);

class KafkaLog final : public EventLog {
 public:
  [[nodiscard]] static Result<std::unique_ptr<KafkaLog>> Open(const LogOptions& options);
  ~KafkaLog() override;

  uint32_t partition_count() const override { return partitions_; }
  std::string Describe() const override { return "kafka:" + brokers_ + "/" + topic_; }
  [[nodiscard]] Status AppendAsync(uint32_t partition, std::span<const Event> events,
                                   AppendCallback done) override;
  Result<std::vector<LogRecord>> Read(uint32_t partition, uint64_t from,
                                      size_t max_records) override;
  Result<std::vector<LogRecord>> Tail(uint32_t partition, uint64_t from, size_t max_records,
                                      std::chrono::milliseconds wait) override;
  Result<uint64_t> EndOffset(uint32_t partition) override;
  bool OffsetsContiguous() const override { return false; }
  Result<std::vector<RawRecord>> ReadRaw(uint32_t partition, uint64_t from,
                                         size_t max_records) override;

  // Cluster mode. Appends to `partition` are refused until OpenWriter has
  // made its transactional producer and called init_transactions, which on a
  // broker that keeps producer epochs fences the partition's previous writer,
  // wherever it runs. CloseWriter answers what is queued and closes it.
  [[nodiscard]] Status OpenWriter(uint32_t partition);
  void CloseWriter(uint32_t partition);
  bool writer_open(uint32_t partition) const;
  // Asked before each transaction begins and again once it has committed:
  // whether this process still owns `partition`. A transaction refused
  // before, or confirmed after, the owner's lease answers its appends
  // NOT_OWNER (retryable; the second's outcome is unknown). Set before OpenWriter.
  void SetWriteGate(std::function<bool(uint32_t)> gate) { gate_ = std::move(gate); }

  // Whether `config` (a topic's, from DescribeConfigs) lets Kafka delete
  // records: compaction, or retention by time or size. The reason, or "".
  static std::string DeletesRecords(const std::vector<std::pair<std::string, std::string>>& config);

 private:
  class TxnWriter;
  struct Reader {
    std::mutex mu;
    std::unique_ptr<RdKafka::KafkaConsumer> consumer;  // guarded by mu
    int64_t position = -1;                             // next offset it will return
  };
  class DeliveryHandler;

  explicit KafkaLog(const LogOptions& options);
  std::unique_ptr<RdKafka::Conf> Conf() const;
  // Checks that the topic's config keeps every record, where the brokers say.
  Status CheckTopicConfig(std::chrono::milliseconds timeout);
  // Records from `from` on; into `raw` undecoded instead, if given.
  Result<std::vector<LogRecord>> Consume(uint32_t partition, uint64_t from, size_t max_records,
                                         std::chrono::steady_clock::time_point deadline,
                                         uint64_t stop_at, std::vector<RawRecord>* raw = nullptr);
  Status EnsureConsumer(Reader* reader);

  const std::string brokers_;
  const std::string topic_;
  const uint32_t partitions_;
  const std::chrono::milliseconds append_timeout_;
  std::unique_ptr<DeliveryHandler> delivery_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::vector<std::unique_ptr<Reader>> readers_;
  const std::vector<std::pair<std::string, std::string>> extra_config_;
  const bool transactional_;
  const std::string node_id_;
  std::function<bool(uint32_t)> gate_;
  // The shared producer's hash chain: each partition's head, taken at Open
  // and advanced as records are produced under the partition's mutex.
  std::vector<std::string> chain_;
  std::unique_ptr<std::mutex[]> chain_mu_;
  // Appends share it (each writer guards its own queue); opening and
  // closing a writer take it alone.
  mutable std::shared_mutex txn_mu_;
  std::vector<std::unique_ptr<TxnWriter>> txn_writers_;  // by partition; guarded by txn_mu_
  // Runs `task` on the poller thread, soon.
  void Defer(std::function<void()> task);
  void RunDeferred();
  std::mutex deferred_mu_;
  std::vector<std::function<void()>> deferred_;  // guarded by deferred_mu_
  std::atomic<bool> stopping_{false};
  std::atomic<bool> latched_{false};
  std::thread poller_;
};

}  // namespace runlog::events
