// The two binaries as a user runs them: runlogd serves /healthz over real HTTP
// on loopback and stops cleanly on SIGTERM; bad configuration exits 2 with one
// line; runlogd runs on Kafka served by `runlog mock-kafka` in its own process.

#include <curl/curl.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <thread>

#include "projections/views.h"
#include "tests/testing/http_client.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace runlog {
namespace {

using namespace std::chrono_literals;
using runlog::testing::Process;
using runlog::testing::TempDir;

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// GET over loopback with libcurl; returns {status, body}.
std::pair<long, std::string> HttpGet(const std::string& url) {
  CURL* curl = curl_easy_init();
  std::string body;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  long status = 0;
  if (curl_easy_perform(curl) == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  return {status, body};
}

// Reads runlogd's "serving http://HOST:PORT …" line and returns the base URL.
std::string WaitServing(Process& server) {
  static const std::regex kServing(R"(serving (http://127\.0\.0\.1:\d+))");
  while (auto line = server.ReadStderrLine(20s)) {
    std::smatch m;
    if (std::regex_search(*line, m, kServing)) return m[1];
  }
  return "";
}

TEST(Runlogd, ServesHealthzOnTheEmbeddedLogAndStopsOnSigterm) {
  TempDir dir;
  Process server({RUNLOGD_PATH, "--listen", "127.0.0.1:0", "--data", dir / "data"});
  const std::string base = WaitServing(server);
  ASSERT_FALSE(base.empty()) << server.DrainStderr();
  auto [status, body] = HttpGet(base + "/healthz");
  EXPECT_EQ(status, 200);
  EXPECT_NE(body.find(R"("status":"ok")"), std::string::npos) << body;
  EXPECT_NE(body.find("embedded:" + dir.path() + "/data/log"), std::string::npos) << body;
  EXPECT_EQ(HttpGet(base + "/nope").first, 404);
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(), 0);
}

struct BadConfig {
  std::vector<std::string> args;
  std::string message;
};

TEST(Runlogd, BadConfigurationExitsTwoWithOneLine) {
  TempDir dir;
  { std::ofstream(dir / "file") << "x"; }
  std::vector<BadConfig> cases = {
      {{"--bogus"}, "The following argument was not expected: --bogus"},
      {{"--listen", "nope"}, "--listen must be HOST:PORT"},
      {{"--listen", "127.0.0.1:99999"}, "--listen port must be 0-65535"},
      {{"--data", dir / "file"}, "cannot create data directory"},
      {{"--log", "kafka://127.0.0.1:1"}, "cannot reach Kafka brokers at 127.0.0.1:1"},
      {{"--log", "kafka://127.0.0.1:1", "--kafka-config", "no.such.property=1"},
       "--kafka-config no.such.property"},
      {{"--kafka-config", "novalue"}, "--kafka-config takes KEY=VALUE"},
      {{"--log", "mysql://x"}, "unknown log 'mysql://x'"},
      {{"--partitions", "0"}, "partitions must be between 1 and 4096"},
  };
  for (const BadConfig& c : cases) {
    std::vector<std::string> argv = {RUNLOGD_PATH, "--kafka-connect-timeout-ms", "1000"};
    auto given = [&](const std::string& flag) {
      return std::find(c.args.begin(), c.args.end(), flag) != c.args.end();
    };
    if (!given("--data")) argv.insert(argv.end(), {"--data", dir / "ok"});
    if (!given("--listen")) argv.insert(argv.end(), {"--listen", "127.0.0.1:0"});
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    Process server(argv);
    EXPECT_EQ(server.Wait(), 2) << c.message;
    std::string err = server.DrainStderr();
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_TRUE(err.starts_with("runlogd: ")) << err;
    EXPECT_NE(err.find(c.message), std::string::npos) << err;
  }
}

// `runlog bench` against a real runlogd: only the phases asked for run, every
// request succeeds, and --e2e-samples writes one line per completed task.
TEST(RunlogBench, RunsTheChosenPhasesAndWritesTheEndToEndSamples) {
  TempDir dir;
  Process server({RUNLOGD_PATH, "--listen", "127.0.0.1:0", "--data", dir / "data"});
  static const std::regex kAdmin(R"(admin key \(shown once[^:]*: (\S+))");
  static const std::regex kServing(R"(serving (http://127\.0\.0\.1:\d+))");
  std::string key, base;
  while (auto line = server.ReadStderrLine(20s)) {
    std::smatch m;
    if (std::regex_search(*line, m, kAdmin)) key = m[1];
    if (std::regex_search(*line, m, kServing)) {
      base = m[1];
      break;
    }
  }
  ASSERT_FALSE(key.empty());
  ASSERT_FALSE(base.empty()) << server.DrainStderr();
  const std::string samples = dir / "samples.txt";
  const std::string command = std::string(RUNLOG_PATH) + " bench --url " + base + " --key " + key +
                              " --clients 4 --seconds 0.5 --warmup 0.25 --rate 200" +
                              " --phases create,e2e" + " --e2e-samples " + samples + " --json 2>" +
                              (dir / "bench.stderr");
  std::FILE* p = ::popen(command.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  ASSERT_EQ(::pclose(p), 0) << out;
  rapidjson::Document d;
  d.Parse(out.c_str());
  ASSERT_TRUE(d.IsObject()) << out;
  EXPECT_GT(d["create"]["n"].GetUint64(), 0u) << out;
  EXPECT_EQ(d["claim_complete"]["n"].GetUint64(), 0u) << out;  // not asked for
  const uint64_t done = d["e2e"]["n"].GetUint64();
  EXPECT_EQ(done, 100u) << out;                                // 0.5 s at 200/s
  EXPECT_EQ(d["e2e"]["warmup"]["n"].GetUint64(), 50u) << out;  // 0.25 s before those
  EXPECT_EQ(d["errors"].GetUint64(), 0u) << out;
  std::ifstream lines(samples);
  uint64_t count = 0;
  for (std::string line; std::getline(lines, line);) {
    long long index;
    double sent, latency;
    ASSERT_EQ(std::sscanf(line.c_str(), "%lld %lf %lf", &index, &sent, &latency), 3) << line;
    EXPECT_GT(latency, 0.0);
    // Latency counts from when the task was due, not from when a free
    // producer got to send it.
    EXPECT_NEAR(sent, static_cast<double>(index) * 5.0, 0.01) << line;
    ++count;
  }
  EXPECT_EQ(count, done + 50);
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(), 0);
}

TEST(Runlogd, RunsOnKafkaServedByRunlogMockKafka) {
  ::setenv("RUNLOG_ADMIN_KEY", "rl_test_kafka_admin", 1);
  TempDir dir;
  Process mock({RUNLOG_PATH, "mock-kafka", "--brokers", "3", "--partitions", "4"});
  auto bootstrap = mock.ReadStdoutLine(20s);
  ASSERT_TRUE(bootstrap.has_value()) << mock.DrainStderr();
  EXPECT_TRUE(bootstrap->starts_with("127.0.0.1:")) << *bootstrap;
  Process server({RUNLOGD_PATH, "--listen", "127.0.0.1:0", "--data", dir / "data", "--log",
                  "kafka://" + *bootstrap, "--partitions", "4"});
  const std::string base = WaitServing(server);
  ASSERT_FALSE(base.empty()) << server.DrainStderr();
  auto [status, body] = HttpGet(base + "/healthz");
  EXPECT_EQ(status, 200);
  EXPECT_NE(body.find("kafka:" + *bootstrap + "/runlog.events"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("partitions":4)"), std::string::npos) << body;
  // The whole stack on Kafka: a create is durable there, and the views built
  // from the topic answer the read.
  runlog::testing::HttpClient client(base);
  client.SetKey("rl_test_kafka_admin");
  // A cluster of one: ready once the group gave it every partition.
  ASSERT_TRUE(runlog::testing::WaitReady(client, 30s)) << client.Get("/readyz").body;
  auto created = client.Post("/v1/tasks", R"({"type":"on_kafka","input":{"n":1}})");
  ASSERT_EQ(created.status, 201) << created.body;
  auto got = client.Get("/v1/tasks/" + created.Str("id"));
  EXPECT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.Str("status"), "queued");
  auto claimed = client.Post("/v1/tasks/claim", R"({"types":["on_kafka"]})");
  EXPECT_EQ(claimed.status, 200) << claimed.body;
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(), 0);
  mock.Signal(SIGTERM);
  EXPECT_EQ(mock.Wait(), 0);
}

// An executor killed mid-step (runlogd SIGKILLed while a sandboxed step runs):
// after a restart the step's lease expires, the retry is an explicit, counted
// event, and an executor runs the task on from that step; step 1 is not re-run.
TEST(Runlogd, AnExecutorKilledMidStepIsRetriedFromThatStep) {
  TempDir dir;
  const std::vector<std::string> argv = {RUNLOGD_PATH, "--listen",   "127.0.0.1:0",
                                         "--data",     dir / "data", "--executor-lease-margin-ms",
                                         "500"};
  auto server = std::make_unique<Process>(argv);
  std::string base = WaitServing(*server);
  ASSERT_FALSE(base.empty()) << server->DrainStderr();
  runlog::testing::HttpClient client(base);
  auto key = client.Post("/v1/keys/register", "");
  ASSERT_EQ(key.status, 201) << key.body;
  client.SetKey(key.Str("apiKey"));
  auto created = client.Post("/v1/tasks", R"J({"max_attempts":2,"limits":{"max_step_seconds":5},
      "plan":{"steps":[{"tool":"math","input":{"expression":"1+1"}},
                       {"tool":"shell_sandbox","input":{"command":"sleep 2; echo done"}}]}})J");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id = created.Str("id");
  auto started2 = [&](const runlog::testing::HttpResponse& trace) {
    int n = 0;
    for (const auto& e : trace["events"].GetArray()) {
      if (std::string(e["event"].GetString()) == "step.started" &&
          e["payload"]["step_index"].GetInt() == 2) {
        ++n;
      }
    }
    return n;
  };
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (started2(client.Get("/v1/tasks/" + id + "/trace")) == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  server->Signal(SIGKILL);
  server->Wait();

  server = std::make_unique<Process>(argv);
  base = WaitServing(*server);
  ASSERT_FALSE(base.empty()) << server->DrainStderr();
  runlog::testing::HttpClient again(base);
  again.SetKey(key.Str("apiKey"));
  runlog::testing::HttpResponse task;
  while (std::chrono::steady_clock::now() < deadline + 10s) {
    task = again.Get("/v1/tasks/" + id);
    if (task.Str("status") == "succeeded" || task.Str("status") == "failed") break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(task.Str("status"), "succeeded") << task.body;
  EXPECT_EQ(task["retry_count"].GetInt(), 1);
  auto trace = again.Get("/v1/tasks/" + id + "/trace");
  EXPECT_EQ(started2(trace), 2) << trace.body;
  std::vector<std::string> kinds;
  for (const auto& e : trace["events"].GetArray()) kinds.push_back(e["event"].GetString());
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "task.lease_expired"), 1);
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "step.finished"), 2) << trace.body;
  for (const auto& e : trace["events"].GetArray()) {
    if (std::string(e["event"].GetString()) == "task.retry_scheduled") {
      EXPECT_STREQ(e["payload"]["reason"].GetString(), "executor_lost");
    }
  }
  EXPECT_STREQ(trace["steps"][1]["output"]["stdout"].GetString(), "done\n");
  server->Signal(SIGTERM);
  EXPECT_EQ(server->Wait(), 0);
}

