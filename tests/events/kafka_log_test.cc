// Kafka-backend behaviour beyond the conformance suite, against librdkafka's
// in-process mock cluster: a broker going down and coming back during appends
// loses no acknowledged record and duplicates none; bad configuration is a
// clear error.

#include "events/kafka_log.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "events/kafka_mock.h"
#include "events/partitioner.h"
#include "tests/testing/concurrent_appends.h"
#include "tests/testing/events.h"

namespace runlog::events {
namespace {

TEST(KafkaLog, BrokerDownAndUpDuringAppendsLosesAndDuplicatesNothing) {
  constexpr uint32_t kPartitions = 6;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 300;  // enough that the outage lands mid-load
  auto cluster = MockKafkaCluster::Start(3);
  ASSERT_TRUE(cluster.has_value());
  LogOptions options;
  options.partitions = kPartitions;
  ASSERT_TRUE((*cluster)->CreateTopic(options.kafka_topic, kPartitions, 3).has_value());
  // Broker 2 leads partitions 1 and 4, so its outage must stall their appends.
  for (uint32_t p = 0; p < kPartitions; ++p) {
    ASSERT_TRUE((*cluster)->SetLeader(options.kafka_topic, p, static_cast<int>(p % 3) + 1));
  }
  options.uri = "kafka://" + (*cluster)->bootstraps();
  auto opened = OpenEventLog(options);
  ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
  EventLog& log = **opened;

  std::atomic<int> appended{0};
  runlog::testing::ConcurrentAppends run;
  std::thread appenders(
      [&] { run = runlog::testing::AppendFromThreads(log, kThreads, kPerThread, &appended); });
  // Take a broker down once appends flow (bounded wait), and bring it back 1.5 s later.
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (appended.load() < 200 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE((*cluster)->SetBrokerDown(2).has_value());
  const int at_down = appended.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_TRUE((*cluster)->SetBrokerUp(2).has_value());
  appenders.join();

  EXPECT_LT(at_down, kThreads * kPerThread) << "the outage came after all appends";
  EXPECT_GT(run.max_append_ms, 1000) << "no append waited out the outage";
  EXPECT_EQ(run.failed, 0) << "appends should wait out a 1.5 s outage: " << run.first_error;
  EXPECT_EQ(run.duplicate_offsets, 0);
  const auto& acked = run.acked;
  std::set<std::string> seen;
  size_t total = 0;
  for (uint32_t p = 0; p < kPartitions; ++p) {
    auto end = log.EndOffset(p);
    ASSERT_TRUE(end.has_value()) << end.error().ToString();
    auto records = log.Read(p, 0, *end);
    ASSERT_TRUE(records.has_value()) << records.error().ToString();
    for (const LogRecord& r : *records) {
      EXPECT_TRUE(seen.insert(r.event.event_id).second) << "duplicate " << r.event.event_id;
      auto it = acked.find({p, r.offset});
      if (it != acked.end()) {
        EXPECT_EQ(it->second, r.event.event_id);
      }
    }
    total += records->size();
  }
  for (const auto& [where, id] : acked) {
    EXPECT_TRUE(seen.count(id)) << "acknowledged " << id << " lost";
  }
  EXPECT_EQ(total, acked.size());
}

TEST(KafkaLog, CorruptRecordIsReportedEveryTimeNeverSkipped) {
  auto cluster = MockKafkaCluster::Start(1);
  ASSERT_TRUE(cluster.has_value());
  LogOptions options;
  options.partitions = 1;
  ASSERT_TRUE((*cluster)->CreateTopic(options.kafka_topic, 1, 1).has_value());
  options.uri = "kafka://" + (*cluster)->bootstraps();
  auto log = OpenEventLog(options);
  ASSERT_TRUE(log.has_value());
  ASSERT_TRUE((*log)->Append(0, std::vector<Event>{runlog::testing::TestEvent("a", 1)}));
  {  // A foreign producer writes bytes that are not a runlog record.
    std::string err;
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    conf->set("bootstrap.servers", (*cluster)->bootstraps(), err);
    std::unique_ptr<RdKafka::Producer> raw(RdKafka::Producer::create(conf.get(), err));
    std::string junk = "not a record";
    ASSERT_EQ(raw->produce(options.kafka_topic, 0, RdKafka::Producer::RK_MSG_COPY, junk.data(),
                           junk.size(), nullptr, 0, 0, nullptr),
              RdKafka::ERR_NO_ERROR);
    ASSERT_EQ(raw->flush(10000), RdKafka::ERR_NO_ERROR);
  }
  ASSERT_TRUE((*log)->Append(0, std::vector<Event>{runlog::testing::TestEvent("a", 2)}));
  // Retries from the bad offset itself are what once skipped it.
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto records = (*log)->Read(0, attempt == 0 ? 0 : 1, 10);
    ASSERT_FALSE(records.has_value()) << "attempt " << attempt << " skipped the bad record";
    EXPECT_EQ(records.error().code, codes::kLogCorrupt);
    EXPECT_EQ(records.error().details, R"({"partition":0,"offset":1})");
  }
  auto head = (*log)->Read(0, 0, 1);
  ASSERT_TRUE(head.has_value()) << head.error().ToString();
  EXPECT_EQ(head->size(), 1u);
}

TEST(KafkaLog, UnreachableBrokersAreAClearError) {
  LogOptions options;
  options.uri = "kafka://127.0.0.1:1";
  options.kafka_connect_timeout = std::chrono::milliseconds(1500);
  auto log = OpenEventLog(options);
  ASSERT_FALSE(log.has_value());
  EXPECT_EQ(log.error().code, codes::kUnavailable);
  EXPECT_NE(log.error().message.find("cannot reach Kafka brokers at 127.0.0.1:1"),
            std::string::npos)
      << log.error().message;
}

TEST(KafkaLog, MissingTopicIsAClearError) {
  auto cluster = MockKafkaCluster::Start(1);
  ASSERT_TRUE(cluster.has_value());
  LogOptions options;
  options.uri = "kafka://" + (*cluster)->bootstraps();
  options.kafka_topic = "runlog.missing";
  auto log = OpenEventLog(options);
  ASSERT_FALSE(log.has_value());
  EXPECT_EQ(log.error().code, codes::kFailedPrecondition);
  EXPECT_NE(log.error().message.find("does not exist"), std::string::npos) << log.error().message;
}

// Cluster mode's writes: a partition is written only through the writer
// opened for it, and only while the write gate (the node's ownership lease)
// holds, asked before the transaction and again after it commits.
TEST(KafkaLog, ATransactionalWriterAppendsOnlyWhileItsGateHolds) {
  auto cluster = MockKafkaCluster::Start(1);
  ASSERT_TRUE(cluster.has_value());
  LogOptions options;
  options.partitions = 2;
  ASSERT_TRUE((*cluster)->CreateTopic(options.kafka_topic, 2, 1).has_value());
  options.uri = "kafka://" + (*cluster)->bootstraps();
  options.kafka_transactional = true;
  options.node_id = "n1";
  auto opened = OpenEventLog(options);
  ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
  auto* log = dynamic_cast<KafkaLog*>(opened->get());
  ASSERT_NE(log, nullptr);
  const uint32_t p = PartitionFor("a", 2);
  std::atomic<bool> owner{true};
  log->SetWriteGate([&](uint32_t q) { return q == p && owner.load(); });
  const auto event = [](int n) { return std::vector<Event>{runlog::testing::TestEvent("a", n)}; };
  auto unopened = log->Append(p, event(1));
  ASSERT_FALSE(unopened.has_value());
  EXPECT_EQ(unopened.error().code, codes::kNotOwner);
  ASSERT_TRUE(log->OpenWriter(p).has_value());
  EXPECT_TRUE(log->writer_open(p));
  auto first = log->Append(p, event(1));
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  owner.store(false);  // the lease lapsed: nothing more is written
  auto refused = log->Append(p, event(2));
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, codes::kNotOwner);
  owner.store(true);
  auto second = log->Append(p, event(2));
  ASSERT_TRUE(second.has_value()) << second.error().ToString();
  auto records = log->Read(p, 0, 10);
  ASSERT_TRUE(records.has_value()) << records.error().ToString();
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[0].event.sequence, 1u);
  EXPECT_EQ((*records)[1].event.sequence, 2u);
  log->CloseWriter(p);
  EXPECT_EQ(log->Append(p, event(3)).error().code, codes::kNotOwner);
}

