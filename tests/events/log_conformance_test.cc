// One conformance suite, run against both EventLog backends: the embedded log
// on a real RocksDB in a temp dir, and the Kafka log against librdkafka's
// in-process mock cluster (3 brokers, real protocol on loopback).

#include <gtest/gtest.h>

#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "events/event_log.h"
#include "events/kafka_mock.h"
#include "tests/testing/concurrent_appends.h"
#include "tests/testing/events.h"
#include "tests/testing/temp_dir.h"

namespace runlog::events {
namespace {

using runlog::testing::AggregateOn;
using runlog::testing::TestEvent;
constexpr uint32_t kPartitions = 4;

class LogConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    options_.data_dir = dir_.path();
    options_.partitions = kPartitions;
    if (GetParam() == "kafka") {
      auto cluster = MockKafkaCluster::Start(3);
      ASSERT_TRUE(cluster.has_value()) << cluster.error().ToString();
      cluster_ = std::move(*cluster);
      ASSERT_TRUE(cluster_->CreateTopic(options_.kafka_topic, kPartitions, 3).has_value());
      options_.uri = "kafka://" + cluster_->bootstraps();
    }
    Reopen();
  }

  void Reopen() {
    log_.reset();
    auto log = OpenEventLog(options_);
    ASSERT_TRUE(log.has_value()) << log.error().ToString();
    log_ = std::move(*log);
  }

  std::vector<uint64_t> AppendOk(uint32_t partition, const std::vector<Event>& events) {
    auto r = log_->Append(partition, events);
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return r.value_or(std::vector<uint64_t>{});
  }

  runlog::testing::TempDir dir_;
  LogOptions options_;
  std::unique_ptr<MockKafkaCluster> cluster_;
  std::unique_ptr<EventLog> log_;
};

TEST_P(LogConformance, AppendReturnsDenseOffsetsAndReadsBackTheSameEvents) {
  const std::string agg = AggregateOn(1, kPartitions);
  std::vector<Event> batch = {TestEvent(agg, 1), TestEvent(agg, 2, R"({"s":"é\n"})"),
                              TestEvent(agg, 3)};
  EXPECT_EQ(AppendOk(1, batch), (std::vector<uint64_t>{0, 1, 2}));
  EXPECT_EQ(AppendOk(1, {TestEvent(agg, 4)}), (std::vector<uint64_t>{3}));
  EXPECT_EQ(log_->EndOffset(1).value(), 4u);
  EXPECT_EQ(log_->EndOffset(0).value(), 0u);

  auto records = log_->Read(1, 0, 100);
  ASSERT_TRUE(records.has_value()) << records.error().ToString();
  ASSERT_EQ(records->size(), 4u);
  for (uint64_t i = 0; i < 4; ++i) {
    EXPECT_EQ((*records)[i].offset, i);
    EXPECT_EQ((*records)[i].partition, 1u);
    EXPECT_EQ((*records)[i].event, i < 3 ? batch[i] : TestEvent(agg, 4));
  }
}

TEST_P(LogConformance, ReadsFromAnOffsetAndStopsAtTheEnd) {
  const std::string agg = AggregateOn(2, kPartitions);
  for (uint64_t i = 1; i <= 10; ++i) AppendOk(2, {TestEvent(agg, i)});
  auto middle = log_->Read(2, 4, 3);
  ASSERT_TRUE(middle.has_value()) << middle.error().ToString();
  ASSERT_EQ(middle->size(), 3u);
  EXPECT_EQ(middle->front().offset, 4u);
  EXPECT_EQ(middle->front().event.sequence, 5u);
  EXPECT_EQ(middle->back().offset, 6u);

  auto tail_end = log_->Read(2, 8, 100);
  ASSERT_TRUE(tail_end.has_value());
  EXPECT_EQ(tail_end->size(), 2u);
  auto past_end = log_->Read(2, 10, 100);
  ASSERT_TRUE(past_end.has_value());
  EXPECT_TRUE(past_end->empty());
  // Rewinding works after reading forward.
  auto again = log_->Read(2, 0, 1);
  ASSERT_TRUE(again.has_value());
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ(again->front().event.sequence, 1u);
}

TEST_P(LogConformance, TailWaitsForTheNextRecord) {
  const std::string agg = AggregateOn(3, kPartitions);
  AppendOk(3, {TestEvent(agg, 1)});
  auto empty = log_->Tail(3, 1, 10, std::chrono::milliseconds(200));
  ASSERT_TRUE(empty.has_value()) << empty.error().ToString();
  EXPECT_TRUE(empty->empty());

  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    AppendOk(3, {TestEvent(agg, 2)});
  });
  auto got = log_->Tail(3, 1, 10, std::chrono::seconds(20));
  writer.join();
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ(got->front().offset, 1u);
  EXPECT_EQ(got->front().event.sequence, 2u);
}

