#include "infra/base/ids.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

namespace runlog::infra {
namespace {

bool Base32(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7'); });
}

TEST(RandomIdsTest, BothKindsArePrefixAnd26Base32CharsAndUnique) {
  RandomIds ids;
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {
    for (const std::string& id : {ids.Next("evt_"), ids.NextSortable("task_")}) {
      const size_t prefix = id.find('_') + 1;
      ASSERT_EQ(id.size(), prefix + 26) << id;
      ASSERT_TRUE(Base32(std::string_view(id).substr(prefix))) << id;
      ASSERT_TRUE(seen.insert(id).second) << "repeated " << id;
    }
  }
}

TEST(RandomIdsTest, SortableIdsMadeInALaterMillisecondSortAfter) {
  RandomIds ids;
  std::string previous = ids.NextSortable("task_");
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const std::string next = ids.NextSortable("task_");
    ASSERT_LT(previous, next);
    // The time is the first 10 chars; the random rest differs between ids.
    ASSERT_NE(previous.substr(15), next.substr(15));
    previous = next;
  }
}

TEST(RandomIdsTest, SortableIdsStartWithTheTimeInMilliseconds) {
  RandomIds ids;
  const auto ms = [] {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  };
  const uint64_t before = ms();
  const std::string id = ids.NextSortable("task_");
  const uint64_t after = ms();
  static constexpr std::string_view kSorted = "234567abcdefghijklmnopqrstuvwxyz";
  uint64_t decoded = 0;
  for (char c : id.substr(5, 10)) decoded = decoded * 32 + kSorted.find(c);
  EXPECT_GE(decoded, before);
  EXPECT_LE(decoded, after);
}

}  // namespace
}  // namespace runlog::infra