TEST(KafkaLog, ATopicThatCouldDeleteEventsIsNamedWithTheFix) {
  using Config = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(KafkaLog::DeletesRecords(Config{
                {"cleanup.policy", "delete"}, {"retention.ms", "-1"}, {"retention.bytes", "-1"}}),
            "");
  EXPECT_NE(
      KafkaLog::DeletesRecords(Config{{"retention.ms", "604800000"}}).find("set retention.ms=-1"),
      std::string::npos);
  EXPECT_NE(KafkaLog::DeletesRecords(Config{{"retention.bytes", "1073741824"}})
                .find("set retention.bytes=-1"),
            std::string::npos);
  EXPECT_NE(KafkaLog::DeletesRecords(Config{{"cleanup.policy", "compact,delete"}})
                .find("set cleanup.policy=delete"),
            std::string::npos);
}

TEST(KafkaLog, ABadKafkaConfigPropertyIsRefusedByName) {
  LogOptions options;
  options.uri = "kafka://127.0.0.1:1";
  options.kafka_config = {{"no.such.property", "1"}};
  auto log = OpenEventLog(options);
  ASSERT_FALSE(log.has_value());
  EXPECT_EQ(log.error().code, codes::kInvalidArgument);
  EXPECT_NE(log.error().message.find("--kafka-config no.such.property"), std::string::npos)
      << log.error().message;
}

TEST(KafkaLog, BadUriIsRefused) {
  LogOptions options;
  options.uri = "kafka://";
  EXPECT_EQ(OpenEventLog(options).error().code, codes::kInvalidArgument);
  options.uri = "zookeeper://x";
  EXPECT_EQ(OpenEventLog(options).error().code, codes::kInvalidArgument);
}

}  // namespace
}  // namespace runlog::events
