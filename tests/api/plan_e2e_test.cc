// Plans end to end over real HTTP: validation, executors with the real
// sandbox, failures and timeouts, hashes that repeat run after run, replay,
// cancel reaching a running step, token limits; then the log of it all goes
// through `runlog export`, the independent Python checker and `runlog audit`,
// and a tampered copy of the log must fail the audit, naming the event.

#include <dirent.h>
#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "events/codec.h"
#include "events/embedded_log.h"
#include "tests/testing/contract_actions.h"
#include "tests/testing/http_client.h"
#include "tests/testing/process.h"
#include "tests/testing/server.h"

namespace runlog::api {
namespace {

using namespace std::chrono_literals;
using runlog::testing::HttpClient;
using runlog::testing::HttpResponse;

// Runs a shell command; its exit code, and stdout+stderr in `output`.
int Shell(const std::string& command, std::string* output) {
  std::FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  output->clear();
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) output->append(buf, n);
  const int status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class PlanTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }
  void TearDown() override {
    // Every call a contract offered in this test leads somewhere.
    if (server_ != nullptr) runlog::testing::ExpectActionsLeadSomewhere(server_->url());
  }
  void Start() {
    server_ = std::make_unique<runlog::testing::TestServer>(dir_.path(), clock_);
    client_ = std::make_unique<HttpClient>(server_->url());
    client_->SetKey(runlog::testing::kAdminKey);
  }
  void Stop() {
    client_.reset();
    server_.reset();
  }

  HttpResponse Create(const std::string& body) {
    auto r = client_->Post("/api/v1/tasks/execute", body);
    EXPECT_EQ(r.status, 201) << r.body;
    return r;
  }
  // The task once it is terminal (or after 20 s).
  HttpResponse Finished(const std::string& id) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    HttpResponse r;
    do {
      r = client_->Get("/v1/tasks/" + id);
      const std::string s = r.Str("status");
      if (s == "succeeded" || s == "failed" || s == "cancelled") break;
      std::this_thread::sleep_for(20ms);
    } while (std::chrono::steady_clock::now() < deadline);
    return r;
  }
  HttpResponse Trace(const std::string& id) { return client_->Get("/v1/tasks/" + id + "/trace"); }

  runlog::testing::TempDir dir_;
  infra::SystemClock clock_;
  std::unique_ptr<runlog::testing::TestServer> server_;
  std::unique_ptr<HttpClient> client_;
};

constexpr char kArtexionPlan[] = R"J({
  "task_definition": {"topic": "two steps"},
  "plan": {"steps": [
    {"step_index": 1, "tool": "math", "input": {"expression": "1+1"}},
    {"step_index": 2, "tool": "python_sandbox", "input": {"code": "import time\ntime.sleep(30)"}}
  ]},
  "max_steps": 12, "timeout_seconds": 45, "limits": {"max_step_seconds": 1}})J";

TEST_F(PlanTest, ArtexionExampleFailsAtTheSandboxStepWithATimeout) {
  const std::string id = Create(kArtexionPlan).Str("task_id");
  auto task = Finished(id);
  ASSERT_EQ(task.Str("status"), "failed") << task.body;
  EXPECT_EQ(task["failure"]["index"].GetInt(), 2) << task.body;
  EXPECT_STREQ(task["failure"]["step"].GetString(), "python_sandbox");
  EXPECT_STREQ(task["failure"]["code"].GetString(), "TIMEOUT");
  EXPECT_TRUE(std::string(task["failure"]["message"].GetString()).starts_with("STEP_TIMEOUT"));
  auto trace = Trace(id);
  ASSERT_EQ(trace.status, 200) << trace.body;
  const auto& steps = trace["steps"];
  ASSERT_EQ(steps.Size(), 2u) << trace.body;
  EXPECT_STREQ(steps[0]["tool_name"].GetString(), "math");
  EXPECT_STREQ(steps[0]["status"].GetString(), "succeeded");
  EXPECT_EQ(steps[0]["output"]["result"].GetInt(), 2);
  EXPECT_STREQ(steps[1]["status"].GetString(), "failed");
  EXPECT_STREQ(steps[1]["error"]["code"].GetString(), "TIMEOUT");
  EXPECT_GE(steps[1]["duration_ms"].GetInt(), 900);
  EXPECT_LT(steps[1]["duration_ms"].GetInt(), 5000);
  const auto& summary = trace["summary"];
  EXPECT_EQ(summary["total_steps"].GetInt(), 2);
  EXPECT_EQ(summary["succeeded_steps"].GetInt(), 1);
  EXPECT_EQ(summary["failed_steps"].GetInt(), 1);
  EXPECT_EQ(summary["running_steps"].GetInt(), 0);
  EXPECT_EQ(summary["sandbox_runs"].GetInt(), 1);
  EXPECT_EQ(std::string(summary["task_hash"].GetString()).size(), 64u);
  EXPECT_EQ(summary["step_hashes"].Size(), 2u);
  // step.started is on the log before step.finished, for each step, in order.
  std::vector<std::string> kinds;
  for (const auto& e : trace["events"].GetArray()) {
    const std::string type = e["event"].GetString();
    if (type.starts_with("step."))
      kinds.push_back(type + std::to_string(e["payload"]["step_index"].GetInt()));
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"step.started1", "step.finished1", "step.started2",
                                             "step.finished2"}));
}

constexpr char kSucceedingPlan[] = R"J({
  "type": "report", "input": {"n": 6},
  "plan": {"steps": [
    {"tool": "math", "input": {"expression": "6*7"}},
    {"tool": "template", "input": {"template": "answer={{a}} n={{n}}",
                                   "values": {"a": {"$ref": "/steps/1/output/result"},
                                              "n": {"$ref": "/input/n"}}}},
    {"tool": "python_sandbox", "input": {"code": "import json\nprint(json.dumps({'sum': sum(range(10))}))"}},
    {"tool": "shell_sandbox", "input": {"command": "echo hi; echo err >&2"}},
    {"tool": "json", "input": {"op": "build", "fields": {"text": {"$ref": "/steps/2/output/result"},
                                                          "py": {"$ref": "/steps/3/output/result/sum"}}}}
  ]}})J";

