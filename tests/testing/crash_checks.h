#pragma once
// Checks for tests that kill runlogd over a data directory: after a crash,
// the views a restarted server brings forward must equal a rebuild of them
// from the log alone. RUNLOG_PATH names the CLI (the test's CMake target sets
// it); the test links runlog_projections.

#include <gtest/gtest.h>

#include <csignal>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "projections/views.h"
#include "tests/testing/process.h"

namespace runlog::testing {

inline std::vector<std::pair<std::string, std::string>> DumpViews(const std::string& data) {
  auto views = projections::Views::Open(data);
  EXPECT_TRUE(views.has_value());
  if (!views) return {};
  return (*views)->Dump().value_or(std::vector<std::pair<std::string, std::string>>{});
}

// Restarts runlogd with `start` so that it recovers and catches its views up,
// stops it with SIGTERM, and expects those views to equal `runlog rebuild`'s.
// `what` names the round in failures.
inline void ExpectViewsEqualARebuild(const std::string& data,
                                     const std::function<std::unique_ptr<Process>()>& start,
                                     const std::string& what) {
  auto again = start();
  ASSERT_TRUE(again) << what << ": runlogd did not restart";
  again->Signal(SIGTERM);
  ASSERT_EQ(again->Wait(), 0) << what;
  const auto incremental = DumpViews(data);
  Process rebuild({RUNLOG_PATH, "rebuild", "--data", data, "--partitions", "4"});
  ASSERT_EQ(rebuild.Wait(), 0) << rebuild.DrainStderr();
  const auto rebuilt = DumpViews(data);
  ASSERT_EQ(incremental.size(), rebuilt.size()) << what;
  EXPECT_TRUE(incremental == rebuilt) << what << ": views differ from a rebuild";
}

}  // namespace runlog::testing
