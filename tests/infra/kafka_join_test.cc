// A fresh runlogd joining a Kafka topic that already holds a history: a
// first node (the same Application runlogd runs, in this process) writes
// 50,000 events to `runlog mock-kafka`, then runlogd starts with an empty
// data directory on that topic. It must recover its writers and build its
// views from the topic, report progress while it does, become ready and serve
// every task; and a SIGTERM during that catch-up must end it at once with 0.

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <regex>
#include <set>

#include "infra/app/application.h"
#include "tests/testing/http_client.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace runlog {
namespace {

using namespace std::chrono_literals;
using runlog::testing::Process;
using runlog::testing::TempDir;

constexpr char kAdminKey[] = "rl_test_kafka_join_admin";
// 8, not 4: the mock keeps at most 5 MiB a partition, and records are JSON on Kafka.
constexpr uint32_t kPartitions = 8;
// Each task is three events (created, planned, queued): 50,001 in all.
constexpr int kTasks = 16'667;

// Creates kTasks queued tasks through a first node's writers, at most
// kInFlight at a time; returns their ids.
std::set<std::string> WriteHistory(const std::string& bootstrap, const std::string& data_dir) {
  app::Config config;
  config.log.uri = "kafka://" + bootstrap;
  config.log.partitions = kPartitions;
  config.log.data_dir = data_dir;
  config.http.port = 0;
  config.executor_slots = 0;
  config.admin_key = kAdminKey;
  app::Application first(std::move(config));
  if (auto s = first.Start(); !s) {
    ADD_FAILURE() << s.error().ToString();
    return {};
  }
  constexpr int kInFlight = 2000;
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  std::set<std::string> ids;
  std::string first_error;
  for (int i = 0; i < kTasks; ++i) {
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return in_flight < kInFlight; });
      ++in_flight;
    }
    services::CreateTask c;
    c.caller = {"acct_admin", "key_test"};
    c.type = "joined";
    c.input = R"({"n":)" + std::to_string(i) + "}";
    c.limits = "{}";
    first.tasks().Create(std::move(c), [&](Result<services::CommandResult> r) {
      std::lock_guard lock(mu);
      if (r) {
        ids.insert(r->task.id);
      } else if (first_error.empty()) {
        first_error = r.error().ToString();
      }
      --in_flight;
      cv.notify_all();
    });
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return in_flight == 0; });
  EXPECT_EQ(first_error, "");
  return ids;
}

// Reads runlogd's stderr until a line matches `pattern`; the match, or "".
std::string WaitLine(Process& server, const std::regex& pattern, std::string* seen) {
  while (auto line = server.ReadStderrLine(60s)) {
    *seen += *line + "\n";
    std::smatch m;
    if (std::regex_search(*line, m, pattern)) return m.size() > 1 ? m[1].str() : m[0].str();
  }
  return "";
}

TEST(KafkaJoin, AFreshNodeCatchesUpOnAnExistingTopicAndServesEveryTask) {
  TempDir dir;
  Process mock(
      {RUNLOG_PATH, "mock-kafka", "--brokers", "1", "--partitions", std::to_string(kPartitions)});
  auto bootstrap = mock.ReadStdoutLine(20s);
  ASSERT_TRUE(bootstrap.has_value()) << mock.DrainStderr();
  const std::set<std::string> ids = WriteHistory(*bootstrap, dir / "first");
  ASSERT_EQ(ids.size(), static_cast<size_t>(kTasks));

  ::setenv("RUNLOG_ADMIN_KEY", kAdminKey, 1);
  const std::vector<std::string> argv = {RUNLOGD_PATH,
                                         "--listen",
                                         "127.0.0.1:0",
                                         "--log",
                                         "kafka://" + *bootstrap,
                                         "--partitions",
                                         std::to_string(kPartitions),
                                         "--data"};
  {  // A SIGTERM while the fresh node is still reading the topic: exit 0, at once.
    std::vector<std::string> args = argv;
    args.push_back(dir / "stopped");
    Process server(args);
    std::string seen;
    ASSERT_NE(WaitLine(server, std::regex("recovering partition \\d+: offset"), &seen), "")
        << seen << server.DrainStderr();
    server.Signal(SIGTERM);
    EXPECT_EQ(server.Wait(), 0);
    const std::string rest = seen + server.DrainStderr();
    EXPECT_NE(rest.find("before serving"), std::string::npos) << rest;
    EXPECT_EQ(rest.find("serving http"), std::string::npos) << rest;
  }

  std::vector<std::string> args = argv;
  args.push_back(dir / "fresh");
  Process server(args);
  std::string seen;
  const std::string base =
      WaitLine(server, std::regex(R"(serving (http://127\.0\.0\.1:\d+))"), &seen);
  ASSERT_FALSE(base.empty()) << seen << server.DrainStderr();
  // It said where it was while it read the topic: every partition, with its end.
  for (uint32_t p = 0; p < kPartitions; ++p) {
    EXPECT_NE(seen.find("recovering partition " + std::to_string(p) + ": offset"),
              std::string::npos)
        << seen;
    EXPECT_NE(seen.find("catching up partition " + std::to_string(p) + ": offset"),
              std::string::npos)
        << seen;
  }
  runlog::testing::HttpClient client(base);
  client.SetKey(kAdminKey);
  // A cluster node: ready once the group gave every partition a writer.
  EXPECT_TRUE(runlog::testing::WaitReady(client, 30s)) << client.Get("/readyz").body;
  // The views built from the topic list every task, queued.
  std::set<std::string> listed;
  std::string cursor;
  for (int page = 0; page < kTasks / 200 + 2; ++page) {
    auto r =
        client.Get("/v1/tasks?type=joined&limit=200" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(r.status, 200) << r.body;
    for (const auto& t : r["tasks"].GetArray()) {
      EXPECT_STREQ(t["status"].GetString(), "queued");
      listed.insert(t["id"].GetString());
    }
    cursor = r.Str("next_cursor");
    if (cursor.empty()) break;
  }
  EXPECT_EQ(listed, ids);
  // The writers recovered them: a claim hands one out, and the node appends
  // after the history it read.
  auto first = client.Post("/v1/tasks/claim", R"({"types":["joined"]})");
  ASSERT_EQ(first.status, 200) << first.body;
  const std::string claimed_id = first["task"]["id"].GetString();
  EXPECT_TRUE(ids.contains(claimed_id)) << first.body;
  auto done = client.Post("/v1/tasks/" + claimed_id + "/complete", R"({"result":{"ok":true}})");
  EXPECT_EQ(done.status, 200) << done.body;
  auto created = client.Post("/v1/tasks", R"({"type":"joined","input":{"n":-1}})");
  EXPECT_EQ(created.status, 201) << created.body;
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(), 0);
  mock.Signal(SIGTERM);
  EXPECT_EQ(mock.Wait(), 0);
}

}  // namespace
}  // namespace runlog