TEST_F(PlanTest, TheSamePlanGivesTheSameHashesAndItsReplayMatches) {
  std::vector<std::string> hashes;
  std::string first;
  for (int run = 0; run < 2; ++run) {
    const std::string id = Create(kSucceedingPlan).Str("id");
    if (first.empty()) first = id;
    auto task = Finished(id);
    ASSERT_EQ(task.Str("status"), "succeeded") << Trace(id).body;
    EXPECT_STREQ(task["result"]["result"]["text"].GetString(), "answer=42 n=6");
    EXPECT_EQ(task["result"]["result"]["py"].GetInt(), 45);
    hashes.push_back(task.Str("task_hash"));
    auto trace = Trace(id);
    EXPECT_STREQ(trace["steps"][3]["output"]["stdout"].GetString(), "hi\n");
    EXPECT_STREQ(trace["steps"][3]["output"]["stderr"].GetString(), "err\n");
    EXPECT_EQ(trace["summary"]["sandbox_runs"].GetInt(), 2);
    // Sandbox CPU time is metered and priced; the built-in steps cost nothing.
    EXPECT_GT(trace["steps"][2]["usage"]["sandbox_cpu_ms"].GetInt(), 0) << trace.body;
    EXPECT_GT(trace["steps"][2]["cost_usd"].GetDouble(), 0) << trace.body;
    EXPECT_EQ(trace["steps"][0]["cost_usd"].GetDouble(), 0) << trace.body;
    EXPECT_GT(trace["estimated_cost_usd"].GetDouble(), 0) << trace.body;
  }
  EXPECT_EQ(hashes[0].size(), 64u);
  EXPECT_EQ(hashes[0], hashes[1]);

  auto replay = client_->Post("/v1/tasks/" + first + "/replay", "");
  ASSERT_EQ(replay.status, 201) << replay.body;
  EXPECT_EQ(replay.Str("replay_of_task_id"), first);
  auto replayed = Finished(replay.Str("id"));
  ASSERT_EQ(replayed.Str("status"), "succeeded") << replayed.body;
  EXPECT_EQ(replayed.Str("task_hash"), hashes[0]);
  EXPECT_TRUE(replayed["replay"]["matches"].GetBool()) << replayed.body;
  EXPECT_TRUE(replayed["replay"]["first_divergent_step"].IsNull());
}

TEST_F(PlanTest, AReplayOfAnAgentTaskReusesTheRecordedOutput) {
  const std::string id = Create(R"J({"type":"ask","input":{"q":"why"}})J").Str("id");
  auto claim = client_->Post("/v1/tasks/claim", R"J({"types":["ask"]})J");
  ASSERT_EQ(claim.status, 200) << claim.body;
  auto done = client_->Post("/v1/tasks/" + id + "/complete",
                            R"J({"result":{"answer":"because"},"usage":{"tokens":120}})J");
  ASSERT_EQ(done.status, 200) << done.body;
  auto task = Finished(id);
  ASSERT_EQ(task.Str("status"), "succeeded");
  auto trace = Trace(id);
  ASSERT_EQ(trace["steps"].Size(), 1u) << trace.body;
  EXPECT_STREQ(trace["steps"][0]["tool_name"].GetString(), "agent");
  EXPECT_EQ(trace["steps"][0]["usage"]["tokens"].GetInt(), 120);
  EXPECT_EQ(trace["summary"]["step_hashes"].Size(), 1u);

  auto replay = client_->Post("/v1/tasks/" + id + "/replay", "");
  ASSERT_EQ(replay.status, 201) << replay.body;
  auto replayed = Finished(replay.Str("id"));  // no worker: the executor reuses the output
  ASSERT_EQ(replayed.Str("status"), "succeeded") << replayed.body;
  EXPECT_STREQ(replayed["result"]["answer"].GetString(), "because");
  EXPECT_TRUE(replayed["replay"]["matches"].GetBool()) << replayed.body;
}

TEST_F(PlanTest, ADivergingReplaySaysWhereItDiverged) {
  // The code's output depends on the clock, so its replay differs at step 2.
  const std::string id = Create(R"J({"plan":{"steps":[{"tool":"math","input":{"expression":"1"}},
      {"tool":"python_sandbox","input":{"code":"import time\nprint(time.time_ns())"}}]}})J")
                             .Str("id");
  ASSERT_EQ(Finished(id).Str("status"), "succeeded");
  auto replay = client_->Post("/v1/tasks/" + id + "/replay", "");
  ASSERT_EQ(replay.status, 201) << replay.body;
  auto replayed = Finished(replay.Str("id"));
  ASSERT_EQ(replayed.Str("status"), "succeeded") << replayed.body;
  EXPECT_FALSE(replayed["replay"]["matches"].GetBool());
  EXPECT_EQ(replayed["replay"]["first_divergent_step"].GetInt(), 2) << replayed.body;
}

TEST_F(PlanTest, AnInvalidPlanFailsBeforeAnyStepRuns) {
  auto created = Create(R"J({"plan":{"steps":[
      {"tool":"math","input":{"expression":"1"}},
      {"tool":"no_such_tool"},
      {"tool":"math","input":{"expr":"1"}}]}})J");
  EXPECT_EQ(created.Str("status"), "failed") << created.body;
  EXPECT_STREQ(created["error"]["code"].GetString(), "PLAN_INVALID");
  auto trace = Trace(created.Str("id"));
  const auto& failures = trace["plan_validation_failures"];
  ASSERT_EQ(failures.Size(), 2u) << trace.body;
  EXPECT_STREQ(failures[0]["code"].GetString(), "UNKNOWN_TOOL");
  EXPECT_EQ(failures[0]["step_index"].GetInt(), 2);
  EXPECT_STREQ(failures[1]["code"].GetString(), "SCHEMA_MISMATCH");
  EXPECT_EQ(trace["steps"].Size(), 0u);
  EXPECT_EQ(std::string(trace["summary"]["task_hash"].GetString()).size(), 64u);
}

TEST_F(PlanTest, LimitsOverTheCapsAreRefusedWithTheCap) {
  auto r =
      client_->Post("/v1/tasks", R"J({"plan":{"steps":[{"tool":"math","input":{"expression":"1"}}],
                                          "limits":{"max_step_seconds":100000}}})J");
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(r.ErrorCode(), "LIMIT_EXCEEDED");
  EXPECT_EQ(r["error"]["details"]["cap"].GetInt(), 600);
  auto many = Create(R"J({"max_steps":1,"plan":{"steps":[{"tool":"math","input":{"expression":"1"}},
                                                         {"tool":"math","input":{"expression":"2"}}]}})J");
  EXPECT_EQ(many.Str("status"), "failed");
  EXPECT_STREQ(Trace(many.Str("id"))["plan_validation_failures"][0]["code"].GetString(),
               "TOO_MANY_STEPS");
}