TEST_P(LogConformance, RefusesMisroutedAndEmptyAppends) {
  const std::string agg = AggregateOn(0, kPartitions);
  auto wrong = log_->Append(1, std::vector<Event>{TestEvent(agg, 1)});
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().code, codes::kInvalidArgument);
  auto out_of_range = log_->Append(kPartitions, std::vector<Event>{TestEvent(agg, 1)});
  ASSERT_FALSE(out_of_range.has_value());
  EXPECT_EQ(out_of_range.error().code, codes::kInvalidArgument);
  auto empty = log_->Append(0, std::vector<Event>{});
  ASSERT_FALSE(empty.has_value());
  EXPECT_EQ(empty.error().code, codes::kInvalidArgument);
  EXPECT_EQ(log_->EndOffset(0).value(), 0u);
  EXPECT_EQ(log_->EndOffset(1).value(), 0u);
}

TEST_P(LogConformance, ConcurrentAppendersGetUniqueDenseOffsets) {
  constexpr int kThreads = 16;
  constexpr int kPerThread = 50;
  auto run = runlog::testing::AppendFromThreads(*log_, kThreads, kPerThread);
  EXPECT_EQ(run.failed, 0) << run.first_error;
  EXPECT_EQ(run.duplicate_offsets, 0);
  const auto& acked = run.acked;
  ASSERT_EQ(acked.size(), size_t{kThreads * kPerThread});
  size_t seen = 0;
  for (uint32_t p = 0; p < kPartitions; ++p) {
    auto end = log_->EndOffset(p);
    ASSERT_TRUE(end.has_value());
    auto records = log_->Read(p, 0, *end);
    ASSERT_TRUE(records.has_value()) << records.error().ToString();
    ASSERT_EQ(records->size(), *end);
    for (uint64_t i = 0; i < *end; ++i) {
      const LogRecord& r = (*records)[i];
      EXPECT_EQ(r.offset, i);
      EXPECT_EQ(acked.at({p, i}), r.event.event_id);
    }
    seen += *end;
  }
  EXPECT_EQ(seen, acked.size());
}

TEST_P(LogConformance, ReopenKeepsRecordsAndContinuesOffsets) {
  const std::string agg = AggregateOn(0, kPartitions);
  AppendOk(0, {TestEvent(agg, 1), TestEvent(agg, 2)});
  Reopen();
  EXPECT_EQ(log_->EndOffset(0).value(), 2u);
  EXPECT_EQ(AppendOk(0, {TestEvent(agg, 3)}), (std::vector<uint64_t>{2}));
  auto records = log_->Read(0, 0, 10);
  ASSERT_TRUE(records.has_value());
  ASSERT_EQ(records->size(), 3u);
  EXPECT_EQ((*records)[2].event, TestEvent(agg, 3));
}

TEST_P(LogConformance, RefusesAnotherPartitionCount) {
  log_.reset();
  options_.partitions = kPartitions + 1;
  auto log = OpenEventLog(options_);
  ASSERT_FALSE(log.has_value());
  EXPECT_EQ(log.error().code, codes::kFailedPrecondition);
  EXPECT_NE(log.error().message.find("--partitions " + std::to_string(kPartitions)),
            std::string::npos)
      << log.error().message;
}

TEST_P(LogConformance, AsyncAppendCallsBackOnceWithOffsets) {
  const std::string agg = AggregateOn(2, kPartitions);
  std::promise<Result<std::vector<uint64_t>>> done;
  std::vector<Event> batch = {TestEvent(agg, 1), TestEvent(agg, 2)};
  ASSERT_TRUE(
      log_->AppendAsync(2, batch, [&](Result<std::vector<uint64_t>> r) { done.set_value(r); }));
  auto r = done.get_future().get();
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(*r, (std::vector<uint64_t>{0, 1}));
}

// A refused append returns its error and never calls back, so a caller that
// appends under a lock never hears back under it.
TEST_P(LogConformance, RefusedAsyncAppendReturnsItsErrorAndNeverCallsBack) {
  bool called = false;
  std::vector<Event> batch = {TestEvent(AggregateOn(1, kPartitions), 1)};
  auto refused = log_->AppendAsync(kPartitions, batch, [&](auto) { called = true; });
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, codes::kInvalidArgument);
  refused = log_->AppendAsync(1, std::span<const Event>(), [&](auto) { called = true; });
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, codes::kInvalidArgument);
  EXPECT_FALSE(called);
}

INSTANTIATE_TEST_SUITE_P(Backends, LogConformance, ::testing::Values("embedded", "kafka"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace runlog::events