// `runlog rebuild` rebuilds the usage and artifact views, with costs, byte for byte as it
// was built while the tasks ran: a model's steps (through `runlog mock-llm`)
// and a worker's reported usage.
TEST(RunlogRebuild, GivesTheUsageViewByteForByte) {
  TempDir dir;
  Process mock({RUNLOG_PATH, "mock-llm"});
  auto llm = mock.ReadStdoutLine(10s);
  ASSERT_TRUE(llm.has_value()) << mock.DrainStderr();
  ::setenv("RUNLOG_ADMIN_KEY", "rl_admin_rebuild", 1);
  auto usage_rows = [&] {
    auto views = projections::Views::Open(dir / "data");
    EXPECT_TRUE(views.has_value());
    std::vector<std::pair<std::string, std::string>> rows;
    if (!views) return rows;
    auto dump = (*views)->Dump();
    EXPECT_TRUE(dump.has_value());
    if (!dump) return rows;
    for (const auto& row : *dump) {
      if (row.first.starts_with("u") || row.first.starts_with("a")) rows.push_back(row);
    }
    return rows;
  };
  {
    Process server(
        {RUNLOGD_PATH, "--listen", "127.0.0.1:0", "--data", dir / "data", "--llm-url", *llm});
    const std::string base = WaitServing(server);
    ASSERT_FALSE(base.empty()) << server.DrainStderr();
    runlog::testing::HttpClient client(base);
    client.SetKey("rl_admin_rebuild");
    std::vector<std::string> ids;
    for (int i = 0; i < 3; ++i) {
      auto r = client.Post("/api/v1/tasks/execute",
                           R"({"task_definition":{"topic":"t)" + std::to_string(i) + R"("}})");
      ASSERT_EQ(r.status, 201) << r.body;
      ids.push_back(r.Str("id"));
    }
    ASSERT_EQ(
        client.Post("/v1/tasks", R"({"type":"w","plan":{"steps":[{"tool":"agent"}]}})").status,
        201);
    auto claimed = client.Post("/v1/tasks/claim", R"({"types":["w"]})");
    ASSERT_EQ(claimed.status, 200) << claimed.body;
    // Artifacts: one kept, one deleted (its deletion is applied after its
    // creation on a rebuild too), and an output.
    for (const char* type : {"kept", "gone"}) {
      auto made = client.Post("/v1/tasks/" + claimed.Str("id") + "/artifacts",
                              std::string(R"({"type":")") + type + R"(","data":{"n":1}})");
      ASSERT_EQ(made.status, 201) << made.body;
      if (std::string(type) == "gone") {
        ASSERT_EQ(client.Do("DELETE", "/v1/artifacts/" + made.Str("id"), nullptr, {}).status, 200);
      }
    }
    ASSERT_EQ(client.Post("/v1/outputs", R"({"content":[1]})").status, 201);
    ASSERT_EQ(client
                  .Post("/v1/tasks/" + claimed.Str("id") + "/complete",
                        R"({"usage":{"input_tokens":100,"output_tokens":7,"model":"m"}})")
                  .status,
              200);
    for (const std::string& id : ids) {
      for (int i = 0; i < 200 && client.Get("/v1/tasks/" + id).Str("status") != "succeeded"; ++i) {
        std::this_thread::sleep_for(50ms);
      }
    }
    auto usage = client.Get("/v1/usage?group_by=none");
    EXPECT_GT(usage["total"]["cost_usd"].GetDouble(), 0) << usage.body;
    EXPECT_EQ(usage["total"]["tasks_succeeded"].GetInt(), 4) << usage.body;
    server.Signal(SIGTERM);
    ASSERT_EQ(server.Wait(), 0);
  }
  const auto live = usage_rows();
  EXPECT_GE(live.size(), 4u);  // usage rows, a kept artifact and an output
  Process rebuild({RUNLOG_PATH, "rebuild", "--data", dir / "data"});
  ASSERT_EQ(rebuild.Wait(), 0) << rebuild.DrainStderr();
  EXPECT_EQ(usage_rows(), live);
}

// `runlog ARGS…` to its end.
testing::Outcome RunCli(std::vector<std::string> args) {
  args.insert(args.begin(), RUNLOG_PATH);
  return testing::Execute(std::move(args), 30s);
}

TEST(RunlogCli, ShowsTasksAsTablesOrJsonAndSaysWhatWentWrong) {
  TempDir dir;
  ::setenv("RUNLOG_ADMIN_KEY", "cli-admin-key", 1);
  Process server({RUNLOGD_PATH, "--listen", "127.0.0.1:0", "--data", dir / "data"});
  const std::string base = WaitServing(server);
  ASSERT_FALSE(base.empty()) << server.DrainStderr();
  testing::HttpClient http(base);
  http.SetKey("cli-admin-key");
  auto created = http.Post("/v1/tasks", R"({"type":"summarize","input":{"doc":"a"}})");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id = created.Str("id");
  const std::vector<std::string> at = {"--url", base, "--key", "cli-admin-key"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), at.begin(), at.end());
    return args;
  };

  // A table for people: a header row, then the task.
  testing::Outcome list = RunCli(with({"tasks", "list"}));
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_TRUE(list.out.starts_with("ID ")) << list.out;
  EXPECT_TRUE(std::regex_search(list.out, std::regex(id + R"( +summarize +queued +- +0 )")))
      << list.out;
  // The server's JSON for scripts, the same whichever side of the
  // subcommand --json is on.
  for (const auto& args : {with({"tasks", "list", "--json"}), with({"tasks", "--json", "list"})}) {
    testing::Outcome json = RunCli(args);
    ASSERT_EQ(json.code, 0) << json.err;
    rapidjson::Document doc;
    doc.Parse(json.out.c_str());
    ASSERT_TRUE(doc.IsObject()) << json.out;
    ASSERT_EQ(doc["tasks"].Size(), 1u);
    EXPECT_EQ(doc["tasks"][0]["id"].GetString(), id);
  }
  testing::Outcome get = RunCli(with({"tasks", "get", id}));
  ASSERT_EQ(get.code, 0) << get.err;
  EXPECT_TRUE(std::regex_search(get.out, std::regex(R"(\nstatus +queued\n)"))) << get.out;

  testing::Outcome cancel = RunCli(with({"tasks", "cancel", id}));
  ASSERT_EQ(cancel.code, 0) << cancel.err;
  EXPECT_TRUE(std::regex_search(cancel.out, std::regex(R"(\nstatus +cancelled\n)"))) << cancel.out;
  testing::Outcome filtered = RunCli(with({"tasks", "list", "--status", "queued"}));
  EXPECT_EQ(filtered.out.find(id), std::string::npos) << filtered.out;
  // By agent (escaped on the way, unescaped by the server) and creation time.
  auto scout = http.Post("/v1/tasks", R"({"type":"summarize","agent_id":"scout #1"})");
  ASSERT_EQ(scout.status, 201) << scout.body;
  testing::Outcome by_agent = RunCli(with({"tasks", "list", "--agent", "scout #1"}));
  EXPECT_NE(by_agent.out.find(scout.Str("id")), std::string::npos) << by_agent.out << by_agent.err;
  EXPECT_EQ(by_agent.out.find(id), std::string::npos) << by_agent.out;
  testing::Outcome later =
      RunCli(with({"tasks", "list", "--created-after", scout.Str("created_at")}));
  EXPECT_NE(later.out.find(scout.Str("id")), std::string::npos) << later.out << later.err;
  EXPECT_EQ(later.out.find(id), std::string::npos) << later.out;
  // Page by page: the cursor the table prints gives the next page.
  testing::Outcome first = RunCli(with({"tasks", "list", "--limit", "1"}));
  std::smatch cursor;
  ASSERT_TRUE(std::regex_search(first.out, cursor, std::regex(R"(\(more: --cursor (\S+)\))")))
      << first.out;
  EXPECT_NE(first.out.find(scout.Str("id")), std::string::npos) << first.out;  // the newest
  testing::Outcome second = RunCli(with({"tasks", "list", "--limit", "1", "--cursor", cursor[1]}));
  EXPECT_NE(second.out.find(id), std::string::npos) << second.out;
  EXPECT_EQ(second.out.find("(more:"), std::string::npos) << second.out;
  testing::Outcome not_a_time = RunCli(with({"tasks", "list", "--created-before", "soon"}));
  EXPECT_EQ(not_a_time.code, 1);
  EXPECT_NE(not_a_time.err.find("created_before"), std::string::npos) << not_a_time.err;

  testing::Outcome usage = RunCli(with({"usage"}));
  ASSERT_EQ(usage.code, 0) << usage.err;
  EXPECT_TRUE(std::regex_search(usage.out, std::regex(R"(total\.tasks_created +2\n)")))
      << usage.out;

  // Errors: the server's code on stderr and exit 1; no server, exit 3.
  testing::Outcome missing = RunCli(with({"tasks", "get", "tsk_nope"}));
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("404 TASK_NOT_FOUND"), std::string::npos) << missing.err;
  testing::Outcome keyless = RunCli({"tasks", "list", "--url", base});
  EXPECT_EQ(keyless.code, 1);
  EXPECT_NE(keyless.err.find("UNAUTHENTICATED"), std::string::npos) << keyless.err;
  EXPECT_NE(keyless.err.find("RUNLOG_KEY"), std::string::npos) << keyless.err;
  // A URL with a trailing slash is the same server; an empty id is refused
  // before any call (it would name the list route).
  testing::Outcome slash =
      RunCli({"tasks", "get", id, "--url", base + "/", "--key", "cli-admin-key"});
  EXPECT_EQ(slash.code, 0) << slash.err;
  testing::Outcome empty = RunCli(with({"tasks", "get", ""}));
  EXPECT_EQ(empty.code, 2) << empty.out;
  EXPECT_NE(empty.err.find("an id cannot be empty"), std::string::npos) << empty.err;
  testing::Outcome away = RunCli({"tasks", "list", "--url", "http://127.0.0.1:1", "--key", "k"});
  EXPECT_EQ(away.code, 3);
  EXPECT_NE(away.err.find("cannot reach http://127.0.0.1:1"), std::string::npos) << away.err;

  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(), 0);
}

}  // namespace
}  // namespace runlog