TEST_F(PlanTest, RuntimeFailuresHaltTheTaskWithTheirCodes) {
  auto math = Finished(Create(R"J({"plan":{"steps":[{"tool":"math","input":{"expression":"1/0"}},
                                                    {"tool":"math","input":{"expression":"2"}}]}})J")
                           .Str("id"));
  EXPECT_STREQ(math["failure"]["code"].GetString(), "TOOL_ERROR");
  EXPECT_EQ(math["failure"]["index"].GetInt(), 1);
  EXPECT_EQ(Trace(math.Str("id"))["steps"].Size(), 1u);  // step 2 never ran

  auto exit = Finished(
      Create(
          R"J({"plan":{"steps":[{"tool":"shell_sandbox","input":{"command":"echo bad >&2; exit 3"}}]}})J")
          .Str("id"));
  EXPECT_STREQ(exit["failure"]["code"].GetString(), "TOOL_ERROR");
  EXPECT_NE(std::string(exit["failure"]["message"].GetString()).find("exit code 3: bad"),
            std::string::npos)
      << exit.body;

  // A reference that resolves to a value the next tool refuses: SCHEMA_MISMATCH at run time.
  auto schema = Finished(Create(R"J({"plan":{"steps":[{"tool":"math","input":{"expression":"1"}},
      {"tool":"math","input":{"expression":{"$ref":"/steps/1/output/result"}}}]}})J")
                             .Str("id"));
  EXPECT_STREQ(schema["failure"]["code"].GetString(), "SCHEMA_MISMATCH") << schema.body;
  auto trace = Trace(schema.Str("id"));
  ASSERT_EQ(trace["runtime_schema_failures"].Size(), 1u) << trace.body;
  EXPECT_EQ(trace["runtime_schema_failures"][0]["step_index"].GetInt(), 2);

  // A reference that nests the resolved input past 64 levels fails the step, cleanly.
  std::string deep_input, deep_ref;
  for (int i = 0; i < 60; ++i) deep_input += "{\"a\":";
  deep_input += "1" + std::string(60, '}');
  for (int i = 0; i < 40; ++i) deep_ref += "{\"b\":";
  deep_ref += "{\"$ref\":\"/input\"}" + std::string(40, '}');
  auto deep = Finished(Create("{\"input\":" + deep_input +
                              ",\"plan\":{\"steps\":[{\"tool\":\"json\",\"input\":"
                              "{\"op\":\"build\",\"fields\":" +
                              deep_ref + "}}]}}")
                           .Str("id"));
  EXPECT_STREQ(deep["failure"]["code"].GetString(), "REFERENCE_ERROR") << deep.body;

  auto total = Finished(Create(R"J({"timeout_seconds":1,"limits":{"max_step_seconds":10},
      "plan":{"steps":[{"tool":"shell_sandbox","input":{"command":"sleep 20"}}]}})J")
                            .Str("id"));
  EXPECT_STREQ(total["failure"]["code"].GetString(), "TASK_TIMEOUT") << total.body;
}

// Whether a process whose command line holds `marker` exists on the host.
bool ProcessWithMarker(const std::string& marker) {
  DIR* proc = ::opendir("/proc");
  bool found = false;
  while (dirent* d = ::readdir(proc)) {
    if (!std::isdigit(static_cast<unsigned char>(d->d_name[0]))) continue;
    std::ifstream f(std::string("/proc/") + d->d_name + "/cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (cmdline.find(marker) != std::string::npos) found = true;
  }
  ::closedir(proc);
  return found;
}

TEST_F(PlanTest, CancelKillsARunningSandboxedStepWithinASecond) {
  const std::string marker = "cancel-marker-" + std::to_string(::getpid());
  const std::string id =
      Create(R"J({"limits":{"max_step_seconds":60},"plan":{"steps":[{"tool":"python_sandbox",
          "input":{"code":"import time\ntime.sleep(50) # )J" +
             marker + R"J("}}]}})J")
          .Str("id");
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!ProcessWithMarker(marker) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(ProcessWithMarker(marker)) << "the step never started";
  // Its lease is the executor's: a worker's key cannot complete it.
  auto task = client_->Get("/v1/tasks/" + id);
  auto forged = client_->Post("/v1/tasks/" + id + "/complete",
                              R"J({"lease_id":")J" + task.Str("lease_id") + R"J(","result":{}})J");
  EXPECT_EQ(forged.status, 409) << forged.body;
  EXPECT_EQ(forged.ErrorCode(), "LEASE_MISMATCH");
  auto cancelled = client_->Post("/v1/tasks/" + id + "/cancel", R"J({"reason":"enough"})J");
  ASSERT_EQ(cancelled.status, 200) << cancelled.body;
  const auto at = std::chrono::steady_clock::now();
  while (ProcessWithMarker(marker) && std::chrono::steady_clock::now() - at < 2s) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - at, 1s);
  EXPECT_EQ(Finished(id).Str("status"), "cancelled");
}

constexpr char kMixedPlan[] = R"J({
  "type": "mix", "input": {"who": "ada"},
  "plan": {"steps": [
    {"tool": "math", "input": {"expression": "6*7"}},
    {"tool": "agent", "input": {"question": {"$ref": "/steps/1/output/result"},
                                "who": {"$ref": "/input/who"}}},
    {"tool": "template", "input": {"template": "{{who}} says {{a}}",
                                   "values": {"who": {"$ref": "/input/who"},
                                              "a": {"$ref": "/steps/2/output/answer"}}}}
  ]}})J";

// Claims a worker step of `type`, waiting for the executors to hand it out.
HttpResponse ClaimStep(HttpClient& client, const std::string& type) {
  return client.Post("/v1/tasks/claim", R"J({"types":[")J" + type + R"J("],"wait_seconds":10})J");
}

TEST_F(PlanTest, AgentStepsMixWithBuiltInStepsAndReplayFromTheRecord) {
  const std::string id = Create(kMixedPlan).Str("id");
  // The executors run step 1, then hand step 2 to a worker, its input resolved.
  auto claim = ClaimStep(*client_, "mix");
  ASSERT_EQ(claim.status, 200) << claim.body;
  ASSERT_TRUE(claim["step"].IsObject()) << claim.body;
  EXPECT_EQ(claim["step"]["step_index"].GetInt(), 2);
  EXPECT_STREQ(claim["step"]["tool"].GetString(), "agent");
  EXPECT_EQ(claim["step"]["input"]["question"].GetInt(), 42) << claim.body;
  EXPECT_STREQ(claim["step"]["input"]["who"].GetString(), "ada");
  EXPECT_EQ(claim["task"]["attempt"].GetInt(), 1);  // a hand-off is not a new attempt
  const std::string lease = claim["lease"]["lease_id"].GetString();
  // Executors may not finish a worker's step; the worker completes it.
  auto done = client_->Post(
      "/v1/tasks/" + id + "/complete",
      R"J({"lease_id":")J" + lease + R"J(","output":{"answer":"yes"},"usage":{"tokens":7}})J");
  ASSERT_EQ(done.status, 200) << done.body;
  auto task = Finished(id);
  ASSERT_EQ(task.Str("status"), "succeeded") << task.body;
  EXPECT_STREQ(task["result"]["result"].GetString(), "ada says yes") << task.body;
  EXPECT_EQ(task["attempt"].GetInt(), 1);
  auto trace = Trace(id);
  const auto& steps = trace["steps"];
  ASSERT_EQ(steps.Size(), 3u) << trace.body;
  EXPECT_STREQ(steps[1]["tool_name"].GetString(), "agent");
  EXPECT_STREQ(steps[1]["status"].GetString(), "succeeded");
  EXPECT_EQ(steps[1]["usage"]["tokens"].GetInt(), 7);
  EXPECT_EQ(trace["summary"]["tokens_used"].GetInt(), 7);
  EXPECT_EQ(trace["summary"]["step_hashes"].Size(), 3u);
  int handoffs = 0;
  for (const auto& e : trace["events"].GetArray()) {
    handoffs += std::string(e["event"].GetString()) == "task.handed_off";
  }
  EXPECT_EQ(handoffs, 2);  // to the worker, and back to the executors

  // The replay reuses the agent's recorded output: no worker needed.
  auto replay = client_->Post("/v1/tasks/" + id + "/replay", "");
  ASSERT_EQ(replay.status, 201) << replay.body;
  auto replayed = Finished(replay.Str("id"));
  ASSERT_EQ(replayed.Str("status"), "succeeded") << replayed.body;
  EXPECT_TRUE(replayed["replay"]["matches"].GetBool()) << replayed.body;
  EXPECT_EQ(replayed.Str("task_hash"), task.Str("task_hash"));
}

