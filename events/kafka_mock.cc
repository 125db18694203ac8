#include "events/kafka_mock.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

namespace runlog::events {
namespace {

Status Check(rd_kafka_resp_err_t err, const std::string& what) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return {};
  return Fail(codes::kUnavailable, what + ": " + rd_kafka_err2str(err));
}

}  // namespace

Result<std::unique_ptr<MockKafkaCluster>> MockKafkaCluster::Start(int brokers) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return Fail(codes::kUnavailable, std::string("cannot create mock owner: ") + err);
  }
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(rk, brokers);
  if (cluster == nullptr) {
    rd_kafka_destroy(rk);
    return Fail(codes::kUnavailable, "cannot start mock Kafka cluster");
  }
  return std::unique_ptr<MockKafkaCluster>(new MockKafkaCluster(rk, cluster));
}

MockKafkaCluster::~MockKafkaCluster() {
  rd_kafka_mock_cluster_destroy(cluster_);
  rd_kafka_destroy(rk_);
}

std::string MockKafkaCluster::bootstraps() const {
  return rd_kafka_mock_cluster_bootstraps(cluster_);
}

Status MockKafkaCluster::CreateTopic(const std::string& topic, int partitions, int replication) {
  return Check(rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, replication),
               "mock topic " + topic);
}

Status MockKafkaCluster::SetLeader(const std::string& topic, int partition, int broker_id) {
  return Check(rd_kafka_mock_partition_set_leader(cluster_, topic.c_str(), partition, broker_id),
               "partition leader");
}

Status MockKafkaCluster::SetBrokerDown(int broker_id) {
  return Check(rd_kafka_mock_broker_set_down(cluster_, broker_id), "broker down");
}

Status MockKafkaCluster::SetBrokerUp(int broker_id) {
  return Check(rd_kafka_mock_broker_set_up(cluster_, broker_id), "broker up");
}

}  // namespace runlog::events
