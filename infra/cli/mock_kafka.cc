// `runlog mock-kafka`: runs a librdkafka mock cluster on 127.0.0.1 as its own
// process, creates the log topic, prints the bootstrap address on stdout and
// serves until SIGINT/SIGTERM. For trying `runlogd --log kafka://…` and for
// tests, without a Kafka installation.

#include <csignal>
#include <cstdio>

#include "events/kafka_mock.h"
#include "infra/cli/commands.h"

namespace runlog::cli {
namespace {

struct MockKafkaOptions {
  int brokers = 3;
  int partitions = 8;
  std::string topic = "runlog.events";
};

int RunMockKafka(const MockKafkaOptions& o) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto cluster = events::MockKafkaCluster::Start(o.brokers);
  if (!cluster) {
    std::fprintf(stderr, "runlog mock-kafka: %s\n", cluster.error().message.c_str());
    return 1;
  }
  // The log, and the topics a cluster and integrations use (docs/kafka.md).
  const int replication = std::min(o.brokers, 3);
  for (const auto& [topic, partitions] :
       std::vector<std::pair<std::string, int>>{{o.topic, o.partitions},
                                                {"runlog.nodes", 1},
                                                {"runlog.commands", o.partitions},
                                                {"runlog.replies", o.partitions},
                                                {"runlog.commands.dlq", 1}}) {
    if (auto s = (*cluster)->CreateTopic(topic, partitions, replication); !s) {
      std::fprintf(stderr, "runlog mock-kafka: %s\n", s.error().message.c_str());
      return 1;
    }
  }
  std::printf("%s\n", (*cluster)->bootstraps().c_str());
  std::fflush(stdout);
  int signal = 0;
  sigwait(&stop, &signal);
  return 0;
}

}  // namespace

Runner AddMockKafka(CLI::App& app) {
  auto o = std::make_shared<MockKafkaOptions>();
  auto* sub = app.add_subcommand("mock-kafka", "run a librdkafka mock Kafka cluster on 127.0.0.1");
  sub->add_option("--brokers", o->brokers, "broker count")->capture_default_str();
  sub->add_option("--partitions", o->partitions, "partitions of the topic")->capture_default_str();
  sub->add_option("--topic", o->topic, "topic to create")->capture_default_str();
  return [o] { return RunMockKafka(*o); };
}

}  // namespace runlog::cli