TEST_F(PlanTest, AMixedPlanSurvivesARestartBetweenClaimAndComplete) {
  const std::string id = Create(kMixedPlan).Str("id");
  auto claim = ClaimStep(*client_, "mix");
  ASSERT_EQ(claim.status, 200) << claim.body;
  const std::string lease = claim["lease"]["lease_id"].GetString();
  Stop();
  Start();  // the writer recovers the handed-off step and the worker's lease from the log
  auto done = client_->Post("/v1/tasks/" + id + "/complete",
                            R"J({"lease_id":")J" + lease + R"J(","result":{"answer":"after"}})J");
  ASSERT_EQ(done.status, 200) << done.body;
  auto task = Finished(id);
  ASSERT_EQ(task.Str("status"), "succeeded") << task.body;
  EXPECT_STREQ(task["result"]["result"].GetString(), "ada says after");
  EXPECT_EQ(task["attempt"].GetInt(), 1);
}

TEST_F(PlanTest, AWorkerStepThatFailsHaltsThePlanAtItsIndex) {
  const std::string id = Create(kMixedPlan).Str("id");
  auto claim = ClaimStep(*client_, "mix");
  ASSERT_EQ(claim.status, 200) << claim.body;
  auto failed = client_->Post("/v1/tasks/" + id + "/fail",
                              R"J({"error":{"code":"NO_ANSWER","message":"gave up"}})J");
  ASSERT_EQ(failed.status, 200) << failed.body;
  auto task = Finished(id);
  ASSERT_EQ(task.Str("status"), "failed") << task.body;
  EXPECT_EQ(task["failure"]["index"].GetInt(), 2) << task.body;
  EXPECT_STREQ(task["failure"]["step"].GetString(), "agent");
  EXPECT_STREQ(task["failure"]["code"].GetString(), "NO_ANSWER");
  EXPECT_EQ(Trace(id)["summary"]["succeeded_steps"].GetInt(), 1);
}

TEST_F(PlanTest, AWorkerStepWhoseLeaseExpiresGoesBackToWorkersAsACountedRetry) {
  std::string body = kMixedPlan;
  body.insert(1, R"J("max_attempts":2,)J");
  const std::string id = Create(body).Str("id");
  auto first = client_->Post("/v1/tasks/claim",
                             R"J({"types":["mix"],"wait_seconds":10,"lease_seconds":1})J");
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first["task"]["attempt"].GetInt(), 1);
  // Not completed: after the lease runs out the step is claimable again.
  auto second = ClaimStep(*client_, "mix");
  ASSERT_EQ(second.status, 200) << second.body;
  ASSERT_TRUE(second["task"].IsObject()) << second.body;
  EXPECT_EQ(second["task"]["attempt"].GetInt(), 2);
  EXPECT_EQ(second["task"]["retry_count"].GetInt(), 1);
  EXPECT_EQ(second["step"]["step_index"].GetInt(), 2);
  auto late =
      client_->Post("/v1/tasks/" + id + "/complete",
                    R"J({"lease_id":")J" + std::string(first["lease"]["lease_id"].GetString()) +
                        R"J(","result":{"answer":"late"}})J");
  EXPECT_EQ(late.status, 409) << late.body;
  ASSERT_EQ(
      client_->Post("/v1/tasks/" + id + "/complete", R"J({"result":{"answer":"ok"}})J").status,
      200);
  auto task = Finished(id);
  ASSERT_EQ(task.Str("status"), "succeeded") << task.body;
  EXPECT_STREQ(task["result"]["result"].GetString(), "ada says ok");
}

TEST_F(PlanTest, APlannerAgentWritesThePlanAndItIsValidatedLikeAGivenOne) {
  const std::string id =
      Create(R"J({"type":"planned","input":{"n":5},"planner":true,"max_steps":3})J").Str("id");
  auto claim = ClaimStep(*client_, "planned");
  ASSERT_EQ(claim.status, 200) << claim.body;
  EXPECT_STREQ(claim["step"]["tool"].GetString(), "plan") << claim.body;
  auto done = client_->Post("/v1/tasks/" + id + "/complete", R"J({"result":{"steps":[
      {"tool":"math","input":{"expression":"5*5"}},
      {"tool":"template","input":{"template":"n^2={{x}}",
                                  "values":{"x":{"$ref":"/steps/2/output/result"}}}}]}})J");
  ASSERT_EQ(done.status, 200) << done.body;
  auto task = Finished(id);
  ASSERT_EQ(task.Str("status"), "succeeded") << task.body << Trace(id).body;
  EXPECT_STREQ(task["result"]["result"].GetString(), "n^2=25") << task.body;
  ASSERT_EQ(task["plan"]["steps"].Size(), 3u) << task.body;  // the plan step, then its plan
  EXPECT_STREQ(task["plan"]["steps"][1]["tool"].GetString(), "math");
  EXPECT_EQ(task["plan"]["steps"][1]["step_index"].GetInt(), 2);
  auto trace = Trace(id);
  EXPECT_EQ(trace["summary"]["total_steps"].GetInt(), 3) << trace.body;
  EXPECT_EQ(trace["summary"]["succeeded_steps"].GetInt(), 3);

  auto replay = client_->Post("/v1/tasks/" + id + "/replay", "");
  ASSERT_EQ(replay.status, 201) << replay.body;
  auto replayed = Finished(replay.Str("id"));
  ASSERT_EQ(replayed.Str("status"), "succeeded") << replayed.body;
  EXPECT_TRUE(replayed["replay"]["matches"].GetBool()) << replayed.body;

  // A plan over max_steps, or with an unknown tool, fails before any of it runs.
  const std::string bad = Create(R"J({"type":"planned","planner":true,"max_steps":3})J").Str("id");
  ASSERT_EQ(ClaimStep(*client_, "planned").status, 200);
  ASSERT_EQ(client_
                ->Post("/v1/tasks/" + bad + "/complete", R"J({"result":{"steps":[
      {"tool":"math","input":{"expression":"1"}},{"tool":"nope"},{"tool":"math"}]}})J")
                .status,
            200);
  auto rejected = Finished(bad);
  ASSERT_EQ(rejected.Str("status"), "failed") << rejected.body;
  EXPECT_STREQ(rejected["error"]["code"].GetString(), "PLAN_INVALID");
  EXPECT_EQ(rejected["failure"]["index"].GetInt(), 1);
  auto bad_trace = Trace(bad);
  std::string codes;
  for (const auto& f : bad_trace["plan_validation_failures"].GetArray()) {
    codes += std::string(f["code"].GetString()) + " ";
  }
  EXPECT_NE(codes.find("TOO_MANY_STEPS"), std::string::npos) << bad_trace.body;
  EXPECT_NE(codes.find("UNKNOWN_TOOL"), std::string::npos) << bad_trace.body;
  EXPECT_EQ(bad_trace["steps"].Size(), 1u);  // only the plan step ran

  auto both =
      client_->Post("/v1/tasks", R"J({"planner":true,"plan":{"steps":[{"tool":"math"}]}})J");
  EXPECT_EQ(both.status, 400) << both.body;
}

