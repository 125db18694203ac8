// The small renderers every answer uses: times and canonical payloads.

#include "api/render.h"

#include <gtest/gtest.h>

namespace runlog::api {
namespace {

TEST(RenderTest, IsoTimeIsUtcWithMilliseconds) {
  EXPECT_EQ(IsoTime(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(IsoTime(1'790'000'000'050), "2026-09-21T14:13:20.050Z");
  EXPECT_EQ(IsoTime(1'700'000'000'999), "2023-11-14T22:13:20.999Z");
  EXPECT_EQ(IsoTime(253'402'300'799'999), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(IsoTimeJson(0), "null");
  EXPECT_EQ(IsoTimeJson(1'790'000'000'050), "\"2026-09-21T14:13:20.050Z\"");
}

TEST(RenderTest, ParseTimeTakesRfc3339DatesAndUnixMillisecondsAndNothingElse) {
  int64_t ms = -1;
  ASSERT_TRUE(ParseTime("2026-09-21T14:13:20.050Z", &ms));
  EXPECT_EQ(ms, 1'790'000'000'050);
  ASSERT_TRUE(ParseTime(IsoTime(1'700'000'000'999), &ms));  // what answers carry
  EXPECT_EQ(ms, 1'700'000'000'999);
  ASSERT_TRUE(ParseTime("2026-09-21T16:13:20+02:00", &ms));
  EXPECT_EQ(ms, 1'790'000'000'000);
  ASSERT_TRUE(ParseTime("2026-09-21t09:43:20.5-04:30", &ms));
  EXPECT_EQ(ms, 1'790'000'000'500);
  ASSERT_TRUE(ParseTime("2026-09-21", &ms));
  EXPECT_EQ(ms, 1'790'000'000'000 - (14 * 3600 + 13 * 60 + 20) * 1000);
  ASSERT_TRUE(ParseTime("2028-02-29", &ms));  // a leap year's
  ASSERT_TRUE(ParseTime("2026-12-31T23:59:59Z", &ms));
  ASSERT_TRUE(ParseTime("1790000000050", &ms));
  EXPECT_EQ(ms, 1'790'000'000'050);
  for (const char* bad :
       {"", "yesterday", "2026-13-01", "2026-09-21T25:00:00Z", "2026-09-21T14:13Z",
        "2026-09-21T14:13:20", "2026-09-21T14:13:20.Z", "2026-09-21T14:13:20+2",
        "2026-09-21 14:13:20Z", " 2026-09-21", "1969-12-31", "-5", "99999999999999999999",
        "2026-02-29", "2026-02-30", "2026-04-31", "2026-09-32"}) {
    EXPECT_FALSE(ParseTime(bad, &ms)) << bad;
  }
}

TEST(RenderTest, PayloadSortsKeysWhateverTheirCommonPrefix) {
  // Keys that agree on their first 8 bytes, and one shorter than 8.
  const std::string built = events::Payload()
                                .Int("execution_started_at", 2)
                                .Str("execution", "x")
                                .Raw("execution_finished_at", "")
                                .Bool("exec", true)
                                .Str("a\"b", "q\"\n")
                                .Build();
  EXPECT_EQ(built, R"({"a\"b":"q\"\n","exec":true,"execution":"x","execution_finished_at":null,)"
                   R"("execution_started_at":2})");
  EXPECT_EQ(events::Payload().Build(), "{}");
}

}  // namespace
}  // namespace runlog::api
