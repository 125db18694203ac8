// The cron parser and NextFire against a table: field forms, month ends,
// leap years, and both DST changes in two zones (a skipped time fires once
// at the end of the gap; a repeated time fires once, at its first occurrence).

#include "services/cron.h"

#include <absl/time/civil_time.h>
#include <gtest/gtest.h>

namespace runlog::services {
namespace {

int64_t Utc(int y, int mo, int d, int h, int mi, int s = 0) {
  return absl::ToUnixMillis(
      absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone()));
}

struct Case {
  const char* name;
  const char* cron;
  const char* zone;
  int64_t after;
  int64_t want;  // 0: none
};

class CronTable : public ::testing::TestWithParam<Case> {};

TEST_P(CronTable, NextFire) {
  const Case& c = GetParam();
  auto cron = ParseCron(c.cron);
  ASSERT_TRUE(cron) << cron.error().message;
  auto zone = LoadZone(c.zone);
  ASSERT_TRUE(zone) << c.zone;
  auto got = NextFire(*cron, *zone, c.after);
  if (c.want == 0) {
    EXPECT_FALSE(got);
  } else {
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, c.want) << absl::FormatTime(absl::FromUnixMillis(*got), absl::UTCTimeZone());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, CronTable,
    ::testing::Values(
        Case{"EveryMinute", "* * * * *", "UTC", Utc(2026, 1, 1, 0, 0, 30), Utc(2026, 1, 1, 0, 1)},
        Case{"StrictlyAfter", "* * * * *", "UTC", Utc(2026, 1, 1, 0, 1), Utc(2026, 1, 1, 0, 2)},
        Case{"EverySecond", "* * * * * *", "UTC", Utc(2026, 1, 1, 0, 0, 5),
             Utc(2026, 1, 1, 0, 0, 6)},
        Case{"Steps", "*/15 * * * *", "UTC", Utc(2026, 1, 1, 0, 16), Utc(2026, 1, 1, 0, 30)},
        Case{"RangeStep", "0 9-17/4 * * *", "UTC", Utc(2026, 1, 1, 13, 30), Utc(2026, 1, 1, 17, 0)},
        Case{"Names", "0 9 * * MON", "UTC", Utc(2026, 12, 4, 0, 0), Utc(2026, 12, 7, 9, 0)},
        Case{"SundayIsSeven", "0 0 * * 7", "UTC", Utc(2026, 12, 4, 0, 0), Utc(2026, 12, 6, 0, 0)},
        Case{"Daily", "@daily", "UTC", Utc(2026, 12, 4, 10, 0), Utc(2026, 12, 5, 0, 0)},
        // Month ends: the 31st skips the months without one.
        Case{"The31st", "0 0 31 * *", "UTC", Utc(2026, 4, 1, 0, 0), Utc(2026, 5, 31, 0, 0)},
        Case{"Feb30Never", "0 0 30 2 *", "UTC", Utc(2026, 1, 1, 0, 0), 0},
        Case{"LeapDay", "0 0 29 2 *", "UTC", Utc(2026, 3, 1, 0, 0), Utc(2028, 2, 29, 0, 0)},
        Case{"YearEnd", "59 23 31 12 *", "UTC", Utc(2026, 12, 31, 23, 59),
             Utc(2027, 12, 31, 23, 59)},
        // Either day field when both are restricted.
        Case{"DayOrWeekday", "0 0 13 * FRI", "UTC", Utc(2026, 11, 1, 0, 0), Utc(2026, 11, 6, 0, 0)},
        Case{"InAZone", "0 9 * * *", "Europe/Berlin", Utc(2026, 12, 4, 0, 0),
             Utc(2026, 12, 4, 8, 0)},
        // New York springs forward on 2026-03-08 at 02:00 (to 03:00 EDT).
        Case{"SkippedFiresAtTheGapsEnd", "30 2 * * *", "America/New_York", Utc(2026, 3, 7, 12, 0),
             Utc(2026, 3, 8, 7, 0)},
        Case{"DayAfterTheGap", "30 2 * * *", "America/New_York", Utc(2026, 3, 8, 7, 0),
             Utc(2026, 3, 9, 6, 30)},
        Case{"BeforeTheGap", "30 1 * * *", "America/New_York", Utc(2026, 3, 7, 12, 0),
             Utc(2026, 3, 8, 6, 30)},
        // And falls back on 2026-11-01 at 02:00 (to 01:00 EST): 01:30 happens twice.
        Case{"RepeatedFiresOnceFirst", "30 1 * * *", "America/New_York", Utc(2026, 10, 31, 12, 0),
             Utc(2026, 11, 1, 5, 30)},
        Case{"NotAgainInTheRepeat", "30 1 * * *", "America/New_York", Utc(2026, 11, 1, 5, 30),
             Utc(2026, 11, 2, 6, 30)},
        Case{"HourlyThroughTheRepeat", "0 * * * *", "America/New_York", Utc(2026, 11, 1, 5, 0),
             Utc(2026, 11, 1, 7, 0)},
        // Berlin: 2026-03-29 02:00 CET → 03:00 CEST; 2026-10-25 03:00 CEST → 02:00 CET.
        Case{"BerlinGap", "15 2 * * *", "Europe/Berlin", Utc(2026, 3, 28, 12, 0),
             Utc(2026, 3, 29, 1, 0)},
        Case{"BerlinRepeat", "15 2 * * *", "Europe/Berlin", Utc(2026, 10, 24, 12, 0),
             Utc(2026, 10, 25, 0, 15)},
        Case{"BerlinAfterRepeat", "15 2 * * *", "Europe/Berlin", Utc(2026, 10, 25, 0, 15),
             Utc(2026, 10, 26, 1, 15)}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Cron, RefusesWhatIsNotASchedule) {
  for (const char* bad :
       {"", "* * * *", "* * * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *",
        "* * * 13 *", "* * * * 8", "*/0 * * * *", "5-1 * * * *", "x * * * *", "* * * FOO *"}) {
    auto c = ParseCron(bad);
    EXPECT_FALSE(c) << bad;
    if (!c) {
      EXPECT_EQ(c.error().code, "VALIDATION_ERROR") << bad;
    }
  }
  EXPECT_FALSE(LoadZone("Mars/Olympus_Mons"));
  EXPECT_TRUE(LoadZone("Asia/Kolkata"));
}

}  // namespace
}  // namespace runlog::services