constexpr char kCalcManifest[] = R"J({"name":"calculator","task_types":{
  "square":{"input_schema":{"type":"object","required":["n"],
                            "properties":{"n":{"type":"integer"}}},
            "plan":{"steps":[
              {"tool":"template","input":{"template":"{{n}}*{{n}}","values":{"n":{"$ref":"/input/n"}}}},
              {"tool":"math","input":{"expression":{"$ref":"/steps/1/output/result"}}}],
                    "limits":{"max_step_seconds":5}}},
  "think":{"planner":true}}})J";

TEST_F(PlanTest, AnAgentManifestValidatesInputAndGivesItsTypesTheirPlans) {
  auto put = client_->Put("/v1/agents/calc", kCalcManifest);
  ASSERT_EQ(put.status, 201) << put.body;
  EXPECT_STREQ(put["agent_id"].GetString(), "calc");
  // The type's template is the plan: n*n through template and math.
  auto created = Create(R"J({"type":"square","input":{"n":7}})J");
  auto task = Finished(created.Str("id"));
  ASSERT_EQ(task.Str("status"), "succeeded") << task.body;
  EXPECT_EQ(task["result"]["result"].GetInt(), 49) << task.body;
  EXPECT_EQ(task["plan"]["limits"]["max_step_seconds"].GetInt(), 5) << task.body;
  auto trace = Trace(created.Str("id"));
  for (const auto& e : trace["events"].GetArray()) {
    if (std::string(e["event"].GetString()) == "task.planned") {
      EXPECT_STREQ(e["payload"]["source"].GetString(), "template");
    }
  }
  // Input against the type's schema.
  auto bad = client_->Post("/v1/tasks", R"J({"type":"square","input":{"n":"seven"}})J");
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_EQ(bad.ErrorCode(), "VALIDATION_ERROR");
  EXPECT_STREQ(bad["error"]["details"]["field"].GetString(), "input/n") << bad.body;
  EXPECT_TRUE(bad["agent_contract"].IsObject());
  // A type the named agent does not declare.
  auto unknown = client_->Post("/v1/tasks", R"J({"agent_id":"calc","type":"cube"})J");
  EXPECT_EQ(unknown.status, 422) << unknown.body;
  EXPECT_EQ(unknown.ErrorCode(), "UNKNOWN_TASK_TYPE");
  // A planner type: a worker claims its plan step.
  const std::string think = Create(R"J({"type":"think"})J").Str("id");
  auto claim = ClaimStep(*client_, "think");
  ASSERT_EQ(claim.status, 200) << claim.body;
  EXPECT_STREQ(claim["step"]["tool"].GetString(), "plan") << claim.body;
  EXPECT_EQ(claim["task"]["id"].GetString(), think);
  // A template that fails plan validation is refused with the failures.
  auto invalid = client_->Put("/v1/agents/broken",
                              R"J({"task_types":{"x":{"plan":{"steps":[{"tool":"nope"}]}}}})J");
  EXPECT_EQ(invalid.status, 422) << invalid.body;
  EXPECT_EQ(invalid.ErrorCode(), "INVALID_MANIFEST");
  EXPECT_STREQ(invalid["error"]["details"]["failures"][0]["code"].GetString(), "UNKNOWN_TOOL");
  auto shape = client_->Put("/v1/agents/broken", R"J({"task_types":[]})J");
  EXPECT_EQ(shape.status, 400) << shape.body;
  auto capped = client_->Put(
      "/v1/agents/broken",
      R"J({"task_types":{"x":{"plan":{"steps":[{"tool":"math","input":{"expression":"1"}}],
                                       "limits":{"max_step_seconds":100000}}}}})J");
  EXPECT_EQ(capped.status, 422) << capped.body;
  EXPECT_EQ(capped["error"]["details"]["cap"].GetInt(), 600);
  // A schema that refers to itself would make the validator recurse forever.
  auto loop =
      client_->Put("/v1/agents/broken", R"J({"task_types":{"x":{"input_schema":{"$ref":"#"}}}})J");
  EXPECT_EQ(loop.status, 400) << loop.body;
  EXPECT_STREQ(loop["error"]["details"]["field"].GetString(), "task_types.x.input_schema");
  // Another tenant does not see the agent; the manifest survives a restart.
  auto other = HttpClient(server_->url());
  other.SetKey(server_->KeyWithScopes("acct_other", {"read", "write"}));
  EXPECT_EQ(other.Get("/v1/agents/calc").status, 404);
  EXPECT_EQ(client_->Get("/v1/agents/nobody").ErrorCode(), "AGENT_NOT_FOUND");
  Stop();
  Start();
  auto got = client_->Get("/v1/agents/calc");
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_STREQ(got["manifest"]["name"].GetString(), "calculator");
  auto again = Finished(Create(R"J({"type":"square","input":{"n":3}})J").Str("id"));
  EXPECT_EQ(again["result"]["result"].GetInt(), 9) << again.body;
  auto replaced = client_->Put("/v1/agents/calc", kCalcManifest);
  EXPECT_EQ(replaced.status, 200) << replaced.body;
}

TEST_F(PlanTest, AgentTokensOverMaxTokensFailTheTask) {
  const std::string id = Create(R"J({"type":"llm","limits":{"max_tokens":100}})J").Str("id");
  ASSERT_EQ(client_->Post("/v1/tasks/claim", R"J({"types":["llm"]})J").status, 200);
  auto done = client_->Post("/v1/tasks/" + id + "/complete",
                            R"J({"result":{"text":"long"},"usage":{"tokens":500}})J");
  ASSERT_EQ(done.status, 200) << done.body;
  auto task = Finished(id);
  EXPECT_EQ(task.Str("status"), "failed");
  EXPECT_STREQ(task["failure"]["code"].GetString(), "TOKEN_LIMIT") << task.body;
}

