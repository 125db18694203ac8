// Torture (docs/reliability.md): runlogd killed with SIGKILL at a random
// moment under a mixed load, cycle after cycle over one data directory, the
// last cycle stopped with SIGTERM instead. The load creates worker tasks
// (each with its own Idempotency-Key), claims and completes them, runs plans
// with a sandboxed step, plans that wait for an approval (and approves
// them), while a schedule trigger fires every second and a webhook receives
// every completion. After every cycle:
//   - every acknowledged create is there, once: its key gives back the same
//     task, and no task is listed twice; every acknowledged complete and
//     approval stuck;
//   - every trigger fire started exactly one task;
//   - the views the restarted server built equal a rebuild from the log;
//   - `runlog audit` is clean: transitions, hashes, the hash chain and the
//     signed checkpoints (checked against DATA/signing.pub).
// At the end every completed task's webhook arrived (at least once).
// RUNLOG_TORTURE_CYCLES sets the cycles (3 by default, for ctest;
// tests/torture.sh runs 50).

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "infra/base/json.h"
#include "tests/testing/crash_checks.h"
#include "tests/testing/http_client.h"
#include "tests/testing/process.h"
#include "tests/testing/receiver.h"
#include "tests/testing/runlogd.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace runlog {
namespace {

using namespace std::chrono_literals;
using runlog::testing::HttpClient;
using runlog::testing::Process;

constexpr char kKey[] = "rl_test_torture_admin";

std::unique_ptr<Process> StartServer(const std::string& data, std::string* url) {
  return runlog::testing::StartRunlogd(
      data, url,
      {"--webhook-allow-private", "--sign-every-ms", "200", "--checkpoint-every-events", "64",
       "--checkpoint-every-ms", "50", "--webhook-first-backoff-ms", "100",
       "--webhook-max-backoff-ms", "500"});
}

struct Acked {
  std::mutex mu;
  std::map<std::string, std::string> created;  // Idempotency-Key -> task id
  std::set<std::string> fresh_keys;            // acknowledged in this cycle
  std::set<std::string> completed;
  std::set<std::string> approved;  // tasks whose approval was acknowledged
  uint64_t commands = 0;           // every acknowledged command
};

const char kSandboxPlan[] = R"J({"type":"sandboxed","input":{"n":3},"plan":{"steps":[
  {"tool":"python_sandbox","input":{"code":"print(sum(range(10)))"}},
  {"tool":"math","input":{"expression":"2+2"}}]}})J";
const char kApprovalPlan[] = R"J({"type":"approved","input":{"to":"ada"},
  "limits":{"max_total_seconds":3600},"plan":{"steps":[
  {"tool":"math","input":{"expression":"6*7"}},
  {"tool":"approval","input":{"type":"draft","timeout_seconds":3600,"data":{"n":1}}},
  {"tool":"template","input":{"template":"ok {{d}}","values":{"d":{"$ref":"/steps/2/output/decision"}}}}]}})J";

void Load(const std::string& url, std::atomic<bool>& stop, Acked& acked, int seed) {
  HttpClient client(url);
  client.SetKey(kKey);
  std::mt19937 rng(seed);
  int n = 0;
  while (!stop.load()) {
    const int op = static_cast<int>(rng() % 8);
    if (op < 3 || op == 5 || op == 6) {  // a create: a worker task, a sandboxed or an approval plan
      const std::string key = "k-" + std::to_string(seed) + "-" + std::to_string(n++);
      const std::string body = op < 3    ? R"({"type":"work","input":{"n":1}})"
                               : op == 5 ? kSandboxPlan
                                         : kApprovalPlan;
      auto r = client.Post("/v1/tasks", body, {"Idempotency-Key: " + key});
      if (r.status == 201 || r.status == 200) {
        std::lock_guard lock(acked.mu);
        acked.created[key] = r.Str("id");
        acked.fresh_keys.insert(key);
        ++acked.commands;
      }
    } else if (op < 5) {  // a claim and its complete
      auto c = client.Post("/v1/tasks/claim", R"({"types":["work"]})");
      if (c.status != 200 || !c.json.IsObject() || !c["task"].IsObject()) continue;
      const std::string id = c["task"]["id"].GetString();
      auto done = client.Post("/v1/tasks/" + id + "/complete",
                              std::string(R"({"result":{"ok":true},"lease_id":")") +
                                  c["lease"]["lease_id"].GetString() + "\"}");
      if (done.status == 200) {
        std::lock_guard lock(acked.mu);
        acked.completed.insert(id);
        acked.commands += 2;
      }
    } else {  // approve a waiting artifact
      auto listed = client.Get("/v1/artifacts?approval_status=pending&limit=1");
      if (listed.status != 200 || !listed["artifacts"].IsArray() || listed["artifacts"].Empty()) {
        continue;
      }
      const auto& a = listed["artifacts"][0];
      const std::string task = a["task_id"].GetString();
      auto ok = client.Post(
          std::string("/v1/artifacts/") + a["artifact_id"].GetString() + "/approve", "{}");
      if (ok.status == 200) {
        std::lock_guard lock(acked.mu);
        acked.approved.insert(task);
        ++acked.commands;
      }
    }
  }
}

