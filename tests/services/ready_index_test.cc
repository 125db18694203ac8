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
