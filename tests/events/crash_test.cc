// Crash safety of the embedded log: a child appends from many appenders and
// prints each acknowledged record; it is killed with SIGKILL at a random
// moment, 20 times over the same data dir. After each kill the log is
// reopened and must hold every acknowledged record intact at its offset, with
// dense offsets and no event twice. A second test runs the same checker
// against a log that deliberately acknowledges before writing, and requires
// the checker to catch it: proof that the first test can fail.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "events/event_log.h"
#include "tests/testing/temp_dir.h"

namespace runlog::events {
namespace {

struct Acked {
  uint32_t partition;
  uint64_t offset;
  std::string event_id;
};

// Runs the child until `kill_after` past its first acknowledgement, SIGKILLs
// it, and returns every acknowledgement it printed in full.
std::vector<Acked> RunAndKill(const std::string& dir, bool ack_before_write,
                              std::chrono::milliseconds kill_after) {
  int out[2];
  EXPECT_EQ(::pipe(out), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::close(out[0]);
    ::close(out[1]);
    const char* mode = ack_before_write ? "--ack-before-write" : nullptr;
    ::execl(CRASH_CHILD_PATH, CRASH_CHILD_PATH, dir.c_str(), mode, nullptr);
    ::_exit(127);
  }
  ::close(out[1]);
  std::string buffer;
  char chunk[65536];
  bool killed = false;
  auto deadline = std::chrono::steady_clock::time_point::max();
  while (true) {
    if (!killed && std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
    ssize_t n = ::read(out[0], chunk, sizeof chunk);
    if (n <= 0) break;  // EOF: the child is gone
    buffer.append(chunk, n);
    if (deadline == std::chrono::steady_clock::time_point::max()) {
      deadline = std::chrono::steady_clock::now() + kill_after;
    }
  }
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "child ended on its own, status " << status;

  std::vector<Acked> acked;
  std::istringstream lines(buffer.substr(0, buffer.rfind('\n') + 1));  // drop a torn last line
  Acked a;
  while (lines >> a.partition >> a.offset >> a.event_id) acked.push_back(a);
  return acked;
}

// Reopens the log and returns what is wrong with it against every
// acknowledgement so far; empty means all is well.
std::vector<std::string> Check(const std::string& dir, const std::vector<Acked>& all_acked) {
  std::vector<std::string> problems;
  LogOptions options;
  options.data_dir = dir;
  options.partitions = 4;
  auto log = OpenEventLog(options);
  if (!log) return {"reopen failed: " + log.error().ToString()};
  std::map<std::pair<uint32_t, uint64_t>, std::string> found;
  std::set<std::string> ids;
  for (uint32_t p = 0; p < 4; ++p) {
    uint64_t end = (*log)->EndOffset(p).value();
    auto records = (*log)->Read(p, 0, end);  // fails on any gap or bad checksum
    if (!records) {
      problems.push_back(records.error().ToString());
      continue;
    }
    for (const LogRecord& r : *records) {
      if (!ids.insert(r.event.event_id).second) problems.push_back("duplicate " + r.event.event_id);
      if (r.event.payload != "{\"id\":\"" + r.event.event_id + "\"}") {
        problems.push_back("payload of " + r.event.event_id + " altered");
      }
      found[{p, r.offset}] = r.event.event_id;
    }
  }
  for (const Acked& a : all_acked) {
    auto it = found.find({a.partition, a.offset});
    if (it == found.end()) {
      problems.push_back("acknowledged " + a.event_id + " at " + std::to_string(a.partition) + "/" +
                         std::to_string(a.offset) + " is missing");
    } else if (it->second != a.event_id) {
      problems.push_back("offset " + std::to_string(a.partition) + "/" + std::to_string(a.offset) +
                         " holds " + it->second + ", acknowledged " + a.event_id);
    }
  }
  return problems;
}

struct Rounds {
  int rounds_with_problems = 0;
  size_t acknowledged = 0;
  std::vector<std::string> first_problems;
};

Rounds KillRepeatedly(int rounds, bool ack_before_write, bool stop_at_first_problem) {
  runlog::testing::TempDir dir;
  std::mt19937 rng(20261123);
  std::uniform_int_distribution<int> delay_ms(5, 150);
  std::vector<Acked> all;
  Rounds result;
  for (int round = 0; round < rounds; ++round) {
    auto acked = RunAndKill(dir.path(), ack_before_write, std::chrono::milliseconds(delay_ms(rng)));
    all.insert(all.end(), acked.begin(), acked.end());
    auto problems = Check(dir.path(), all);
    if (!problems.empty()) {
      if (result.rounds_with_problems++ == 0) result.first_problems = problems;
      if (stop_at_first_problem) break;
      // Forget what this round lost so the next rounds are judged on their own.
      all.clear();
    }
  }
  result.acknowledged = all.size();
  return result;
}

TEST(CrashTest, KillNineNeverLosesOrDuplicatesAnAcknowledgedRecord) {
  Rounds r = KillRepeatedly(20, /*ack_before_write=*/false, /*stop_at_first_problem=*/false);
  EXPECT_EQ(r.rounds_with_problems, 0);
  for (size_t i = 0; i < std::min<size_t>(r.first_problems.size(), 10); ++i) {
    ADD_FAILURE() << r.first_problems[i];
  }
  EXPECT_GT(r.acknowledged, 1000u) << "the child acknowledged too little to prove anything";
  std::printf("acknowledged records checked over 20 kills: %zu\n", r.acknowledged);
}

TEST(CrashTest, CheckerCatchesALogThatAcknowledgesBeforeWriting) {
  Rounds r = KillRepeatedly(20, /*ack_before_write=*/true, /*stop_at_first_problem=*/true);
  ASSERT_GT(r.rounds_with_problems, 0)
      << "20 kills of a log that acknowledges before writing went unnoticed";
  std::printf("caught: %s\n", r.first_problems.front().c_str());
}

}  // namespace
}  // namespace runlog::events