// The model endpoint: `runlog mock-llm` runs as its own process on loopback
// (the provider's double), and runlogd is pointed at it as at a provider.
constexpr char kArtexionExecute[] = R"J({
"task_definition": {
"topic": "Summarize weekly release notes"
},
"max_steps": 12,
"timeout_seconds": 45
})J";

TEST(ModelEndpoint, ArtexionsExecuteExampleRunsByItselfWithAModel) {
  runlog::testing::Process mock({RUNLOG_PATH, "mock-llm", "--api-key", "sk-test-123"});
  auto url = mock.ReadStdoutLine(10s);
  ASSERT_TRUE(url.has_value()) << mock.DrainStderr();
  runlog::testing::TempDir dir;
  infra::SystemClock clock;
  runlog::testing::TestServer server(dir.path(), clock, [&](app::Config& c) {
    c.llm = {*url, "sk-test-123", "test-model"};
  });
  HttpClient client(server.url());
  client.SetKey(runlog::testing::kAdminKey);
  auto Finished = [&](const std::string& id) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    HttpResponse r;
    do {
      r = client.Get("/v1/tasks/" + id);
      const std::string s = r.Str("status");
      if (s == "succeeded" || s == "failed" || s == "cancelled") break;
      std::this_thread::sleep_for(20ms);
    } while (std::chrono::steady_clock::now() < deadline);
    return r;
  };

  // Sent verbatim: the built-in planner asks the model for a plan, the plan
  // is checked and run, and its `llm` step calls the model again.
  auto created = client.Post("/api/v1/tasks/execute", kArtexionExecute);
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id = created.Str("task_id");
  auto task = Finished(id);
  ASSERT_EQ(task.Str("status"), "succeeded") << client.Get("/v1/tasks/" + id + "/trace").body;
  EXPECT_NE(std::string(task["result"]["result"].GetString()).find("Summarize weekly"),
            std::string::npos)
      << task.body;
  auto trace = client.Get("/v1/tasks/" + id + "/trace");
  ASSERT_EQ(trace["steps"].Size(), 3u) << trace.body;
  EXPECT_STREQ(trace["steps"][0]["tool_name"].GetString(), "llm_plan");
  EXPECT_STREQ(trace["steps"][1]["tool_name"].GetString(), "llm");
  EXPECT_STREQ(trace["steps"][1]["usage"]["model"].GetString(), "test-model");
  EXPECT_GT(trace["steps"][1]["usage"]["input_tokens"].GetInt(), 0);
  EXPECT_GT(trace["summary"]["tokens_used"].GetInt(), 0);
  EXPECT_GT(trace["estimated_cost_usd"].GetDouble(), 0);
  EXPECT_GT(task["cost_usd"].GetDouble(), 0) << task.body;
  // The request (the step's input) and the answer (its output) are on the log.
  EXPECT_NE(trace.body.find("step.finished"), std::string::npos);
  EXPECT_EQ(trace.body.find("sk-test-123"), std::string::npos) << "the key is never recorded";
  auto usage = client.Get("/api/v1/tasks/usage");
  EXPECT_EQ(usage["monthly_task_executions"].GetInt(), 1) << usage.body;
  EXPECT_EQ(usage["total_usage_usd"].GetDouble(), task["cost_usd"].GetDouble()) << usage.body;

  // A replay reuses the recorded answers: the same hashes, no model call, no cost.
  auto replay = client.Post("/v1/tasks/" + id + "/replay", "");
  ASSERT_EQ(replay.status, 201) << replay.body;
  auto replayed = Finished(replay.Str("id"));
  EXPECT_EQ(replayed.Str("status"), "succeeded") << replayed.body;
  EXPECT_TRUE(replayed["replay"]["matches"].GetBool()) << replayed.body;
  EXPECT_EQ(replayed["cost_usd"].GetDouble(), 0) << replayed.body;

  // A plan may call the model itself.
  auto direct = client.Post(
      "/v1/tasks",
      R"J({"plan":{"steps":[{"tool":"llm","input":{"prompt":"hi","max_tokens":5}}]}})J");
  ASSERT_EQ(direct.status, 201) << direct.body;
  auto answered = Finished(direct.Str("id"));
  EXPECT_EQ(answered.Str("status"), "succeeded") << answered.body;
  EXPECT_STREQ(answered["result"]["text"].GetString(), "mock answer: hi");
}

TEST(ModelEndpoint, AProviderRefusalFailsTheStepAndNoModelMeansAPlannerWorker) {
  runlog::testing::Process mock({RUNLOG_PATH, "mock-llm", "--api-key", "sk-right"});
  auto url = mock.ReadStdoutLine(10s);
  ASSERT_TRUE(url.has_value()) << mock.DrainStderr();
  runlog::testing::TempDir dir;
  infra::SystemClock clock;
  {
    runlog::testing::TestServer server(dir.path(), clock, [&](app::Config& c) {
      c.llm = {*url, "sk-wrong-456", "test-model"};
    });
    HttpClient client(server.url());
    client.SetKey(runlog::testing::kAdminKey);
    const std::string id = client.Post("/api/v1/tasks/execute", kArtexionExecute).Str("task_id");
    HttpResponse task;
    for (int i = 0; i < 500 && task.Str("status") != "failed"; ++i) {
      std::this_thread::sleep_for(20ms);
      task = client.Get("/v1/tasks/" + id);
    }
    ASSERT_EQ(task.Str("status"), "failed") << task.body;
    EXPECT_STREQ(task["failure"]["code"].GetString(), "TOOL_ERROR");
    EXPECT_STREQ(task["failure"]["step"].GetString(), "llm_plan");
    EXPECT_NE(std::string(task["failure"]["message"].GetString()).find("HTTP 401"),
              std::string::npos)
        << task.body;
    EXPECT_EQ(client.Get("/v1/tasks/" + id + "/trace").body.find("sk-wrong-456"),
              std::string::npos);
  }
  // Without a model the same request waits for a planner worker, and says so.
  runlog::testing::TempDir dir2;
  runlog::testing::TestServer server(dir2.path(), clock);
  HttpClient client(server.url());
  client.SetKey(runlog::testing::kAdminKey);
  auto created = client.Post("/api/v1/tasks/execute", kArtexionExecute);
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.Str("status"), "queued");
  bool await = false;
  for (const auto& a : created["agent_contract"]["next_actions"].GetArray()) {
    await = await || std::string(a["action"].GetString()) == "await_worker";
  }
  EXPECT_TRUE(await) << created.body;
  auto claimed = client.Post("/v1/tasks/claim", "{}");
  ASSERT_EQ(claimed.status, 200) << claimed.body;
  EXPECT_STREQ(claimed["task"]["plan"]["steps"][0]["tool"].GetString(), "plan") << claimed.body;
}

