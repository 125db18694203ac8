#pragma once
// An in-process librdkafka mock cluster (rdkafka_mock.h): real Kafka protocol
// on loopback ports, no Kafka installation. For tests, the log benchmark and
// `runlog mock-kafka`. Known limits: ~1 s before the first message on a topic
// is served, at most 5 MiB per partition, no CreateTopics API (CreateTopic
// below goes around it).
//
// Lifecycle: Start() brings the brokers up; the destructor takes them down.
// Thread contract: methods are thread-safe (librdkafka's mock is).

#include <memory>
#include <string>

#include "infra/base/result.h"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_mock_cluster_s rd_kafka_mock_cluster_t;

namespace runlog::events {

class MockKafkaCluster {
 public:
  [[nodiscard]] static Result<std::unique_ptr<MockKafkaCluster>> Start(int brokers);
  ~MockKafkaCluster();
  MockKafkaCluster(const MockKafkaCluster&) = delete;
  MockKafkaCluster& operator=(const MockKafkaCluster&) = delete;

  // "127.0.0.1:PORT,…", usable as kafka://<bootstraps>.
  std::string bootstraps() const;
  [[nodiscard]] Status CreateTopic(const std::string& topic, int partitions, int replication);
  [[nodiscard]] Status SetLeader(const std::string& topic, int partition, int broker_id);
  [[nodiscard]] Status SetBrokerDown(int broker_id);
  [[nodiscard]] Status SetBrokerUp(int broker_id);

 private:
  MockKafkaCluster(rd_kafka_t* rk, rd_kafka_mock_cluster_t* cluster) : rk_(rk), cluster_(cluster) {}
  rd_kafka_t* rk_;
  rd_kafka_mock_cluster_t* cluster_;
};

}  // namespace runlog::events
