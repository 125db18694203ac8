// Quotas: calendar-month and clock-hour windows in UTC, exact counting at a
// limit, and workers counted once however many leases they hold.

#include "services/quotas.h"

#include <gtest/gtest.h>

#include "services/account_plans.h"

namespace runlog::services {
namespace {

// 2026-12-31T23:59:59.999Z and the next millisecond.
constexpr int64_t kLastMsOf2026 = 1'798'761'599'999;

TEST(QuotasTest, WindowsAreCalendarMonthsAndClockHoursUtc) {
  auto [start, end] = Quotas::Window(Quotas::kTasksPerMonth, kLastMsOf2026);
  EXPECT_EQ(start, 1'796'083'200'000);  // 2026-12-01T00:00:00Z
  EXPECT_EQ(end, kLastMsOf2026 + 1);    // 2027-01-01T00:00:00Z
  EXPECT_EQ(Quotas::Window(Quotas::kTasksPerMonth, end).first, end);
  // February of a leap year: 29 days.
  constexpr int64_t kMarch1st2024 = 1'709'251'200'000;
  auto [feb1, mar1] = Quotas::Window(Quotas::kTasksPerMonth, kMarch1st2024 - 1);
  EXPECT_EQ(mar1, kMarch1st2024);
  EXPECT_EQ(mar1 - feb1, 29LL * 86'400'000);
  auto [h0, h1] = Quotas::Window(Quotas::kClaimsPerHour, kLastMsOf2026);
  EXPECT_EQ(h0, kLastMsOf2026 + 1 - 3'600'000);
  EXPECT_EQ(h1, kLastMsOf2026 + 1);
}

TEST(QuotasTest, CountsExactlyToTheLimitAndStartsAgainInTheNextWindow) {
  Quotas q;
  const int64_t t = kLastMsOf2026 - 10;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(q.TryCount("a", Quotas::kClaimsPerHour, t, 3));
  EXPECT_FALSE(q.TryCount("a", Quotas::kClaimsPerHour, t, 3));
  EXPECT_EQ(q.Count("a", Quotas::kClaimsPerHour, t), 3);
  EXPECT_TRUE(q.TryCount("b", Quotas::kClaimsPerHour, t, 3)) << "tenants count apart";
  q.Uncount("a", Quotas::kClaimsPerHour, t);
  EXPECT_TRUE(q.TryCount("a", Quotas::kClaimsPerHour, t, 3));
  EXPECT_TRUE(q.TryCount("a", Quotas::kClaimsPerHour, t + 11, 3)) << "a new hour";
  EXPECT_EQ(q.Count("a", Quotas::kClaimsPerHour, t + 11), 1);
  EXPECT_EQ(q.Count("a", Quotas::kClaimsPerHour, t), 0) << "the old window is gone";
  // Recovery adds what each writer counted; an older window adds nothing.
  q.Add("c", Quotas::kTasksPerMonth, Quotas::Window(Quotas::kTasksPerMonth, t).first, 5);
  q.Add("c", Quotas::kTasksPerMonth, 0, 7);
  EXPECT_EQ(q.Count("c", Quotas::kTasksPerMonth, t), 5);
  EXPECT_TRUE(q.TryCount("c", Quotas::kTasksPerMonth, t, 6));
  EXPECT_FALSE(q.TryCount("c", Quotas::kTasksPerMonth, t, 6));
  EXPECT_TRUE(q.TryCount("c", Quotas::kTasksPerMonth, t, 0)) << "0 is unlimited";
}

TEST(QuotasTest, AWorkerCountsOnceWhateverItHolds) {
  Quotas q;
  EXPECT_TRUE(q.TryHold("a", "w1", 2));
  EXPECT_TRUE(q.TryHold("a", "w1", 2));
  EXPECT_TRUE(q.TryHold("a", "w2", 2));
  EXPECT_FALSE(q.TryHold("a", "w3", 2));
  EXPECT_TRUE(q.TryHold("a", "w2", 2)) << "a worker already holding may take more";
  EXPECT_EQ(q.WorkersInUse("a"), 2);
  q.Release("a", "w1");
  EXPECT_FALSE(q.TryHold("a", "w3", 2)) << "w1 still holds one lease";
  q.Release("a", "w1");
  EXPECT_TRUE(q.TryHold("a", "w3", 2));
  EXPECT_EQ(q.WorkersInUse("a"), 2);
  EXPECT_EQ(q.WorkersInUse("b"), 0);
}

}  // namespace
}  // namespace runlog::services

namespace runlog::services {
namespace {

TEST(PlansTest, AFileChangesTheFieldsItGivesAndAddsPlans) {
  auto plans = PlansFromJson(R"({"plans":[{"name":"free","workers":3},
                                          {"name":"team","tasks_per_month":10000}]})");
  ASSERT_TRUE(plans.has_value()) << plans.error().ToString();
  const Plan* free = nullptr;
  const Plan* team = nullptr;
  for (const Plan& p : *plans) {
    if (p.name == "free") free = &p;
    if (p.name == "team") team = &p;
  }
  ASSERT_NE(free, nullptr);
  ASSERT_NE(team, nullptr);
  EXPECT_EQ(free->workers, 3);
  EXPECT_EQ(free->tasks_per_month, 200) << "a field left out keeps its built-in value";
  EXPECT_EQ(team->tasks_per_month, 10000);
  EXPECT_EQ(team->workers, 0);
  EXPECT_EQ(plans->size(), DefaultPlans().size() + 1);
  EXPECT_FALSE(PlansFromJson(R"({"plans":[{"workers":1}]})").has_value());
  EXPECT_FALSE(PlansFromJson(R"({"plans":[{"name":"x","workers":-1}]})").has_value());
  EXPECT_FALSE(PlansFromJson(R"([])").has_value());
}

}  // namespace
}  // namespace runlog::services