// Fairness and concurrency. Each test asserts an order or a count of tasks
// running at once, read from the tasks' recorded times, not a duration.
namespace fairness {

// A plan of one sandboxed step sleeping `seconds`, with `extra` fields.
std::string Sleeper(double seconds, const std::string& extra = "") {
  return R"J({"type":"sleep",)J" + extra +
         R"J("plan":{"steps":[{"tool":"python_sandbox","input":{"code":"import time\ntime.sleep()J" +
         std::to_string(seconds) + R"J()"}}]}})J";
}

struct Span {
  std::string start, end;  // ISO times, comparable as strings
};

// The most tasks of `spans` that ran at the same moment.
int MostAtOnce(std::vector<Span> spans) {
  std::vector<std::pair<std::string, int>> edges;
  for (const Span& s : spans) {
    edges.push_back({s.start, 1});
    edges.push_back({s.end, -1});
  }
  std::sort(edges.begin(), edges.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second < b.second;  // ends first
  });
  int now = 0, most = 0;
  for (const auto& [at, d] : edges) most = std::max(most, now += d);
  return most;
}

// Waits until `ids` have all ended; their execution spans.
std::vector<Span> Spans(HttpClient& client, const std::vector<std::string>& ids) {
  std::vector<Span> spans;
  for (const std::string& id : ids) {
    HttpResponse r;
    for (int i = 0; i < 600; ++i) {
      r = client.Get("/v1/tasks/" + id);
      if (r.Str("status") == "succeeded" || r.Str("status") == "failed") break;
      std::this_thread::sleep_for(50ms);
    }
    EXPECT_EQ(r.Str("status"), "succeeded") << r.body;
    if (r["execution_started_at"].IsString() && r["execution_finished_at"].IsString()) {
      spans.push_back(
          {r["execution_started_at"].GetString(), r["execution_finished_at"].GetString()});
    }
  }
  return spans;
}

}  // namespace fairness

TEST_F(PlanTest, AConcurrencyKeyHoldsWorkerTasksBackWithoutBlockingOthers) {
  std::vector<std::string> keyed;
  for (int i = 0; i < 2; ++i) {
    auto r = client_->Post("/v1/tasks", R"J({"type":"k","concurrency_key":"user-7"})J");
    ASSERT_EQ(r.status, 201) << r.body;
    EXPECT_EQ(r["max_concurrency"].GetInt(), 1) << r.body;
    keyed.push_back(r.Str("id"));
  }
  const std::string plain = client_->Post("/v1/tasks", R"J({"type":"k"})J").Str("id");
  auto first = client_->Post("/v1/tasks/claim", R"J({"types":["k"]})J");
  ASSERT_EQ(first.Str("id"), keyed[0]) << first.body;
  // user-7 is at its limit: the claim passes its queue over.
  auto second = client_->Post("/v1/tasks/claim", R"J({"types":["k"]})J");
  EXPECT_EQ(second.Str("id"), plain) << second.body;
  auto none = client_->Post("/v1/tasks/claim", R"J({"types":["k"]})J");
  EXPECT_TRUE(none["task"].IsNull()) << none.body;
  ASSERT_EQ(client_->Post("/v1/tasks/" + keyed[0] + "/complete", "{}").status, 200);
  EXPECT_EQ(client_->Post("/v1/tasks/claim", R"J({"types":["k"]})J").Str("id"), keyed[1]);
  auto bad = client_->Post("/v1/tasks", R"J({"type":"k","max_concurrency":2})J");
  EXPECT_EQ(bad.status, 400) << bad.body;
}

TEST(Fairness, PlanCapsAndConcurrencyKeysBoundTheTasksRunningOnExecutors) {
  runlog::testing::TempDir dir;
  infra::SystemClock clock;
  runlog::testing::TestServer server(dir.path(), clock,
                                     [](app::Config& c) { c.executor_slots = 3; });
  HttpClient admin(server.url());
  admin.SetKey(runlog::testing::kAdminKey);
  // Internal, uncapped: with max_concurrency 1 its keyed tasks run one at a time.
  std::vector<std::string> keyed;
  for (int i = 0; i < 3; ++i) {
    auto r = admin.Post("/v1/tasks",
                        fairness::Sleeper(0.3, R"J("concurrency_key":"q","max_concurrency":1,)J"));
    ASSERT_EQ(r.status, 201) << r.body;
    keyed.push_back(r.Str("id"));
  }
  EXPECT_EQ(fairness::MostAtOnce(fairness::Spans(admin, keyed)), 1);
  // A free account's plan allows 2 tasks on the executors at once, of 3 executors.
  HttpClient user(server.url());
  user.SetKey(server.KeyWithScopes("acct_free", {"read", "write"}, "free"));
  std::vector<std::string> capped;
  for (int i = 0; i < 4; ++i) {
    auto r = user.Post("/v1/tasks", fairness::Sleeper(0.3));
    ASSERT_EQ(r.status, 201) << r.body;
    capped.push_back(r.Str("id"));
  }
  EXPECT_EQ(fairness::MostAtOnce(fairness::Spans(user, capped)), 2);
}

TEST(Fairness, ANewTenantsTaskStartsNextNotAfterTheBacklog) {
  runlog::testing::TempDir dir;
  infra::SystemClock clock;
  runlog::testing::TestServer server(dir.path(), clock);  // 2 executors
  HttpClient a(server.url());
  a.SetKey(runlog::testing::kAdminKey);
  std::vector<std::string> backlog;
  for (int i = 0; i < 12; ++i) {
    auto r = a.Post("/v1/tasks", fairness::Sleeper(0.3));
    ASSERT_EQ(r.status, 201) << r.body;
    backlog.push_back(r.Str("id"));
  }
  std::this_thread::sleep_for(100ms);  // A's first two are running
  HttpClient b(server.url());
  b.SetKey(server.KeyWithScopes("acct_b", {"read", "write"}, "basic"));
  auto created = b.Post("/v1/tasks", fairness::Sleeper(0.1));
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string b_start = fairness::Spans(b, {created.Str("id")}).at(0).start;
  const std::string b_created = created["created_at"].GetString();
  // First come, first served, B would wait for ten of A's tasks; shared out,
  // it takes the next executor that frees up (at most one per executor may
  // have been claimed while B's create was in flight).
  int started_between = 0;
  for (const fairness::Span& s : fairness::Spans(a, backlog)) {
    started_between += s.start > b_created && s.start < b_start;
  }
  EXPECT_LE(started_between, 2) << "B started at " << b_start;
}

