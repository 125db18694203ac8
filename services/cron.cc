#include "services/cron.h"

#include <absl/time/civil_time.h>

#include <array>
#include <charconv>
#include <vector>

#include "infra/base/error_codes.h"

namespace runlog::services {
namespace {

std::vector<std::string_view> SplitOn(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t at = text.find(sep, start);
    out.push_back(
        text.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

constexpr std::array<std::string_view, 12> kMonths = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                      "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<std::string_view, 7> kWeekdays = {"SUN", "MON", "TUE", "WED",
                                                       "THU", "FRI", "SAT"};

// A value of a field: a number or (months, weekdays) a name.
std::optional<int> Value(std::string_view text, int first_name_value, const std::string_view* names,
                         size_t name_count) {
  int v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc() && end == text.data() + text.size()) return v;
  std::string upper(text);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (size_t i = 0; i < name_count; ++i) {
    if (upper == names[i]) return first_name_value + static_cast<int>(i);
  }
  return std::nullopt;
}

// Sets the bits `field` names, within [lo, hi]; false if it is malformed.
template <size_t N>
bool ParseField(std::string_view field, int lo, int hi, std::bitset<N>* bits, int first_name,
                const std::string_view* names, size_t name_count) {
  if (field.empty()) return false;
  for (std::string_view part : SplitOn(field, ',')) {
    int step = 1;
    if (size_t slash = part.find('/'); slash != std::string_view::npos) {
      auto s = Value(part.substr(slash + 1), 0, nullptr, 0);
      if (!s || *s <= 0) return false;
      step = *s;
      part = part.substr(0, slash);
    }
    int from = lo, to = hi;
    if (part != "*") {
      const size_t dash = part.find('-');
      auto a = Value(part.substr(0, dash), first_name, names, name_count);
      if (!a) return false;
      from = *a;
      to = *a;
      if (dash != std::string_view::npos) {
        auto b = Value(part.substr(dash + 1), first_name, names, name_count);
        if (!b) return false;
        to = *b;
      } else if (step != 1) {
        to = hi;  // "a/n": from a to the end
      }
    }
    if (from < lo || to > hi || from > to) return false;
    for (int v = from; v <= to; v += step) bits->set(static_cast<size_t>(v));
  }
  return true;
}

bool DayMatches(const Cron& c, const absl::CivilDay& day) {
  const bool dom = c.days.test(static_cast<size_t>(day.day()));
  int wd = 0;
  switch (absl::GetWeekday(day)) {
    case absl::Weekday::sunday:
      wd = 0;
      break;
    case absl::Weekday::monday:
      wd = 1;
      break;
    case absl::Weekday::tuesday:
      wd = 2;
      break;
    case absl::Weekday::wednesday:
      wd = 3;
      break;
    case absl::Weekday::thursday:
      wd = 4;
      break;
    case absl::Weekday::friday:
      wd = 5;
      break;
    case absl::Weekday::saturday:
      wd = 6;
      break;
  }
  const bool dow = c.weekdays.test(static_cast<size_t>(wd));
  if (c.days_restricted && c.weekdays_restricted) return dom || dow;
  return dom && dow;
}

// The first civil second at or after `t` that `c` names.
std::optional<absl::CivilSecond> NextCivil(const Cron& c, absl::CivilSecond t) {
  const absl::CivilSecond limit = t + 8 * 366 * 86400;
  while (t < limit) {
    if (!c.months.test(static_cast<size_t>(t.month()))) {
      t = absl::CivilSecond(absl::CivilMonth(t) + 1);
    } else if (!DayMatches(c, absl::CivilDay(t))) {
      t = absl::CivilSecond(absl::CivilDay(t) + 1);
    } else if (!c.hours.test(static_cast<size_t>(t.hour()))) {
      t = absl::CivilSecond(absl::CivilHour(t) + 1);
    } else if (!c.minutes.test(static_cast<size_t>(t.minute()))) {
      t = absl::CivilSecond(absl::CivilMinute(t) + 1);
    } else if (!c.seconds.test(static_cast<size_t>(t.second()))) {
      t += 1;
    } else {
      return t;
    }
  }
  return std::nullopt;
}

}  // namespace

Result<Cron> ParseCron(std::string_view text) {
  std::string expanded(text);
  if (expanded == "@yearly" || expanded == "@annually") expanded = "0 0 1 1 *";
  if (expanded == "@monthly") expanded = "0 0 1 * *";
  if (expanded == "@weekly") expanded = "0 0 * * 0";
  if (expanded == "@daily" || expanded == "@midnight") expanded = "0 0 * * *";
  if (expanded == "@hourly") expanded = "0 * * * *";
  std::vector<std::string_view> fields;
  for (std::string_view f : SplitOn(expanded, ' ')) {
    if (!f.empty()) fields.push_back(f);
  }
  if (fields.size() != 5 && fields.size() != 6) {
    return Fail(codes::kValidationError,
                "a schedule has 5 fields (minute hour day month weekday) or 6 (seconds first), "
                "got " +
                    std::to_string(fields.size()),
                R"({"field":"schedule"})");
  }
  Cron c;
  if (fields.size() == 5) fields.insert(fields.begin(), "0");
  static constexpr const char* kNames[] = {"seconds",      "minutes", "hours",
                                           "day of month", "month",   "day of week"};
  auto bad = [&](int i) {
    return Fail(codes::kValidationError,
                std::string("the schedule's ") + kNames[i] + " field '" +
                    std::string(fields[static_cast<size_t>(i)]) + "' is not valid",
                R"({"field":"schedule"})");
  };
  if (!ParseField(fields[0], 0, 59, &c.seconds, 0, nullptr, 0)) return bad(0);
  if (!ParseField(fields[1], 0, 59, &c.minutes, 0, nullptr, 0)) return bad(1);
  if (!ParseField(fields[2], 0, 23, &c.hours, 0, nullptr, 0)) return bad(2);
  if (!ParseField(fields[3], 1, 31, &c.days, 0, nullptr, 0)) return bad(3);
  if (!ParseField(fields[4], 1, 12, &c.months, 1, kMonths.data(), kMonths.size())) return bad(4);
  std::bitset<8> weekdays;
  if (!ParseField(fields[5], 0, 7, &weekdays, 0, kWeekdays.data(), kWeekdays.size())) {
    return bad(5);
  }
  for (size_t i = 0; i < 7; ++i) c.weekdays[i] = weekdays[i];
  if (weekdays[7]) c.weekdays.set(0);  // 7 is Sunday too
  c.days_restricted = fields[3] != "*" && fields[3] != "?";
  c.weekdays_restricted = fields[5] != "*" && fields[5] != "?";
  return c;
}

Result<absl::TimeZone> LoadZone(const std::string& name) {
  absl::TimeZone zone;
  if (name.empty() || !absl::LoadTimeZone(name, &zone)) {
    return Fail(codes::kValidationError, "unknown time zone '" + name + "' (use an IANA name)",
                R"({"field":"timezone"})");
  }
  return zone;
}

std::optional<int64_t> NextFire(const Cron& cron, const absl::TimeZone& zone, int64_t after_ms) {
  const absl::Time after = absl::FromUnixMillis(after_ms);
  absl::CivilSecond t = absl::ToCivilSecond(after, zone) + 1;
  while (true) {
    auto civil = NextCivil(cron, t);
    if (!civil) return std::nullopt;
    const absl::TimeZone::TimeInfo info = zone.At(*civil);
    // Skipped by a gap: at its end. Repeated: its first occurrence.
    absl::Time at = info.kind == absl::TimeZone::TimeInfo::SKIPPED ? info.trans : info.pre;
    if (at > after) return absl::ToUnixMillis(at);
    t = *civil + 1;  // already past (a repeat, or the same gap's end): the next
  }
}

}  // namespace runlog::services
