#include "events/event_log.h"

#include <future>
#include <thread>

#include "events/codec.h"
#include "events/embedded_log.h"
#include "events/kafka_log.h"
#include "events/partitioner.h"

namespace runlog::events {

Result<std::vector<uint64_t>> EventLog::Append(uint32_t partition, std::span<const Event> events) {
  std::promise<Result<std::vector<uint64_t>>> promise;
  auto future = promise.get_future();
  if (auto s = AppendAsync(
          partition, events,
          [&promise](Result<std::vector<uint64_t>> r) { promise.set_value(std::move(r)); });
      !s) {
    return std::unexpected(s.error());
  }
  return future.get();
}

void EventLog::WaitAny(std::span<const uint64_t>, std::chrono::milliseconds wait) {
  std::this_thread::sleep_for(wait);
}

Result<std::vector<EventLog::RawRecord>> EventLog::ReadRaw(uint32_t, uint64_t, size_t) {
  return Fail(codes::kFailedPrecondition, Describe() + " cannot be read undecoded");
}

Result<std::string> ChainHead(EventLog& log, uint32_t partition) {
  auto end = log.EndOffset(partition);
  if (!end) return std::unexpected(end.error());
  // Offsets may skip on Kafka (markers, aborted records): look back further
  // until a window holds a record.
  for (uint64_t window = 16, until = *end; until > 0; window *= 8) {
    const uint64_t from = until > window ? until - window : 0;
    auto records = log.Read(partition, from, static_cast<size_t>(until - from));
    if (!records) return std::unexpected(records.error());
    if (!records->empty()) return records->back().hash;
    until = from;
  }
  return std::string(kNoPrev);
}

std::unexpected<Error> CorruptRecord(uint32_t partition, uint64_t offset, const std::string& what) {
  return Fail(
      codes::kLogCorrupt,
      "partition " + std::to_string(partition) + " offset " + std::to_string(offset) + ": " + what,
      "{\"partition\":" + std::to_string(partition) + ",\"offset\":" + std::to_string(offset) +
          "}");
}

Status ValidateAppend(uint32_t partition, uint32_t partition_count, std::span<const Event> events) {
  if (partition >= partition_count) {
    return Fail(codes::kInvalidArgument, "partition " + std::to_string(partition) +
                                             " out of range (log has " +
                                             std::to_string(partition_count) + ")");
  }
  if (events.empty()) return Fail(codes::kInvalidArgument, "append of no events");
  for (const Event& e : events) {
    if (e.type.empty() || e.event_id.empty() || e.aggregate_id.empty()) {
      return Fail(codes::kInvalidArgument, "event needs type, event_id and aggregate_id");
    }
    if (PartitionFor(e.aggregate_id, partition_count) != partition) {
      return Fail(codes::kInvalidArgument,
                  "aggregate " + e.aggregate_id + " belongs to partition " +
                      std::to_string(PartitionFor(e.aggregate_id, partition_count)) + ", not " +
                      std::to_string(partition));
    }
  }
  return {};
}

Status CheckLogOptions(const LogOptions& options) {
  const bool kafka = options.uri.starts_with("kafka://");
  if (options.uri != "embedded" && !kafka) {
    return Fail(codes::kInvalidArgument,
                "unknown log '" + options.uri + "': use embedded or kafka://HOST:PORT[,HOST:PORT]");
  }
  if (kafka && options.uri.size() == std::string_view("kafka://").size()) {
    return Fail(codes::kInvalidArgument, "kafka:// needs HOST:PORT");
  }
  if (options.partitions == 0 || options.partitions > 4096) {
    return Fail(codes::kInvalidArgument, "partitions must be between 1 and 4096");
  }
  return kafka ? CheckKafkaConfig(options.kafka_config) : Status{};
}

Result<std::unique_ptr<EventLog>> OpenEventLog(const LogOptions& options) {
  if (auto checked = CheckLogOptions(options); !checked) return std::unexpected(checked.error());
  if (options.uri == "embedded") {
    auto log = EmbeddedLog::Open(options);
    if (!log) return std::unexpected(log.error());
    return std::unique_ptr<EventLog>(std::move(*log));
  }
  if (options.uri.starts_with("kafka://")) {
    auto log = KafkaLog::Open(options);
    if (!log) return std::unexpected(log.error());
    return std::unique_ptr<EventLog>(std::move(*log));
  }
  return Fail(codes::kInvalidArgument, "unknown log '" + options.uri + "'");  // checked above
}

}  // namespace runlog::events
