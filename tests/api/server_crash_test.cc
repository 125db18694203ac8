// runlogd killed with SIGKILL under a load of concurrent creates, claims and
// completes, 9 times over one data dir, then stopped with SIGTERM under the
// same load. Its writers checkpoint every 64 events, so kills land in and
// between checkpoint writes, and each restart recovers from a checkpoint and
// the log after it. After each restart: every acknowledged create is there,
// every acknowledged complete is succeeded, no task is in an impossible state
// or listed twice, the views the server built equal views rebuilt from the
// log, byte for byte, and `runlog audit` finds every transition in the log
// legal (a writer that recovered a wrong state would append illegal ones).

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "tests/testing/crash_checks.h"
#include "tests/testing/http_client.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace runlog {
namespace {

using namespace std::chrono_literals;
using runlog::testing::HttpClient;
using runlog::testing::Process;

constexpr char kKey[] = "rl_test_crash_admin";

// Starts runlogd; `*from_checkpoint` counts the partitions whose recovery
// began from a writer's checkpoint.
std::unique_ptr<Process> StartServer(const std::string& data, std::string* url,
                                     int* from_checkpoint = nullptr) {
  auto server = std::make_unique<Process>(std::vector<std::string>{
      RUNLOGD_PATH, "--listen", "127.0.0.1:0", "--data", data, "--partitions", "4",
      "--checkpoint-every-events", "64", "--checkpoint-every-ms", "20"});
  static const std::regex kServing(R"(serving (http://127\.0\.0\.1:\d+))");
  static const std::regex kResumed(R"(checkpoint covers offset [1-9]\d*)");
  while (auto line = server->ReadStderrLine(30s)) {
    std::smatch m;
    if (from_checkpoint != nullptr && std::regex_search(*line, kResumed)) ++*from_checkpoint;
    if (std::regex_search(*line, m, kServing)) {
      *url = m[1];
      return server;
    }
  }
  return nullptr;
}

struct Acked {
  std::mutex mu;
  std::set<std::string> created;
  std::set<std::string> completed;
};

// Clients create, claim and complete until told to stop.
void Load(const std::string& url, std::atomic<bool>& stop, Acked& acked, int seed) {
  HttpClient client(url);
  client.SetKey(kKey);
  std::mt19937 rng(seed);
  while (!stop.load()) {
    if (rng() % 2 == 0) {
      auto r = client.Post("/v1/tasks", R"({"type":"crash","input":{"n":1}})");
      if (r.status == 201) {
        std::lock_guard lock(acked.mu);
        acked.created.insert(r.Str("id"));
      }
    } else {
      auto c = client.Post("/v1/tasks/claim", R"({"types":["crash"]})");
      if (c.status != 200 || !c.json.IsObject() || !c["task"].IsObject()) continue;
      const std::string id = c["task"]["id"].GetString();
      auto done = client.Post("/v1/tasks/" + id + "/complete",
                              std::string(R"({"result":{"ok":true},"lease_id":")") +
                                  c["lease"]["lease_id"].GetString() + "\"}");
      if (done.status == 200) {
        std::lock_guard lock(acked.mu);
        acked.completed.insert(id);
      }
    }
  }
}

TEST(ServerCrash, KillNineUnderLoadLosesNothingAcknowledged) {
  ::setenv("RUNLOG_ADMIN_KEY", kKey, 1);
  runlog::testing::TempDir dir;
  const std::string data = dir / "data";
  Acked acked;
  std::mt19937 rng(20261123);
  for (int round = 0; round < 10; ++round) {
    std::string url;
    int from_checkpoint = 0;
    auto server = StartServer(data, &url, &from_checkpoint);
    ASSERT_TRUE(server) << "round " << round << ": runlogd did not start";
    if (round > 0) {
      EXPECT_GT(from_checkpoint, 0) << "round " << round << ": no checkpoint used";
    }
    // Everything acknowledged in earlier rounds survived the kill.
    HttpClient check(url);
    check.SetKey(kKey);
    for (const std::string& id : acked.created) {
      auto r = check.Get("/v1/tasks/" + id);
      ASSERT_EQ(r.status, 200) << "round " << round << ": acknowledged task " << id << " lost";
      const std::string status = r.Str("status");
      EXPECT_TRUE(status == "queued" || status == "running" || status == "succeeded") << status;
      if (acked.completed.count(id)) {
        EXPECT_EQ(status, "succeeded") << id;
      }
    }
    std::set<std::string> listed;
    std::string cursor;
    do {
      auto page = check.Get("/v1/tasks?limit=200" + (cursor.empty() ? "" : "&cursor=" + cursor));
      ASSERT_EQ(page.status, 200) << page.body;
      for (const auto& t : page["tasks"].GetArray()) {
        EXPECT_TRUE(listed.insert(t["id"].GetString()).second) << "listed twice";
      }
      cursor = page.Str("next_cursor");
    } while (!cursor.empty());
    for (const std::string& id : acked.created) EXPECT_TRUE(listed.count(id)) << id;

    // Load, then SIGKILL at a random moment.
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int c = 0; c < 8; ++c) {
      clients.emplace_back([&, c] { Load(url, stop, acked, round * 100 + c); });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 500));
    // The last round stops gracefully: SIGTERM drains answers in flight and
    // must lose nothing acknowledged either.
    const bool graceful = round == 9;
    server->Signal(graceful ? SIGTERM : SIGKILL);
    const int code = server->Wait();
    if (graceful) {
      EXPECT_EQ(code, 0) << "runlogd did not stop cleanly on SIGTERM";
    }
    stop.store(true);
    for (auto& t : clients) t.join();

    // The views a restarted server catches up to equal a rebuild from the log.
    std::string url2;
    runlog::testing::ExpectViewsEqualARebuild(
        data, [&] { return StartServer(data, &url2); }, "round " + std::to_string(round));
    if (HasFatalFailure()) return;
    Process audit({RUNLOG_PATH, "audit", "--data", data, "--partitions", "4"});
    EXPECT_EQ(audit.Wait(), 0) << "round " << round << ": " << audit.DrainStderr();
  }
  EXPECT_GT(acked.created.size(), 100u) << "too little load to prove anything";
  EXPECT_GT(acked.completed.size(), 20u);
  std::printf("acknowledged creates %zu, completes %zu over 9 kills and a SIGTERM\n",
              acked.created.size(), acked.completed.size());
}

}  // namespace
}  // namespace runlog