// Overwrites the value of one log record in a stopped copy of the log.
void RewriteRecord(const std::string& data_dir, uint32_t partition, uint64_t offset,
                   const std::function<void(std::string&)>& change) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Options options;
  ASSERT_TRUE(rocksdb::DB::Open(options, data_dir + "/log", &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  const std::string key = events::EmbeddedLogKey(partition, offset);
  std::string value;
  ASSERT_TRUE(db->Get({}, key, &value).ok());
  change(value);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  ASSERT_TRUE(db->Put(wo, key, value).ok());
}

// Changes the character `shift` bytes into `needle` in one event's payload and
// writes the event back with a good checksum: only the hashes can tell.
void RewritePayload(const std::string& data_dir, uint32_t partition, uint64_t offset,
                    const std::string& needle, size_t shift, char replacement) {
  RewriteRecord(data_dir, partition, offset, [&](std::string& v) {
    auto event = events::DecodeEvent(v);
    ASSERT_TRUE(event);
    const size_t at = event->payload.find(needle);
    ASSERT_NE(at, std::string::npos);
    event->payload[at + shift] = replacement;
    v = events::EncodeEvent(*event);
  });
}

TEST_F(PlanTest, TheLogPassesTheIndependentCheckerAndTheAuditAndATamperedCopyFails) {
  std::vector<std::string> ids = {Create(kSucceedingPlan).Str("id"),
                                  Create(kArtexionPlan).Str("id")};
  const std::string agent = Create(R"J({"type":"ask"})J").Str("id");
  ASSERT_EQ(client_->Post("/v1/tasks/claim", R"J({"types":["ask"]})J").status, 200);
  ASSERT_EQ(client_->Post("/v1/tasks/" + agent + "/complete", R"J({"result":{"a":1}})J").status,
            200);
  ids.push_back(agent);
  // A plan with a worker step, and a planner's plan (task.plan_extended).
  const std::string mixed = Create(kMixedPlan).Str("id");
  ASSERT_EQ(ClaimStep(*client_, "mix").status, 200);
  ASSERT_EQ(
      client_->Post("/v1/tasks/" + mixed + "/complete", R"J({"result":{"answer":"no"}})J").status,
      200);
  ids.push_back(mixed);
  const std::string planned = Create(R"J({"type":"planned","planner":true})J").Str("id");
  ASSERT_EQ(ClaimStep(*client_, "planned").status, 200);
  ASSERT_EQ(client_
                ->Post("/v1/tasks/" + planned + "/complete",
                       R"J({"result":{"steps":[{"tool":"math","input":{"expression":"2**10"}}]}})J")
                .status,
            200);
  ids.push_back(planned);
  for (const std::string& id : ids) {
    const std::string status = Finished(id).Str("status");
    ASSERT_TRUE(status == "succeeded" || status == "failed") << id << " " << status;
  }
  Stop();

  const std::string data = dir_.path();
  const std::string exported = data + "/export.jsonl";
  std::string out;
  ASSERT_EQ(Shell(std::string(RUNLOG_PATH) + " export --partitions 4 --data " + data + " --out " +
                      exported,
                  &out),
            0)
      << out;
  ASSERT_EQ(Shell("python3 " CHECK_HASHES_PY " " + exported + " --expect-tasks 5", &out), 0) << out;
  EXPECT_NE(out.find("checked 5 tasks"), std::string::npos) << out;
  ASSERT_EQ(Shell(std::string(RUNLOG_PATH) + " audit --partitions 4 --data " + data, &out), 0)
      << out;
  EXPECT_NE(out.find(": OK"), std::string::npos) << out;

  // The step.finished of the first task's math step, from the export.
  std::ifstream lines(exported);
  std::string line, event_id, agent_event_id;
  uint32_t partition = 0, agent_partition = 0;
  uint64_t offset = 0, agent_offset = 0;
  while (std::getline(lines, line)) {
    json::Document d;
    d.Parse(line.c_str());
    const auto& e = d["event"];
    if (std::string(e["type"].GetString()) == "step.finished" &&
        std::string(e["aggregate_id"].GetString()) == ids[0] &&
        e["payload"]["step_index"].GetInt() == 1) {
      partition = d["partition"].GetUint();
      offset = d["offset"].GetUint64();
      event_id = e["event_id"].GetString();
    }
    if (std::string(e["type"].GetString()) == "task.succeeded" &&
        std::string(e["aggregate_id"].GetString()) == agent) {
      agent_partition = d["partition"].GetUint();
      agent_offset = d["offset"].GetUint64();
      agent_event_id = e["event_id"].GetString();
    }
  }
  ASSERT_FALSE(event_id.empty());

  // One byte changed: the record's checksum names it.
  const std::string copy1 = data + "-tampered-byte";
  std::filesystem::copy(data, copy1, std::filesystem::copy_options::recursive);
  RewriteRecord(copy1, partition, offset, [](std::string& v) {
    const size_t at = v.find("{\"result\":42}");
    ASSERT_NE(at, std::string::npos);
    v[at + 10] = '3';  // 42 -> 32
  });
  EXPECT_EQ(Shell(std::string(RUNLOG_PATH) + " audit --partitions 4 --data " + copy1, &out), 1)
      << out;
  EXPECT_NE(out.find("offset " + std::to_string(offset)), std::string::npos) << out;

  // The same change with the checksum made good again: the step hash names the event.
  const std::string copy2 = data + "-tampered-event";
  std::filesystem::copy(data, copy2, std::filesystem::copy_options::recursive);
  RewritePayload(copy2, partition, offset, "{\"result\":42}", 10, '3');
  EXPECT_EQ(Shell(std::string(RUNLOG_PATH) + " audit --partitions 4 --data " + copy2, &out), 1)
      << out;
  EXPECT_NE(out.find(event_id), std::string::npos) << out;
  EXPECT_NE(out.find("step_hash mismatch"), std::string::npos) << out;
  // A worker's result changed: the implied agent step's hash names the task's end.
  RewritePayload(copy2, agent_partition, agent_offset, "\"result\":{\"a\":1}", 14, '2');
  EXPECT_EQ(Shell(std::string(RUNLOG_PATH) + " audit --partitions 4 --data " + copy2, &out), 1)
      << out;
  EXPECT_NE(out.find(agent_event_id + " (task.succeeded"), std::string::npos) << out;
  EXPECT_NE(out.find("implied agent step_hash mismatch"), std::string::npos) << out;
  ASSERT_EQ(Shell(std::string(RUNLOG_PATH) + " export --partitions 4 --data " + copy2 + " --out " +
                      exported,
                  &out),
            0);
  EXPECT_EQ(Shell("python3 " CHECK_HASHES_PY " " + exported, &out), 1) << out;
  EXPECT_NE(out.find(event_id), std::string::npos) << out;
  std::filesystem::remove_all(copy1);
  std::filesystem::remove_all(copy2);
}

}  // namespace
}  // namespace runlog::api
