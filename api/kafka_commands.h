#pragma once
// KafkaCommands: other systems create and cancel tasks by producing to the
// `runlog.commands` topic (docs/kafka.md, "Commands from other systems").
//
// A message's key is its idempotency key; its value names the tenant:
//   {"tenant_id": "acct_…", "command": "create", "task": {…create body…},
//    "correlation_id": "…"}
//   {"tenant_id": "acct_…", "command": "cancel", "task_id": "task_…",
//    "correlation_id": "…"}
// Each runs through the API as that tenant (a principal named "kafka:commands"
// with the write scope), so it is checked, routed to its partition's writer
// and answered like a call over HTTP; a create repeated with one key makes one
// task. The answer goes to `runlog.replies`, keyed by the correlation id (the
// key if none): {"correlation_id", "status", "body"}; the task's events are
// on `runlog.events` as any task's. A message that cannot run (not JSON, no
// key, an unknown tenant or command, or a 4xx answer) goes to
// `runlog.commands.dlq` with the reason, and the consumer goes on. A 5xx
// answer is tried again, then dead-lettered.
//
// Trust: whoever may produce to the topic acts as any tenant it names;
// restrict it with Kafka ACLs, or turn the consumer off (--no-kafka-commands).
//
// The nodes share the topic's partitions through consumer group
// `runlog-commands-<events topic>`; offsets are committed after each message
// is answered, so a message is handled at least once, and its idempotency key
// makes the repeat harmless.
//
// Lifecycle: Start(), Stop(). Thread contract: its own thread does the work.

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "api/api.h"

namespace RdKafka {
class KafkaConsumer;
class Producer;
}  // namespace RdKafka

namespace runlog::api {

class KafkaCommands {
 public:
  struct Options {
    Api* api = nullptr;
    KeyStore* keys = nullptr;
    std::string brokers;
    std::string events_topic = "runlog.events";
    std::string commands_topic = "runlog.commands";
    std::string replies_topic = "runlog.replies";
    std::string dlq_topic = "runlog.commands.dlq";
    std::vector<std::pair<std::string, std::string>> kafka_config;
    std::chrono::milliseconds answer_timeout{30'000};
    // The group's session timeout: how long a dead node's partitions of the
    // topic wait (and, on librdkafka's mock, how long a rebalance takes).
    std::chrono::milliseconds session_timeout{6'000};
  };
  explicit KafkaCommands(Options options);
  ~KafkaCommands();

  // NOT_FOUND if the commands topic does not exist (the caller says so and
  // goes on without it).
  [[nodiscard]] Status Start();
  void Stop();

 private:
  void Loop();
  // Runs one message; its reply, or the reason it goes to the DLQ.
  void Handle(const std::string& key, const std::string& value, int32_t partition, int64_t offset);
  void Produce(const std::string& topic, const std::string& key, const std::string& value);

  Options options_;
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace runlog::api
