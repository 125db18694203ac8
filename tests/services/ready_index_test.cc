// ReadyIndex: the best ready task by priority then age, and queue deadlines
// that leave with their task (a claimed task's deadline holds no memory).

#include "services/writer/ready_index.h"

#include <gtest/gtest.h>

namespace runlog::services {
namespace {

TEST(ReadyIndexTest, BestIsHighestPriorityThenFirstReady) {
  ReadyIndex index;
  index.Add("a", {"t1", "x"}, 0, 10);
  index.Add("b", {"t1", "x"}, 5, 20);
  index.Add("c", {"t1", "x"}, 5, 30);
  index.Add("d", {"t2", "x"}, 9, 5);
  EXPECT_EQ(*index.Best("t1", {}), "b");
  index.Remove("b");
  EXPECT_EQ(*index.Best("t1", {"x"}), "c");
  EXPECT_EQ(index.Best("t1", {"y"}), nullptr);
  EXPECT_EQ(index.Front("t1", {}), ReadyIndex::kNone) << "nothing published yet";
  index.Publish();
  EXPECT_EQ(index.Front("t1", {}), (ReadyIndex::Rank{-5, 30}));
}

// Queues by concurrency key belong to their type; a blocked one is passed
// over; executors' queues are one per tenant (and key).
TEST(ReadyIndexTest, KeyedAndExecutorQueues) {
  events::Task keyed;
  keyed.tenant_id = "t1";
  keyed.type = "x";
  keyed.concurrency_key = "user-7";
  keyed.max_concurrency = 2;
  const ReadyIndex::TenantType key = ReadyIndex::KeyOf(keyed);
  EXPECT_EQ(key.first, "t1");
  EXPECT_EQ(key.second, std::string("x\0user-7\0"
                                    "2",
                                    10));
  ReadyIndex::Queue q = ReadyIndex::Parse(key);
  EXPECT_FALSE(q.executor);
  EXPECT_EQ(q.tenant, "t1");
  EXPECT_EQ(q.type, "x");
  EXPECT_EQ(q.concurrency_key, "user-7");
  EXPECT_EQ(q.max_concurrency, 2);
  keyed.executor = true;  // a plan with no worker steps: the executors'
  keyed.step_count = 1;
  keyed.step_runners = "e";
  const ReadyIndex::TenantType exec = ReadyIndex::KeyOf(keyed);
  EXPECT_EQ(exec.first, "");
  q = ReadyIndex::Parse(exec);
  EXPECT_TRUE(q.executor);
  EXPECT_EQ(q.tenant, "t1");
  EXPECT_EQ(q.concurrency_key, "user-7");

  ReadyIndex index;
  index.Add("k1", key, 9, 1);
  index.Add("plain", {"t1", "x"}, 0, 2);
  index.Add("other", {"t1", "xy"}, 9, 0);  // another type, though it starts the same
  index.Add("e1", exec, 0, 3);
  index.Add("e2",
            {"", std::string("t2\0\0"
                             "0",
                             5)},
            0, 4);
  EXPECT_EQ(*index.Best("t1", {"x"}), "k1");
  auto blocked = [&](const ReadyIndex::TenantType& k) { return k == key; };
  EXPECT_EQ(*index.Best("t1", {"x"}, blocked), "plain");
  EXPECT_EQ(*index.BestIn(exec), "e1");
  index.Publish();
  EXPECT_EQ(index.Front("t1", {"x"}), (ReadyIndex::Rank{-9, 1}));
  auto fronts = index.ExecutorFronts();
  ASSERT_EQ(fronts.size(), 2u);
  EXPECT_EQ(ReadyIndex::Parse(fronts[0].first).tenant, "t1");
  EXPECT_EQ(ReadyIndex::Parse(fronts[1].first).tenant, "t2");
}

TEST(ReadyIndexTest, QueueDeadlinesLeaveWithTheirTask) {
  ReadyIndex index;
  index.Add("a", {"t", "x"}, 0, 0);
  index.Add("b", {"t", "x"}, 0, 0);
  index.AddQueueDeadline(100, "a");
  index.AddQueueDeadline(200, "b");
  index.AddQueueDeadline(300, "gone");  // not ready: nothing kept
  EXPECT_EQ(index.next_expiry_ms(), 100);
  index.Remove("a");  // claimed
  EXPECT_EQ(index.next_expiry_ms(), 200);
  index.AddQueueDeadline(250, "b");  // a later one replaces it
  EXPECT_TRUE(index.TakeDueDeadlines(240).empty());
  auto due = index.TakeDueDeadlines(1000);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0], (std::pair<int64_t, std::string>{250, "b"}));
  EXPECT_EQ(index.next_expiry_ms(), INT64_MAX);
  index.Remove("b");  // its deadline was taken: nothing left to erase
  EXPECT_EQ(index.size(), 0u);
}

}  // namespace
}  // namespace runlog::services