int Cycles() {
  const char* env = std::getenv("RUNLOG_TORTURE_CYCLES");
  return env != nullptr ? std::max(1, std::atoi(env)) : 3;
}

TEST(Torture, KillNineUnderMixedLoadLosesAndDoublesNothing) {
  ::setenv("RUNLOG_ADMIN_KEY", kKey, 1);
  runlog::testing::TempDir dir;
  const std::string data = dir / "data";
  runlog::testing::Receiver receiver([](const runlog::testing::Receiver::Request&) { return 200; });
  Acked acked;
  std::mt19937 rng(20261205);
  const int cycles = Cycles();
  std::string trigger_id;
  for (int cycle = 0; cycle <= cycles; ++cycle) {
    std::string url;
    auto server = StartServer(data, &url);
    ASSERT_TRUE(server) << "cycle " << cycle << ": runlogd did not start";
    HttpClient check(url);
    check.SetKey(kKey);
    if (cycle == 0) {
      auto hook = check.Post("/v1/webhooks",
                             R"({"url":")" + receiver.url() + R"(","events":["task.complete"]})");
      ASSERT_EQ(hook.status, 201) << hook.body;
      auto t = check.Post(
          "/v1/triggers",
          R"({"kind":"schedule","schedule":"* * * * * *","catch_up":"none",)"
          R"("task":{"type":"tick","input":{"at":{"$ref":"/trigger/scheduled_at_ms"}}}})");
      ASSERT_EQ(t.status, 201) << t.body;
      trigger_id = t.Str("trigger_id");
    } else {
      // Nothing acknowledged before the kill was lost, and nothing was done twice.
      for (const auto& [key, id] : acked.created) {
        auto r = check.Get("/v1/tasks/" + id);
        ASSERT_EQ(r.status, 200) << "cycle " << cycle << ": acknowledged task " << id << " lost";
        if (acked.completed.count(id)) {
          EXPECT_EQ(r.Str("status"), "succeeded") << id;
        }
      }
      for (const std::string& key : acked.fresh_keys) {  // the key finds the same task
        const std::string& id = acked.created[key];
        const auto& body = check.Get("/v1/tasks/" + id).Str("type") == "work"
                               ? std::string(R"({"type":"work","input":{"n":1}})")
                               : std::string();
        if (body.empty()) continue;
        auto again = check.Post("/v1/tasks", body, {"Idempotency-Key: " + key});
        EXPECT_EQ(again.Str("id"), id) << "cycle " << cycle << ": key " << key << " made two tasks";
      }
      acked.fresh_keys.clear();
      for (const std::string& id : acked.approved) {
        auto trace = check.Get("/v1/tasks/" + id + "/trace");
        ASSERT_EQ(trace.status, 200) << trace.body;
        const std::string step2 = trace["steps"][1]["status"].GetString();
        EXPECT_NE(step2, "waiting") << "cycle " << cycle << ": approval of " << id << " lost";
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
      auto fires = check.Get("/v1/triggers/" + trigger_id + "/fires");
      ASSERT_EQ(fires.status, 200) << fires.body;
      std::set<std::string> fire_tasks;
      for (const auto& f : fires["fires"].GetArray()) {
        EXPECT_TRUE(fire_tasks.insert(f["task_id"].GetString()).second) << "two fires, one task";
      }
      // A tick without its fire recorded was started as a kill came (catch_up
      // none does not fire that time again): at most one per kill.
      size_t unrecorded = 0;
      cursor.clear();
      do {
        auto ticks = check.Get("/v1/tasks?type=tick&limit=200" +
                               (cursor.empty() ? "" : "&cursor=" + cursor));
        ASSERT_EQ(ticks.status, 200) << ticks.body;
        for (const auto& t : ticks["tasks"].GetArray()) {
          unrecorded += fire_tasks.count(t["id"].GetString()) == 0;
        }
        cursor = ticks.Str("next_cursor");
      } while (!cursor.empty());
      EXPECT_LE(unrecorded, static_cast<size_t>(cycle)) << "cycle " << cycle;
    }
    if (cycle == cycles) {  // the end: webhooks caught up, then a clean stop
      std::set<std::string> delivered;
      EXPECT_TRUE(runlog::testing::WaitFor(
          [&] {
            for (const auto& r : receiver.requests()) {
              json::Document doc;
              if (json::Parse(r.body, &doc) && doc.IsObject() && doc.HasMember("data") &&
                  doc["data"].IsObject() && doc["data"].HasMember("id")) {
                delivered.insert(doc["data"]["id"].GetString());
              }
            }
            for (const std::string& id : acked.completed) {
              if (!delivered.count(id)) return false;
            }
            return true;
          },
          60s))
          << "completed tasks without a webhook";
      server->Signal(SIGTERM);
      EXPECT_EQ(server->Wait(), 0);
      break;
    }
    // Load, then SIGKILL at a random moment (the last loaded cycle: SIGTERM).
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int c = 0; c < 6; ++c) {
      clients.emplace_back([&, c] { Load(url, stop, acked, cycle * 100 + c); });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(400 + rng() % 1200));
    const bool graceful = cycle == cycles - 1;
    server->Signal(graceful ? SIGTERM : SIGKILL);
    const int code = server->Wait();
    if (graceful) {
      EXPECT_EQ(code, 0) << "runlogd did not stop cleanly on SIGTERM";
    }
    stop.store(true);
    for (auto& t : clients) t.join();

    // The views a restarted server catches up to equal a rebuild; the audit is clean.
    std::string url2;
    runlog::testing::ExpectViewsEqualARebuild(
        data, [&] { return StartServer(data, &url2); }, "cycle " + std::to_string(cycle));
    if (HasFatalFailure()) return;
    Process audit({RUNLOG_PATH, "audit", "--data", data, "--partitions", "4", "--json"});
    const auto summary = audit.ReadStdoutLine(120s);
    EXPECT_EQ(audit.Wait(), 0) << "cycle " << cycle << ": " << summary.value_or("")
                               << audit.DrainStderr();
    json::Document doc;
    ASSERT_TRUE(summary && json::Parse(*summary, &doc)) << summary.value_or("");
    EXPECT_GE(json::Int(doc, "checkpoints"), 1) << *summary;
    EXPECT_EQ(json::Int(doc, "chained"), json::Int(doc, "events")) << *summary;
  }
  std::lock_guard lock(acked.mu);
  EXPECT_GT(acked.created.size(), 30u) << "too little load to prove anything";
  EXPECT_GT(acked.completed.size(), 5u);
  // Every loss or double fails an expectation above: the summary says 0 only then.
  if (HasFailure()) return;
  std::printf(
      "torture: %d cycles (%d kill -9, 1 SIGTERM); %llu commands acknowledged (%zu creates, %zu "
      "completes, %zu approvals), 0 lost, 0 doubled\n",
      cycles, cycles - 1, static_cast<unsigned long long>(acked.commands), acked.created.size(),
      acked.completed.size(), acked.approved.size());
}

}  // namespace
}  // namespace runlog
