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
#include "tests/testing/events.h"

namespace runlog::events {
namespace {

using runlog::testing::TestEvent;

TEST(KafkaLog, BrokerDownAndUpDuringAppendsLosesAndDuplicatesNothing) {
  constexpr uint32_t kPartitions = 6;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 150;
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

  std::mutex mu;
  std::map<std::pair<uint32_t, uint64_t>, std::string> acked;
  std::atomic<int> appended{0};
  std::atomic<int> failed{0};
  std::atomic<int64_t> max_append_ms{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Event e = TestEvent("agg-" + std::to_string(t) + "-" + std::to_string(i), 1);
        uint32_t p = PartitionFor(e.aggregate_id, kPartitions);
        auto t0 = std::chrono::steady_clock::now();
        auto r = log.Append(p, std::span(&e, 1));
        int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - t0)
                         .count();
        for (int64_t m = max_append_ms.load();
             ms > m && !max_append_ms.compare_exchange_weak(m, ms);) {
        }
        if (!r) {
          ++failed;
          continue;
        }
        ++appended;
        std::lock_guard lock(mu);
        acked[{p, r->front()}] = e.event_id;
      }
    });
  }
  // Take a broker down once appends flow, and bring it back 1.5 s later.
  while (appended.load() < 200) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE((*cluster)->SetBrokerDown(2).has_value());
  const int at_down = appended.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_TRUE((*cluster)->SetBrokerUp(2).has_value());
  for (auto& th : threads) th.join();

  EXPECT_LT(at_down, kThreads * kPerThread) << "the outage came after all appends";
  EXPECT_GT(max_append_ms.load(), 1000) << "no append waited out the outage";
  EXPECT_EQ(failed.load(), 0) << "appends should wait out a 1.5 s outage";
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

TEST(KafkaLog, BadUriIsRefused) {
  LogOptions options;
  options.uri = "kafka://";
  EXPECT_EQ(OpenEventLog(options).error().code, codes::kInvalidArgument);
  options.uri = "zookeeper://x";
  EXPECT_EQ(OpenEventLog(options).error().code, codes::kInvalidArgument);
}

}  // namespace
}  // namespace runlog::events
