#pragma once
// Cron schedules for triggers: 5 fields (minute hour day-of-month month
// day-of-week) or 6 (a seconds field first), each `*`, a value, a range
// `a-b`, a step `*/n` or `a-b/n`, or a comma list of those; month and
// weekday names (JAN, MON) and 7 for Sunday; and @yearly, @monthly,
// @weekly, @daily, @hourly. When both day fields are restricted a day
// matching either counts (as in Vixie cron).
//
// Times are civil times in an IANA time zone (Abseil's time zone library):
// a time a spring-forward gap skips fires at the end of the gap, once; a
// time a fall-back repeats fires once, at its first occurrence.
//
// Thread contract: a Cron is immutable; Next is pure.

#include <absl/time/time.h>

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "infra/base/result.h"

namespace runlog::services {

struct Cron {
  std::bitset<60> seconds, minutes;
  std::bitset<24> hours;
  std::bitset<32> days;     // 1-31
  std::bitset<13> months;   // 1-12
  std::bitset<7> weekdays;  // 0 = Sunday
  bool days_restricted = false, weekdays_restricted = false;
};

// VALIDATION_ERROR naming the field that is wrong.
[[nodiscard]] Result<Cron> ParseCron(std::string_view text);
// INVALID_ARGUMENT for a zone name the system's tz database lacks.
[[nodiscard]] Result<absl::TimeZone> LoadZone(const std::string& name);
// The first time strictly after `after_ms` (Unix ms) that `cron` names in
// `zone`, in Unix ms (whole seconds); none within the next eight years.
std::optional<int64_t> NextFire(const Cron& cron, const absl::TimeZone& zone, int64_t after_ms);

}  // namespace runlog::services
