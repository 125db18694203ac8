// The API end to end over real HTTP on loopback: every endpoint, the seeds'
// example requests, every error code, long polls, leases, tenants, keep-alive.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <future>
#include <random>
#include <thread>

#include "api/exchange.h"
#include "api/render.h"
#include "events/local_store.h"
#include "events/sha256.h"
#include "tests/testing/contract_actions.h"
#include "tests/testing/http_client.h"
#include "tests/testing/server.h"
#include "tests/testing/wait.h"

namespace runlog::api {
namespace {

using namespace std::chrono_literals;
using runlog::testing::HttpClient;
using runlog::testing::HttpResponse;
using runlog::testing::WaitFor;

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<runlog::testing::TestServer>(dir_.path(), clock_);
    client_ = std::make_unique<HttpClient>(server_->url());
    client_->SetKey(runlog::testing::kAdminKey);
  }
  void TearDown() override {
    // Every call a contract offered in this test leads somewhere.
    if (server_ != nullptr) runlog::testing::ExpectActionsLeadSomewhere(server_->url());
    client_.reset();
    server_.reset();
  }
  // (Some tests stop the server themselves: server_ may be null here.)

  // Every answer carries "version" and an agent_contract of version 1.
  static void ExpectContract(const HttpResponse& r) {
    ASSERT_TRUE(r.json.IsObject()) << r.body;
    EXPECT_TRUE(r.json.HasMember("version")) << r.body;
    ASSERT_TRUE(r.json.HasMember("agent_contract")) << r.body;
    const auto& c = r["agent_contract"];
    EXPECT_STREQ(c["version"].GetString(), "1");
    EXPECT_TRUE(c["next_actions"].IsArray());
    EXPECT_TRUE(c["retryable"].IsBool());
    EXPECT_TRUE(c["lease_valid"].IsBool());
  }

  static void ExpectError(const HttpResponse& r, long status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.ErrorCode(), code) << r.body;
    ExpectContract(r);
    if (r.json.IsObject() && r.json.HasMember("error")) {
      EXPECT_TRUE(r["error"]["message"].IsString());
      EXPECT_TRUE(r["error"]["details"].IsObject());
    }
  }

  std::string CreateId(const std::string& body = R"({"type":"t"})") {
    auto r = client_->Post("/v1/tasks", body);
    EXPECT_EQ(r.status, 201) << r.body;
    return r.Str("id");
  }

  runlog::testing::TempDir dir_;
  infra::ManualClock clock_{1'800'000'000'000};
  std::unique_ptr<runlog::testing::TestServer> server_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(ApiTest, OrchestrionSeedFlow) {
  // Register, create with an Idempotency-Key, claim, complete: the seed's calls verbatim.
  HttpClient anon(server_->url());
  auto reg = anon.Post("/v1/keys/register", "");
  ASSERT_EQ(reg.status, 201) << reg.body;
  EXPECT_TRUE(reg.Str("apiKey").starts_with("rl_live_"));
  EXPECT_TRUE(reg.Str("accountId").starts_with("acct_"));
  HttpClient worker(server_->url());
  worker.SetKey(reg.Str("apiKey"));

  const std::string body =
      R"({ "type": "process_document", "payload": { "document_url": "https://x/doc" }, "max_attempts": 3 })";
  auto created = worker.Post("/v1/tasks", body, {"Idempotency-Key: job-001-attempt-1"});
  ASSERT_EQ(created.status, 201) << created.body;
  ExpectContract(created);
  EXPECT_EQ(created.Str("status"), "queued");
  // It waits for a worker, and the contract says so.
  EXPECT_STREQ(created["agent_contract"]["next_actions"][2]["action"].GetString(), "await_worker");
  EXPECT_EQ(created.Str("id"), created.Str("task_id"));
  auto replay = worker.Post("/v1/tasks", body, {"Idempotency-Key: job-001-attempt-1"});
  EXPECT_EQ(replay.status, 200);
  EXPECT_EQ(replay.Str("id"), created.Str("id"));
  EXPECT_EQ(replay.headers["idempotent-replayed"], "true");
  ExpectError(
      worker.Post("/v1/tasks", R"({"type":"other"})", {"Idempotency-Key: job-001-attempt-1"}), 409,
      "IDEMPOTENCY_CONFLICT");

  auto claim = worker.Post("/v1/tasks/claim", "");
  ASSERT_EQ(claim.status, 200) << claim.body;
  EXPECT_STREQ(claim["task"]["id"].GetString(), created.Str("id").c_str());
  EXPECT_STREQ(claim["task"]["payload"]["document_url"].GetString(), "https://x/doc");
  const auto& contract = claim["agent_contract"];
  EXPECT_TRUE(contract["lease_valid"].GetBool());
  EXPECT_EQ(contract["lease_expires_in_seconds"].GetInt(), 300);
  EXPECT_EQ(contract["recommended_heartbeat_interval_seconds"].GetInt(), 100);
  EXPECT_STREQ(contract["next_actions"][0]["action"].GetString(), "heartbeat");
  EXPECT_TRUE(contract["next_actions"][0]["recommended"].GetBool());
  EXPECT_STREQ(contract["next_actions"][1]["action"].GetString(), "complete_task");
  EXPECT_EQ(claim["lease"]["lease_id"], claim["task"]["lease_id"]);

  const std::string id = created.Str("id");
  auto done =
      worker.Post("/v1/tasks/" + id + "/complete", R"({ "result": { "output_id": "out_01J" } })");
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_STREQ(done["task"]["status"].GetString(), "succeeded");
  EXPECT_STREQ(done["agent_contract"]["next_actions"][0]["action"].GetString(), "claim_next");
  // An ended task leaves the writer's live state; the key still answers with it,
  // and late commands still get 409s.
  auto after = worker.Post("/v1/tasks", body, {"Idempotency-Key: job-001-attempt-1"});
  EXPECT_EQ(after.status, 200) << after.body;
  EXPECT_EQ(after.Str("status"), "succeeded");
  EXPECT_STREQ(after["result"]["output_id"].GetString(), "out_01J");
  ExpectError(
      worker.Post("/v1/tasks", R"({"type":"other"})", {"Idempotency-Key: job-001-attempt-1"}), 409,
      "IDEMPOTENCY_CONFLICT");
  // The same complete again (a retry after a timeout) is answered as the first
  // was; another result is a conflict.
  const std::string same = R"({ "result": { "output_id": "out_01J" } })";
  auto again = worker.Post("/v1/tasks/" + id + "/complete", same);
  EXPECT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(again.headers["idempotent-replayed"], "true");
  EXPECT_STREQ(again["task"]["status"].GetString(), "succeeded");
  const std::string lease = claim["lease"]["lease_id"].GetString();
  EXPECT_EQ(worker
                .Post("/v1/tasks/" + id + "/complete",
                      R"({"lease_id":")" + lease + R"(","result":{"output_id":"out_01J"}})")
                .status,
            200);
  ExpectError(worker.Post("/v1/tasks/" + id + "/complete", "{}"), 409, "TASK_TERMINAL");
  ExpectError(worker.Post("/v1/tasks/" + id + "/complete",
                          R"({"lease_id":"lease_other","result":{"output_id":"out_01J"}})"),
              409, "TASK_TERMINAL");
  ExpectError(client_->Post("/v1/tasks/" + id + "/complete", same), 404, "TASK_NOT_FOUND");
  ExpectError(worker.Post("/v1/tasks/" + id + "/cancel", "{}"), 409, "TASK_TERMINAL");
  auto empty = worker.Post("/v1/tasks/claim", "");
  EXPECT_EQ(empty.status, 200);
  EXPECT_TRUE(empty["task"].IsNull());
  EXPECT_STREQ(empty["agent_contract"]["next_actions"][0]["action"].GetString(),
               "retry_after_wait");
  EXPECT_STREQ(empty["agent_contract"]["next_actions"][0]["endpoint"].GetString(),
               "/v1/tasks/claim");
}

TEST_F(ApiTest, ArtexionSeedFlow) {
  auto created = client_->Post("/api/v1/tasks/execute", R"({
    "task_definition": { "topic": "Summarize weekly release notes" },
    "max_steps": 12, "timeout_seconds": 45 })");
  ASSERT_EQ(created.status, 201) << created.body;
  for (const char* field :
       {"task_id", "status", "duration_seconds", "cost_usd", "result", "error", "failure"}) {
    EXPECT_TRUE(created.json.HasMember(field)) << field;
  }
  const std::string id = created.Str("task_id");
  auto task = client_->Get("/api/v1/tasks/" + id);
  ASSERT_EQ(task.status, 200) << task.body;
  EXPECT_STREQ(task["input"]["topic"].GetString(), "Summarize weekly release notes");
  EXPECT_EQ(task["plan"]["limits"]["max_steps"].GetInt(), 12);
  EXPECT_EQ(task["plan"]["limits"]["max_total_seconds"].GetInt(), 45);
  for (const char* field :
       {"id", "task_id", "replay_of_task_id", "status", "plan", "result", "error", "created_at",
        "execution_started_at", "execution_finished_at", "failure", "attempt", "lease"}) {
    EXPECT_TRUE(task.json.HasMember(field)) << field;
  }
  auto trace = client_->Get("/api/v1/tasks/" + id + "/trace");
  ASSERT_EQ(trace.status, 200) << trace.body;
  ExpectContract(trace);
  EXPECT_EQ(trace.Str("id"), id);  // as every answer about a task
  EXPECT_EQ(trace.Str("task_id"), id);
  EXPECT_EQ(trace["events"].Size(), 3u);
  // Its status changes: none → created → planned → queued.
  ASSERT_EQ(trace["transitions"].Size(), 3u) << trace.body;
  EXPECT_TRUE(trace["transitions"][0]["from"].IsNull());
  EXPECT_STREQ(trace["transitions"][0]["to"].GetString(), "created");
  EXPECT_STREQ(trace["transitions"][2]["from"].GetString(), "planned");
  EXPECT_STREQ(trace["transitions"][2]["to"].GetString(), "queued");
  EXPECT_TRUE(trace["transitions"][2]["at"].IsString());
  for (const char* field : {"events", "steps", "plan_validation_failures",
                            "runtime_schema_failures", "summary", "estimated_cost_usd"}) {
    EXPECT_TRUE(trace.json.HasMember(field)) << field;
  }
  for (const char* field : {"total_steps", "succeeded_steps", "failed_steps", "running_steps",
                            "total_duration_ms", "queue_latency_ms", "retry_count"}) {
    EXPECT_TRUE(trace["summary"].HasMember(field)) << field;
  }
}

TEST_F(ApiTest, AriftlySeedFlow) {
  auto created = client_->Post("/v1/tasks", R"({
    "agent_id": "ai-readiness-agent", "task_type": "ai_readiness.full_audit",
    "input": { "scope": "full", "focus_framework": "eu_ai_act" } })");
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_FALSE(created.Str("created_at").empty());
  const std::string id = created.Str("task_id");
  auto task = client_->Get("/v1/tasks/" + id);
  EXPECT_EQ(task.Str("task_type"), "ai_readiness.full_audit");
  EXPECT_EQ(task.Str("agent_id"), "ai-readiness-agent");
  auto cancelled = client_->Post("/v1/tasks/" + id + "/cancel", "");
  ASSERT_EQ(cancelled.status, 200) << cancelled.body;
  EXPECT_STREQ(cancelled["task"]["status"].GetString(), "cancelled");
  EXPECT_EQ(cancelled.Str("task_id"), id);  // where a client of any seed looks
  EXPECT_EQ(cancelled.Str("status"), "cancelled");
  ExpectError(client_->Post("/v1/tasks/" + id + "/cancel", ""), 409, "TASK_TERMINAL");
}

TEST_F(ApiTest, EveryErrorCodeIsJsonWithAContract) {
  ExpectError(client_->Post("/v1/tasks", R"({"type": "x",)"), 400, "INVALID_JSON");
  auto bad_json = client_->Post("/v1/tasks", "{\"a\": tru}");
  EXPECT_EQ(bad_json["error"]["details"]["position"].GetInt(), 9) << bad_json.body;  // the "}"
  auto validation = client_->Post("/v1/tasks", R"({"max_attempts": "three"})");
  ExpectError(validation, 400, "VALIDATION_ERROR");
  EXPECT_STREQ(validation["error"]["details"]["field"].GetString(), "max_attempts");
  ExpectError(client_->Post("/v1/tasks", R"({"plan": {"steps": [3]}})"), 400, "VALIDATION_ERROR");
  ExpectError(client_->Post("/v1/tasks", "[1,2]"), 400, "VALIDATION_ERROR");

  HttpClient nobody(server_->url());
  ExpectError(nobody.Get("/v1/tasks"), 401, "UNAUTHENTICATED");
  nobody.SetKey("rl_live_wrong");
  ExpectError(nobody.Get("/v1/tasks"), 401, "UNAUTHENTICATED");
  // HTTP threads remember recent keys' hashes: one a character off a
  // remembered key is still refused, and the key still works after it.
  const std::string good = server_->KeyWithScopes("acct_near", {"read"});
  std::string off = good;
  off.back() = off.back() == 'a' ? 'b' : 'a';
  HttpClient near(server_->url());
  for (const std::string* key :
       std::initializer_list<const std::string*>{&good, &good, &off, &off, &good}) {
    near.SetKey(*key);
    for (int i = 0; i < 3; ++i) {
      if (key == &good) {
        EXPECT_EQ(near.Get("/v1/tasks").status, 200);
      } else {
        ExpectError(near.Get("/v1/tasks"), 401, "UNAUTHENTICATED");
      }
    }
  }

  HttpClient reader(server_->url());
  reader.SetKey(server_->KeyWithScopes("acct_r", {"read"}));
  ExpectError(reader.Post("/v1/tasks", "{}"), 403, "FORBIDDEN");

  ExpectError(client_->Get("/v1/tasks/task_missing"), 404, "TASK_NOT_FOUND");
  ExpectError(client_->Get("/v1/nothing/here"), 404, "NOT_FOUND");
  ExpectError(client_->Get("/elsewhere"), 404, "NOT_FOUND");
  ExpectError(client_->Get("/v1/tasks/claim"), 405, "METHOD_NOT_ALLOWED");
  ExpectError(client_->Do("DELETE", "/v1/tasks", nullptr, {}), 405, "METHOD_NOT_ALLOWED");

  const std::string id = CreateId();
  auto claim = client_->Post("/v1/tasks/claim", "");
  const std::string lease = claim["lease"]["lease_id"].GetString();
  ExpectError(client_->Post("/v1/tasks/" + id + "/complete", R"({"lease_id":"lease_nope"})"), 409,
              "LEASE_MISMATCH");
  client_->Post("/v1/tasks/" + id + "/cancel", "");
  ExpectError(client_->Post("/v1/tasks/" + id + "/heartbeat", "{\"lease_id\":\"" + lease + "\"}"),
              409, "TASK_CANCELLED");
  ExpectError(client_->Post("/v1/tasks/" + id + "/cancel", ""), 409, "TASK_TERMINAL");

  const std::string big(1024 * 1024 + 10, 'x');
  ExpectError(client_->Post("/v1/tasks", "{\"input\":{\"x\":\"" + big + "\"}}"), 413,
              "PAYLOAD_TOO_LARGE");
  ExpectError(client_->Post("/v1/tasks", "<task/>", {"Content-Type: application/xml"}), 415,
              "UNSUPPORTED_MEDIA_TYPE");
  auto cap = client_->Post("/v1/tasks", R"({"timeout_seconds": 999999})");
  ExpectError(cap, 422, "LIMIT_EXCEEDED");
  EXPECT_EQ(cap["error"]["details"]["cap"].GetInt(), 3600);
  ExpectError(client_->Post("/v1/tasks/claim", R"({"lease_seconds": 100000})"), 422,
              "LIMIT_EXCEEDED");

  HttpClient limited(server_->url());
  limited.SetKey(server_->KeyWithScopes("acct_l", {"read"}, "free"));  // 600 requests a minute
  HttpResponse last;
  for (int i = 0; i < 601; ++i) last = limited.Get("/v1/tasks?limit=1");
  ExpectError(last, 429, "RATE_LIMITED");
  EXPECT_FALSE(last.headers["retry-after"].empty());
  EXPECT_TRUE(last["agent_contract"]["retryable"].GetBool());
  EXPECT_STREQ(last["agent_contract"]["next_actions"][0]["action"].GetString(), "retry_after_wait");
}

TEST_F(ApiTest, CurlStyleFormContentTypeIsAcceptedAsJson) {
  // `curl -d '{…}'` sends application/x-www-form-urlencoded; the seeds do exactly that.
  auto r = client_->Post("/v1/tasks", R"({"type":"t"})",
                         {"Content-Type: application/x-www-form-urlencoded"});
  EXPECT_EQ(r.status, 201) << r.body;
}

TEST_F(ApiTest, LongPollClaimIsAnsweredWhenATaskArrives) {
  auto waiting = std::async(std::launch::async, [&] {
    HttpClient worker(server_->url());
    worker.SetKey(runlog::testing::kAdminKey);
    auto start = std::chrono::steady_clock::now();
    auto r = worker.Post("/v1/tasks/claim", R"({"types":["late"],"wait_seconds":20})");
    return std::make_pair(std::move(r), std::chrono::steady_clock::now() - start);
  });
  // The task must arrive while the claim waits for it, not before.
  ASSERT_TRUE(WaitFor([&] { return server_->tasks().parked_claims() > 0; }))
      << "the long poll did not park within 10 s";
  const std::string id = CreateId(R"({"type":"late"})");
  auto [claim, took] = waiting.get();
  ASSERT_EQ(claim.status, 200) << claim.body;
  EXPECT_STREQ(claim["task"]["id"].GetString(), id.c_str());
  EXPECT_LT(took, 10s);
  auto timed_out = client_->Post("/v1/tasks/claim", R"({"types":["none"],"wait_seconds":1})");
  EXPECT_TRUE(timed_out["task"].IsNull());
}

TEST_F(ApiTest, StoppingAnswersParkedLongPollsAtOnce) {
  auto parked = std::async(std::launch::async, [&] {
    HttpClient worker(server_->url());
    worker.SetKey(runlog::testing::kAdminKey);
    return worker.Post("/v1/tasks/claim", R"({"types":["never"],"wait_seconds":25})");
  });
  ASSERT_TRUE(WaitFor([&] { return server_->tasks().parked_claims() > 0; }))
      << "the long poll did not park within 10 s";
  ASSERT_EQ(server_->tasks().parked_claims(), 1u);
  const auto start = std::chrono::steady_clock::now();
  server_.reset();  // the graceful stop: drain, release parked claims, stop
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s) << "the stop waited out the drain";
  auto r = parked.get();
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(r.json.IsObject() && r["task"].IsNull()) << r.body;
}

TEST_F(ApiTest, ExpiredLeaseMakesTheTaskClaimableAgainAsACountedRetry) {
  const std::string id = CreateId(R"({"type":"t","max_attempts":2})");
  auto first = client_->Post("/v1/tasks/claim", R"({"lease_seconds":10})");
  const std::string lease = first["lease"]["lease_id"].GetString();
  auto beat = client_->Post("/v1/tasks/" + id + "/heartbeat", "{\"lease_id\":\"" + lease + "\"}");
  ASSERT_EQ(beat.status, 200) << beat.body;
  EXPECT_EQ(beat["agent_contract"]["lease_expires_in_seconds"].GetInt(), 10);
  clock_.Advance(11'000);
  auto late = client_->Post("/v1/tasks/" + id + "/heartbeat", "{\"lease_id\":\"" + lease + "\"}");
  ExpectError(late, 409, "LEASE_EXPIRED");
  EXPECT_FALSE(late["agent_contract"]["lease_valid"].GetBool());
  EXPECT_STREQ(late["agent_contract"]["next_actions"][0]["action"].GetString(), "claim_next");
  auto second = client_->Post("/v1/tasks/claim", "");
  ASSERT_EQ(second.status, 200);
  EXPECT_STREQ(second["task"]["id"].GetString(), id.c_str());
  EXPECT_EQ(second["task"]["attempt"].GetInt(), 2);
  EXPECT_EQ(second["task"]["retry_count"].GetInt(), 1);
  auto trace = client_->Get("/v1/tasks/" + id + "/trace");
  EXPECT_EQ(trace["summary"]["retry_count"].GetInt(), 1);
}

TEST_F(ApiTest, FailWithRetryableRequeuesUntilAttemptsRunOut) {
  const std::string id = CreateId(R"({"type":"t","max_attempts":2})");
  client_->Post("/v1/tasks/claim", "");
  auto retried =
      client_->Post("/v1/tasks/" + id + "/fail", R"({"error":"flaky","retryable":true})");
  EXPECT_STREQ(retried["task"]["status"].GetString(), "queued");
  client_->Post("/v1/tasks/claim", "");
  // A worker's own code is kept as sent, within bounds.
  for (const std::string& code : {std::string(129, 'X'), std::string("BAD\\u0007INPUT")}) {
    auto refused = client_->Post("/v1/tasks/" + id + "/fail",
                                 R"({"error":{"code":")" + code + R"(","message":"no"}})");
    ExpectError(refused, 400, "VALIDATION_ERROR");
    EXPECT_STREQ(refused["error"]["details"]["field"].GetString(), "error.code") << refused.body;
  }
  auto failed = client_->Post("/v1/tasks/" + id + "/fail",
                              R"({"error":{"code":"BAD_INPUT","message":"no"},"retryable":true})");
  EXPECT_STREQ(failed["task"]["status"].GetString(), "failed");
  EXPECT_STREQ(failed["task"]["error"]["code"].GetString(), "BAD_INPUT");
}

// The writers forget most ended tasks a minute after they end; a late
// command still hears how its task ended, from the task view.
TEST_F(ApiTest, LateCommandsOnLongEndedTasksAnswer409) {
  const std::string done = CreateId(R"({"type":"late"})");
  auto claim = client_->Post("/v1/tasks/claim", R"({"types":["late"]})");
  ASSERT_EQ(claim.status, 200) << claim.body;
  const std::string lease =
      "{\"lease_id\":\"" + std::string(claim["lease"]["lease_id"].GetString()) + "\"}";
  ASSERT_EQ(client_->Post("/v1/tasks/" + done + "/complete", lease).status, 200);
  const std::string cancelled = CreateId(R"({"type":"late"})");
  ASSERT_EQ(client_->Post("/v1/tasks/" + cancelled + "/cancel", "").status, 200);
  // What a minute does to the views (they catch up in milliseconds), then to the writers.
  ASSERT_EQ(client_->Get("/v1/tasks/" + done).status, 200);
  ASSERT_EQ(client_->Get("/v1/tasks/" + cancelled).status, 200);
  clock_.Advance(120'000);
  // The same complete is answered as the first was (from the view now); another result is 409.
  auto repeated = client_->Post("/v1/tasks/" + done + "/complete", lease);
  EXPECT_EQ(repeated.status, 200) << repeated.body;
  EXPECT_EQ(repeated.headers["idempotent-replayed"], "true");
  const std::string other_result = lease.substr(0, lease.size() - 1) + R"(,"result":{"x":1}})";
  ExpectError(client_->Post("/v1/tasks/" + done + "/complete", other_result), 409, "TASK_TERMINAL");
  ExpectError(client_->Post("/v1/tasks/" + done + "/heartbeat", lease), 409, "TASK_TERMINAL");
  ExpectError(client_->Post("/v1/tasks/" + done + "/cancel", ""), 409, "TASK_TERMINAL");
  ExpectError(client_->Post("/v1/tasks/" + cancelled + "/fail", lease), 409, "TASK_CANCELLED");
  ExpectError(client_->Post("/v1/tasks/" + cancelled + "/cancel", ""), 409, "TASK_TERMINAL");
  HttpClient other(server_->url());
  other.SetKey(server_->KeyWithScopes("acct_other", {"worker", "write"}));
  ExpectError(other.Post("/v1/tasks/" + done + "/complete", lease), 404, "TASK_NOT_FOUND");
  ExpectError(other.Post("/v1/tasks/" + cancelled + "/cancel", ""), 404, "TASK_NOT_FOUND");
}

TEST_F(ApiTest, AnotherTenantsTaskIsNotFound) {
  const std::string id = CreateId();
  HttpClient other(server_->url());
  other.SetKey(server_->KeyWithScopes("acct_other", {"read", "write", "worker"}));
  ExpectError(other.Get("/v1/tasks/" + id), 404, "TASK_NOT_FOUND");
  ExpectError(other.Get("/v1/tasks/" + id + "/trace"), 404, "TASK_NOT_FOUND");
  ExpectError(other.Post("/v1/tasks/" + id + "/cancel", ""), 404, "TASK_NOT_FOUND");
  EXPECT_TRUE(other.Post("/v1/tasks/claim", "")["task"].IsNull());
  EXPECT_EQ(other.Get("/v1/tasks")["tasks"].Size(), 0u);
}

TEST_F(ApiTest, ListsNewestFirstWithFiltersAndCursorPages) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(CreateId(i % 2 ? R"({"type":"odd"})" : R"({"type":"even"})"));
    clock_.Advance(1);
  }
  auto page1 = client_->Get("/v1/tasks?limit=2");
  ASSERT_EQ(page1.status, 200) << page1.body;
  EXPECT_EQ(page1["tasks"].Size(), 2u);
  EXPECT_STREQ(page1["tasks"][0]["id"].GetString(), ids[4].c_str());
  EXPECT_TRUE(page1["has_more"].GetBool());
  auto page2 = client_->Get("/v1/tasks?limit=2&cursor=" + page1.Str("next_cursor"));
  EXPECT_STREQ(page2["tasks"][0]["id"].GetString(), ids[2].c_str());
  auto odd = client_->Get("/v1/tasks?type=odd&status=queued");
  EXPECT_EQ(odd["tasks"].Size(), 2u);
  ExpectError(client_->Get("/v1/tasks?status=sleeping"), 400, "VALIDATION_ERROR");
  ExpectError(client_->Get("/v1/tasks?limit=0"), 400, "VALIDATION_ERROR");
  ExpectError(client_->Get("/v1/tasks?cursor=zz"), 400, "VALIDATION_ERROR");

  // By agent and creation time (RFC 3339 with an offset, or Unix ms); the
  // next page keeps them.
  const std::string scout = CreateId(R"({"type":"odd","agent_id":"scout"})");
  clock_.Advance(1);
  CreateId(R"({"type":"odd","agent_id":"scout"})");
  auto by_agent = client_->Get("/v1/tasks?agent_id=scout&limit=1");
  ASSERT_EQ(by_agent["tasks"].Size(), 1u) << by_agent.body;
  EXPECT_STREQ(by_agent["tasks"][0]["agent_id"].GetString(), "scout");
  const std::string next = by_agent["agent_contract"]["next_actions"][0]["endpoint"].GetString();
  EXPECT_NE(next.find("agent_id=scout"), std::string::npos) << next;
  auto second = client_->Get(next);
  ASSERT_EQ(second["tasks"].Size(), 1u) << second.body;
  EXPECT_EQ(second.json["tasks"][0]["id"].GetString(), scout);
  EXPECT_EQ(client_->Get("/v1/tasks?agent=scout")["tasks"].Size(), 2u);  // the alias
  // From ids[1]'s created_at as the API writes it, to ids[3]'s in Unix ms, and
  // the same bound as an offset time two hours ahead of UTC.
  const std::string from = client_->Get("/v1/tasks/" + ids[1]).Str("created_at");
  const std::string to = client_->Get("/v1/tasks/" + ids[3]).Str("created_at");
  int64_t to_ms = 0;
  ASSERT_TRUE(api::ParseTime(to, &to_ms)) << to;
  std::string to_offset = api::IsoTime(to_ms + 2 * 3600'000);
  to_offset.replace(to_offset.size() - 1, 1, "%2B02:00");  // "+" escaped in the query
  for (const std::string& before : {std::to_string(to_ms), to_offset}) {
    auto window = client_->Get("/v1/tasks?created_after=" + from + "&created_before=" + before);
    ASSERT_EQ(window.status, 200) << window.body;
    ASSERT_EQ(window["tasks"].Size(), 2u) << before << " " << window.body;
    EXPECT_EQ(window.json["tasks"][0]["id"].GetString(), ids[2]);
    EXPECT_EQ(window.json["tasks"][1]["id"].GetString(), ids[1]);
  }
  // Query values are unescaped: %XX, and "+" as a space (as browsers send them).
  const std::string odd_type = CreateId(R"({"type":"t","agent_id":"a b+c/é"})");
  for (const char* q : {"a%20b%2Bc%2F%C3%A9", "a+b%2Bc/%c3%a9"}) {
    auto found = client_->Get(std::string("/v1/tasks?agent_id=") + q);
    ASSERT_EQ(found["tasks"].Size(), 1u) << q << " " << found.body;
    EXPECT_EQ(found.json["tasks"][0]["id"].GetString(), odd_type);
  }
  auto bad = client_->Get("/v1/tasks?created_after=yesterday");
  ExpectError(bad, 400, "VALIDATION_ERROR");
  EXPECT_NE(bad.body.find("created_after"), std::string::npos) << bad.body;
  ExpectError(client_->Get("/v1/tasks?created_before=2026-13-01"), 400, "VALIDATION_ERROR");
}

// What the seeds' clients send and expect: their status names in filters
// (Ariftly's pending and complete, Orchestrion's claimed), pages that keep
// their filters, tasks with tenant_id and artifacts, the scheme "bearer" in
// any case, WWW-Authenticate on 401, Allow on 405, and contract actions that
// name the task they lead to.
TEST_F(ApiTest, SeedNamesAndHttpConventions) {
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    ids.push_back(CreateId(R"({"type":"s"})"));
    clock_.Advance(1);
  }
  auto claimed = client_->Post("/v1/tasks/claim", "");
  ASSERT_EQ(claimed.status, 200) << claimed.body;
  const std::string running = claimed["task"]["id"].GetString();
  ASSERT_EQ(client_->Post("/v1/tasks/" + ids[3] + "/cancel", "").status, 200);
  auto pending = client_->Get("/v1/tasks?status=pending");
  ASSERT_EQ(pending.status, 200) << pending.body;
  EXPECT_EQ(pending["tasks"].Size(), 2u) << pending.body;
  EXPECT_EQ(client_->Get("/v1/tasks?status=claimed")["tasks"].Size(), 1u);
  EXPECT_EQ(client_->Get("/v1/tasks?status=complete")["tasks"].Size(), 0u);
  EXPECT_EQ(client_->Get("/v1/tasks?status=claimed,cancelled")["tasks"].Size(), 2u);
  ExpectError(client_->Get("/v1/tasks?status=pending,asleep"), 400, "VALIDATION_ERROR");
  const auto& task = pending["tasks"][0];
  EXPECT_TRUE(std::string(task["tenant_id"].GetString()).starts_with("acct_")) << pending.body;
  EXPECT_TRUE(task["artifacts"].IsArray());

  // The next page keeps status and limit: paging "pending" never shows another status.
  auto page1 = client_->Get("/v1/tasks?status=pending&limit=1");
  ASSERT_EQ(page1["tasks"].Size(), 1u) << page1.body;
  const std::string next = page1["agent_contract"]["next_actions"][0]["endpoint"].GetString();
  EXPECT_NE(next.find("status=pending"), std::string::npos) << next;
  EXPECT_NE(next.find("limit=1"), std::string::npos) << next;
  auto page2 = client_->Get(next);
  ASSERT_EQ(page2["tasks"].Size(), 1u) << page2.body;
  EXPECT_STREQ(page2["tasks"][0]["status"].GetString(), "queued");
  EXPECT_NE(page2["tasks"][0]["id"], page1["tasks"][0]["id"]);
  EXPECT_NE(std::string(page2["tasks"][0]["id"].GetString()), running);

  // An empty claim is worth repeating.
  auto empty = client_->Post("/v1/tasks/claim", R"({"types":["none"]})");
  ASSERT_EQ(empty.status, 200) << empty.body;
  EXPECT_TRUE(empty["agent_contract"]["retryable"].GetBool());

  // A conflicting Idempotency-Key: the contract leads to the task it names.
  auto first = client_->Post("/v1/tasks", R"({"type":"a"})", {"Idempotency-Key: k-1"});
  ASSERT_EQ(first.status, 201);
  auto conflict = client_->Post("/v1/tasks", R"({"type":"b"})", {"Idempotency-Key: k-1"});
  ExpectError(conflict, 409, "IDEMPOTENCY_CONFLICT");
  const std::string get = conflict["agent_contract"]["next_actions"][0]["endpoint"].GetString();
  EXPECT_EQ(get, "/v1/tasks/" + first.Str("id"));
  EXPECT_EQ(client_->Get(get).status, 200);

  // HTTP conventions.
  HttpClient anon(server_->url());
  auto lower = anon.Post("/v1/tasks", R"({"type":"s"})",
                         {std::string("Authorization: bearer ") + runlog::testing::kAdminKey});
  EXPECT_EQ(lower.status, 201) << lower.body;
  auto upper = anon.Post("/v1/tasks", R"({"type":"s"})",
                         {std::string("Authorization: BEARER  ") + runlog::testing::kAdminKey});
  EXPECT_EQ(upper.status, 201) << upper.body;
  auto unauthenticated = anon.Post("/v1/tasks", R"({"type":"s"})");
  ExpectError(unauthenticated, 401, "UNAUTHENTICATED");
  EXPECT_EQ(unauthenticated.headers["www-authenticate"], "Bearer realm=\"runlog\"");
  auto wrong_method = client_->Post("/v1/tasks/" + ids[0], "");
  ExpectError(wrong_method, 405, "METHOD_NOT_ALLOWED");
  EXPECT_EQ(wrong_method.headers["allow"], "GET");
}

// The plan's quotas over HTTP (docs/tenancy.md), on a free account: the 201st
// task of the month, the third worker (with Orchestrion's contract), the
// 121st claim of the hour, a cap on a limit; each the same after a restart,
// and lifted when an admin moves the account to another plan.
TEST_F(ApiTest, PlanQuotasHoldAndSurviveARestart) {
  HttpClient anon(server_->url());
  auto reg = anon.Post("/v1/keys/register", "");
  ASSERT_EQ(reg.status, 201) << reg.body;
  const std::string key = reg.Str("apiKey"), account = reg.Str("accountId");
  auto free_client = [&] {
    auto c = std::make_unique<HttpClient>(server_->url());
    c->SetKey(key);
    return c;
  };
  auto user = free_client();

  // A cap of the plan on a limit (free: timeout_seconds ≤ 300).
  auto capped = user->Post("/v1/tasks", R"({"type":"q","timeout_seconds":3000})");
  ExpectError(capped, 422, "LIMIT_EXCEEDED");
  EXPECT_NE(capped["error"]["message"].GetString(), std::string()) << capped.body;
  EXPECT_NE(std::string(capped["error"]["message"].GetString()).find("plan free"),
            std::string::npos)
      << capped.body;
  EXPECT_EQ(capped["error"]["details"]["cap"].GetInt(), 300);

  // 200 tasks a month.
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(user->Post("/v1/tasks", R"({"type":"q"})").status, 201) << i;
  }
  auto over = user->Post("/v1/tasks", R"({"type":"q"})");
  ExpectError(over, 429, "QUOTA_EXCEEDED");
  EXPECT_STREQ(over["error"]["details"]["quota"].GetString(), "tasks_per_month");
  EXPECT_FALSE(over.headers["retry-after"].empty());
  EXPECT_TRUE(over["agent_contract"]["retryable"].GetBool());
  clock_.Advance(60'000);  // a new minute for the request rate

  // Two workers; the third is refused as Orchestrion's example shows.
  for (const char* w : {"w1", "w2"}) {
    auto claimed = user->Post("/v1/tasks/claim", std::string(R"({"worker_id":")") + w + "\"}");
    ASSERT_EQ(claimed.status, 200) << claimed.body;
    ASSERT_TRUE(claimed["task"].IsObject()) << claimed.body;
  }
  auto third = user->Post("/v1/tasks/claim", R"({"worker_id":"w3"})");
  auto expect_worker_limit = [&](const HttpResponse& r) {
    ExpectError(r, 429, "WORKER_LIMIT");
    const auto& contract = r["agent_contract"];
    EXPECT_TRUE(contract["retryable"].GetBool());
    EXPECT_STREQ(contract["next_actions"][0]["action"].GetString(), "retry_after_wait");
    EXPECT_EQ(contract["next_actions"][0]["retry_after_seconds"].GetInt(), 30);
    EXPECT_STREQ(contract["next_actions"][0]["endpoint"].GetString(), "/v1/tasks/claim");
    EXPECT_EQ(contract["billing_context"]["workers_in_use"].GetInt(), 2) << r.body;
    EXPECT_EQ(contract["billing_context"]["workers_limit"].GetInt(), 2) << r.body;
  };
  expect_worker_limit(third);

  // A restart: the counts come back from the log and the checkpoints.
  user.reset();
  server_.reset();
  server_ = std::make_unique<runlog::testing::TestServer>(dir_.path(), clock_);
  client_ = std::make_unique<HttpClient>(server_->url());
  client_->SetKey(runlog::testing::kAdminKey);
  user = free_client();
  expect_worker_limit(user->Post("/v1/tasks/claim", R"({"worker_id":"w3"})"));
  ExpectError(user->Post("/v1/tasks", R"({"type":"q"})"), 429, "QUOTA_EXCEEDED");

  // 120 claims an hour: w1 takes 118 more (it is one worker however many it holds).
  clock_.Advance(60'000);
  for (int i = 0; i < 118; ++i) {
    auto claimed = user->Post("/v1/tasks/claim", R"({"worker_id":"w1"})");
    ASSERT_EQ(claimed.status, 200) << i << ": " << claimed.body;
    ASSERT_TRUE(claimed["task"].IsObject()) << i;
  }
  auto hourly = user->Post("/v1/tasks/claim", R"({"worker_id":"w1"})");
  ExpectError(hourly, 429, "QUOTA_EXCEEDED");
  EXPECT_STREQ(hourly["error"]["details"]["quota"].GetString(), "claims_per_hour");
  clock_.Advance(3'600'000);  // the next hour (leases of 300 s have expired meanwhile)
  EXPECT_EQ(user->Post("/v1/tasks/claim", R"({"worker_id":"w1"})").status, 200);

  // An admin moves the account to basic (an event on the log): 5,000 tasks a month.
  ExpectError(user->Put("/v1/accounts/" + account + "/plan", R"({"plan":"basic"})"), 403,
              "FORBIDDEN");
  ExpectError(client_->Put("/v1/accounts/" + account + "/plan", R"({"plan":"gold"})"), 400,
              "VALIDATION_ERROR");
  ExpectError(client_->Put("/v1/accounts/acct_nobody/plan", R"({"plan":"basic"})"), 404,
              "NOT_FOUND");
  auto moved = client_->Put("/v1/accounts/" + account + "/plan", R"({"plan":"basic"})");
  ASSERT_EQ(moved.status, 200) << moved.body;
  auto created = user->Post("/v1/tasks", R"({"type":"q"})");
  EXPECT_EQ(created.status, 201) << created.body;
  EXPECT_STREQ(created["agent_contract"]["billing_context"]["plan"].GetString(), "basic");
}

// The usage view over HTTP: Artexion's usage endpoint, and /v1/usage by day,
// type and agent, counting tasks, their ends, steps and tokens.
TEST_F(ApiTest, UsageViewAnswersArtexionsShapeAndGroups) {
  for (int i = 0; i < 3; ++i) CreateId(R"({"type":"summarize"})");
  CreateId(R"({"type":"translate"})");
  auto claimed = client_->Post("/v1/tasks/claim", R"({"types":["translate"]})");
  ASSERT_EQ(claimed.status, 200) << claimed.body;
  const std::string id = claimed["task"]["id"].GetString();
  ASSERT_EQ(
      client_
          ->Post("/v1/tasks/" + id + "/complete", R"({"result":{"ok":true},"usage":{"tokens":42}})")
          .status,
      200);
  ASSERT_EQ(client_->Post("/v1/tasks/claim", R"({"types":["summarize"]})").status, 200);

  auto month = client_->Get("/api/v1/tasks/usage");
  ASSERT_EQ(month.status, 200) << month.body;
  ExpectContract(month);
  EXPECT_STREQ(month["plan"].GetString(), "internal");
  EXPECT_EQ(month["monthly_requests"].GetInt(), 4);
  EXPECT_EQ(month["monthly_task_executions"].GetInt(), 1);
  EXPECT_EQ(month["active_tasks"].GetInt(), 1);
  EXPECT_EQ(month["max_tasks_per_request"].GetInt(), 1);
  for (const char* field : {"total_usage_usd", "rate_limit_per_minute", "max_timeout_seconds"}) {
    EXPECT_TRUE(month[field].IsNumber()) << field;
  }

  auto by_type = client_->Get("/v1/usage?group_by=type");
  ASSERT_EQ(by_type.status, 200) << by_type.body;
  ASSERT_EQ(by_type["usage"].Size(), 2u) << by_type.body;
  EXPECT_STREQ(by_type["usage"][0]["type"].GetString(), "summarize");
  EXPECT_EQ(by_type["usage"][0]["tasks_created"].GetInt(), 3);
  EXPECT_STREQ(by_type["usage"][1]["type"].GetString(), "translate");
  EXPECT_EQ(by_type["usage"][1]["tasks_succeeded"].GetInt(), 1);
  EXPECT_EQ(by_type["usage"][1]["steps"].GetInt(), 1);
  EXPECT_EQ(by_type["usage"][1]["tokens"].GetInt(), 42);
  EXPECT_EQ(by_type["total"]["tasks_created"].GetInt(), 4);
  auto by_day = client_->Get("/v1/usage");
  ASSERT_EQ(by_day["usage"].Size(), 1u) << by_day.body;
  EXPECT_EQ(by_day["usage"][0]["day"], by_day["to"]);
  // Another tenant sees none of it; a day before the tasks sees nothing.
  const std::string other = server_->KeyWithScopes("acct_other", {"read"});
  HttpClient them(server_->url());
  them.SetKey(other);
  EXPECT_EQ(them.Get("/v1/usage")["total"]["tasks_created"].GetInt(), 0);
  EXPECT_EQ(client_->Get("/v1/usage?from=2020-01-01&to=2020-01-31")["usage"].Size(), 0u);
  ExpectError(client_->Get("/v1/usage?from=yesterday"), 400, "VALIDATION_ERROR");
  ExpectError(client_->Get("/v1/usage?group_by=color"), 400, "VALIDATION_ERROR");
}

// Cost: what workers report is priced by the price table unless they give
// cost_usd; tasks and the usage view carry it; max_cost_usd ends a task with
// COST_LIMIT; a plan's monthly budget refuses creates with 402, also after a
// restart, until the month ends.
TEST_F(ApiTest, CostIsPricedCappedAndBudgeted) {
  auto run = [&](const std::string& create, const std::string& usage) {
    const std::string id = CreateId(create);
    auto claimed = client_->Post("/v1/tasks/claim", R"({"types":["c"]})");
    EXPECT_EQ(claimed.status, 200) << claimed.body;
    auto done = client_->Post("/v1/tasks/" + id + "/complete",
                              R"({"result":{"ok":true},"usage":)" + usage + "}");
    EXPECT_EQ(done.status, 200) << done.body;
    return client_->Get("/v1/tasks/" + id);
  };
  // The default model: $1 a million input tokens, $3 output.
  auto priced = run(R"({"type":"c"})", R"({"input_tokens":1000,"output_tokens":500,"model":"x"})");
  EXPECT_EQ(priced["cost_usd"].GetDouble(), 0.0025) << priced.body;
  EXPECT_EQ(priced["tokens_used"].GetInt(), 1500) << priced.body;
  auto trace = client_->Get("/v1/tasks/" + priced.Str("id") + "/trace");
  EXPECT_EQ(trace["estimated_cost_usd"].GetDouble(), 0.0025) << trace.body;
  EXPECT_STREQ(trace["steps"][0]["usage"]["model"].GetString(), "x") << trace.body;
  auto reported = run(R"({"type":"c"})", R"({"tokens":10,"cost_usd":0.5})");
  EXPECT_EQ(reported["cost_usd"].GetDouble(), 0.5) << reported.body;
  auto over = run(R"({"type":"c","limits":{"max_cost_usd":0.01}})", R"({"cost_usd":0.02})");
  EXPECT_EQ(over.Str("status"), "failed") << over.body;
  EXPECT_STREQ(over["error"]["code"].GetString(), "COST_LIMIT") << over.body;
  EXPECT_EQ(over["limits"]["max_cost_usd"].GetDouble(), 0.01) << over.body;
  ExpectError(client_->Post("/v1/tasks", R"({"type":"c","max_cost_usd":-1})"), 400,
              "VALIDATION_ERROR");
  ExpectError(client_->Post("/v1/tasks/x/complete", R"({"usage":{"tokens":"many"}})"), 400,
              "VALIDATION_ERROR");
  auto usage = client_->Get("/v1/usage?group_by=none");
  ASSERT_EQ(usage.status, 200) << usage.body;
  EXPECT_EQ(usage["total"]["cost_usd"].GetDouble(), 0.5225) << usage.body;
  EXPECT_EQ(usage["total"]["input_tokens"].GetInt(), 1000) << usage.body;
  EXPECT_EQ(client_->Get("/v1/tasks/usage")["total_usage_usd"].GetDouble(), 0.5225);

  // Free's budget is $5 a month: spent, a create answers 402 until the month ends.
  HttpClient anon(server_->url());
  auto reg = anon.Post("/v1/keys/register", "");
  ASSERT_EQ(reg.status, 201) << reg.body;
  HttpClient user(server_->url());
  user.SetKey(reg.Str("apiKey"));
  const std::string id = user.Post("/v1/tasks", R"({"type":"c"})").Str("id");
  ASSERT_EQ(user.Post("/v1/tasks/claim", "{}").status, 200);
  ASSERT_EQ(user.Post("/v1/tasks/" + id + "/complete", R"({"usage":{"cost_usd":5}})").status, 200);
  auto refused = user.Post("/v1/tasks", R"({"type":"c"})");
  ExpectError(refused, 402, "BUDGET_EXCEEDED");
  EXPECT_EQ(refused["error"]["details"]["spent_usd"].GetDouble(), 5.0) << refused.body;
  EXPECT_FALSE(refused.headers["retry-after"].empty());
  EXPECT_STREQ(refused["agent_contract"]["next_actions"][0]["action"].GetString(),
               "retry_after_wait");
  server_.reset();
  server_ = std::make_unique<runlog::testing::TestServer>(dir_.path(), clock_);
  HttpClient again(server_->url());
  again.SetKey(reg.Str("apiKey"));
  ExpectError(again.Post("/v1/tasks", R"({"type":"c"})"), 402, "BUDGET_EXCEEDED");
  clock_.Advance(32LL * 86'400'000);  // the next month
  EXPECT_EQ(again.Post("/v1/tasks", R"({"type":"c"})").status, 201);
}

// Artifacts (Ariftly's shape) and outputs (Orchestrion's): made by the worker
// holding the lease or with its complete, read, listed, deleted; another
// tenant's answer 404; they are on the task and outlast a restart.
TEST_F(ApiTest, ArtifactsAndOutputsInTheSeedsShapes) {
  const std::string id = CreateId(R"({"type":"doc"})");
  // Without the lease (nobody claimed the task) an artifact is refused.
  auto early = client_->Post("/v1/tasks/" + id + "/artifacts", R"({"type":"summary","data":1})");
  ExpectError(early, 409, "LEASE_EXPIRED");
  ASSERT_EQ(client_->Post("/v1/tasks/claim", R"({"types":["doc"]})").status, 200);
  auto made = client_->Post("/v1/tasks/" + id + "/artifacts",
                            R"({"type":"summary","data":{"text":"hello"}})");
  ASSERT_EQ(made.status, 201) << made.body;
  ExpectContract(made);
  const std::string summary = made.Str("artifact_id");
  EXPECT_EQ(made.Str("task_id"), id);
  EXPECT_EQ(made.Str("type"), "summary");
  ExpectError(client_->Post("/v1/tasks/" + id + "/artifacts", R"({"type":"summary"})"), 400,
              "VALIDATION_ERROR");
  ExpectError(client_->Post("/v1/tasks/" + id + "/artifacts", R"({"type":"a b","data":1})"), 400,
              "VALIDATION_ERROR");
  auto done =
      client_->Post("/v1/tasks/" + id + "/complete",
                    R"({"result":{"ok":true},"artifacts":[{"type":"report","data":[1,2]}]})");
  ASSERT_EQ(done.status, 200) << done.body;
  ASSERT_EQ(done["task"]["artifacts"].Size(), 2u) << done.body;
  EXPECT_EQ(std::string(done["task"]["artifacts"][0].GetString()), summary);
  const std::string report = done["task"]["artifacts"][1].GetString();

  auto got = client_->Get("/v1/artifacts/" + summary);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_STREQ(got["data"]["text"].GetString(), "hello");
  EXPECT_EQ(got.Str("task_id"), id);
  EXPECT_EQ(got.Str("digest").rfind("sha256:", 0), 0u) << got.body;
  EXPECT_EQ(client_->Get("/v1/artifacts?task_id=" + id)["artifacts"].Size(), 2u);
  auto reports = client_->Get("/v1/artifacts?type=report");
  ASSERT_EQ(reports["artifacts"].Size(), 1u) << reports.body;
  EXPECT_EQ(std::string(reports["artifacts"][0]["artifact_id"].GetString()), report);

  // An agent's manifest may give an artifact type a schema: data must match it.
  auto agent = client_->Put(
      "/v1/agents/auditor",
      R"({"task_types":{"doc":{}},"artifact_types":{"audit_report":{"schema":{"type":"object",)"
      R"("required":["gaps_found"],"properties":{"gaps_found":{"type":"integer"}}}},)"
      R"("sales.email_draft":{"requires_approval":true}}})");
  ASSERT_EQ(agent.status, 201) << agent.body;
  ExpectError(
      client_->Put("/v1/agents/bad", R"({"task_types":{"doc":{}},"artifact_types":{"x":1}})"), 400,
      "VALIDATION_ERROR");
  // POST names the agent in the body; the same manifest again replaces it.
  auto posted = client_->Post("/v1/agents", R"({"agent_id":"scribe","task_types":{"note":{}}})");
  ASSERT_EQ(posted.status, 201) << posted.body;
  EXPECT_EQ(client_->Post("/v1/agents", R"({"agent_id":"scribe","task_types":{"note":{}}})").status,
            200);
  ExpectError(client_->Post("/v1/agents", R"({"task_types":{"note":{}}})"), 400,
              "VALIDATION_ERROR");
  const std::string audited = CreateId(R"({"type":"doc"})");
  ASSERT_EQ(client_->Post("/v1/tasks/claim", R"({"types":["doc"]})").status, 200);
  auto mismatch = client_->Post("/v1/tasks/" + audited + "/artifacts",
                                R"({"type":"audit_report","data":{"gaps_found":"many"}})");
  ExpectError(mismatch, 422, "SCHEMA_MISMATCH");
  EXPECT_STREQ(mismatch["error"]["details"]["field"].GetString(), "body.data/gaps_found")
      << mismatch.body;
  EXPECT_EQ(client_
                ->Post("/v1/tasks/" + audited + "/complete",
                       R"({"artifacts":[{"type":"audit_report","data":{"gaps_found":14}}]})")
                .status,
            200);

  // Approvals: a draft waits for a person; each decision names its key; a
  // pending one expires after 7 days.
  const std::string drafting = CreateId(R"({"type":"doc"})");
  ASSERT_EQ(client_->Post("/v1/tasks/claim", R"({"types":["doc"]})").status, 200);
  std::vector<std::string> drafts;
  for (int i = 0; i < 3; ++i) {
    auto d = client_->Post("/v1/tasks/" + drafting + "/artifacts",
                           R"({"type":"sales.email_draft","data":{"to":"alex@acme.com"}})");
    ASSERT_EQ(d.status, 201) << d.body;
    EXPECT_EQ(d.Str("approval_status"), "pending");
    drafts.push_back(d.Str("artifact_id"));
  }
  EXPECT_EQ(client_->Get("/v1/artifacts?approval_status=pending")["artifacts"].Size(), 3u);
  auto approved = client_->Post("/v1/artifacts/" + drafts[0] + "/approve", R"({"comment":"ok"})");
  ASSERT_EQ(approved.status, 200) << approved.body;
  EXPECT_EQ(approved.Str("approval_status"), "approved");
  EXPECT_EQ(approved.Str("comment"), "ok");
  EXPECT_FALSE(approved.Str("decided_by").empty());
  ExpectError(client_->Post("/v1/artifacts/" + drafts[0] + "/reject", "{}"), 409,
              "APPROVAL_NOT_PENDING");
  ExpectError(client_->Post("/v1/artifacts/" + summary + "/approve", "{}"), 409,
              "APPROVAL_NOT_PENDING");
  EXPECT_EQ(client_->Post("/v1/artifacts/" + drafts[1] + "/reject", "{}").Str("approval_status"),
            "rejected");
  EXPECT_EQ(client_->Get("/v1/artifacts/" + drafts[0]).Str("approval_status"), "approved");
  EXPECT_EQ(client_->Get("/v1/artifacts/" + drafts[1]).Str("approval_status"), "rejected");
  clock_.Advance(8LL * 86'400'000);
  EXPECT_EQ(client_->Get("/v1/artifacts/" + drafts[2]).Str("approval_status"), "expired");
  ExpectError(client_->Post("/v1/artifacts/" + drafts[2] + "/approve", "{}"), 409,
              "APPROVAL_NOT_PENDING");
  EXPECT_EQ(client_->Get("/v1/artifacts?approval_status=expired")["artifacts"].Size(), 1u);

  // An output: an artifact without a task, which a complete's result can name.
  auto output = client_->Post("/v1/outputs", R"({"content":{"rows":3}})");
  ASSERT_EQ(output.status, 201) << output.body;
  const std::string out = output.Str("output_id");
  EXPECT_EQ(out.rfind("out_", 0), 0u) << output.body;
  auto read_out = client_->Get("/v1/artifacts/" + out);
  ASSERT_EQ(read_out.status, 200) << read_out.body;
  EXPECT_EQ(read_out["data"]["rows"].GetInt(), 3);
  EXPECT_TRUE(read_out["task_id"].IsNull());

  // Another tenant sees none of them.
  HttpClient them(server_->url());
  them.SetKey(server_->KeyWithScopes("acct_other", {"read", "write"}));
  ExpectError(them.Get("/v1/artifacts/" + summary), 404, "ARTIFACT_NOT_FOUND");
  ExpectError(them.Delete("/v1/artifacts/" + summary), 404, "ARTIFACT_NOT_FOUND");
  EXPECT_EQ(them.Get("/v1/artifacts")["artifacts"].Size(), 0u);

  // Deleted: gone from reads and lists; the rest outlast a restart.
  auto deleted = client_->Delete("/v1/artifacts/" + report);
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  ExpectError(client_->Get("/v1/artifacts/" + report), 404, "ARTIFACT_NOT_FOUND");
  server_.reset();
  server_ = std::make_unique<runlog::testing::TestServer>(dir_.path(), clock_);
  client_ = std::make_unique<HttpClient>(server_->url());
  client_->SetKey(runlog::testing::kAdminKey);
  EXPECT_STREQ(client_->Get("/v1/artifacts/" + summary)["data"]["text"].GetString(), "hello");
  EXPECT_EQ(client_->Get("/v1/artifacts/" + out)["data"]["rows"].GetInt(), 3);
  EXPECT_EQ(client_->Get("/v1/artifacts?task_id=" + id)["artifacts"].Size(), 1u);
  EXPECT_EQ(client_->Get("/v1/tasks/" + id)["artifacts"].Size(), 2u);
  EXPECT_EQ(client_->Get("/v1/artifacts/" + drafts[0]).Str("approval_status"), "approved");

  // A cancelled task's partial artifacts are discarded.
  const std::string cancelled = CreateId(R"({"type":"doc"})");
  ASSERT_EQ(client_->Post("/v1/tasks/claim", R"({"types":["doc"]})").status, 200);
  auto partial =
      client_->Post("/v1/tasks/" + cancelled + "/artifacts", R"({"type":"draft","data":"half"})");
  ASSERT_EQ(partial.status, 201) << partial.body;
  ASSERT_EQ(client_->Post("/v1/tasks/" + cancelled + "/cancel", "{}").status, 200);
  ExpectError(client_->Get("/v1/artifacts/" + partial.Str("artifact_id")), 404,
              "ARTIFACT_NOT_FOUND");
}

// Test keys (Artexion's "start with test keys"): rl_test_…, the same API, in
// a tenant of their own beside the account's live one, not in its usage.
TEST_F(ApiTest, TestKeysWorkApartFromTheLiveAccount) {
  HttpClient anon(server_->url());
  auto live_reg = anon.Post("/v1/keys/register", "");
  ASSERT_EQ(live_reg.status, 201) << live_reg.body;
  const std::string account = live_reg.Str("accountId");
  // An admin adds a test key to that account; nobody else may.
  ExpectError(anon.Post("/v1/keys/register", R"({"mode":"test","account_id":")" + account + "\"}"),
              403, "FORBIDDEN");
  auto test_reg =
      client_->Post("/v1/keys/register", R"({"mode":"test","account_id":")" + account + "\"}");
  ASSERT_EQ(test_reg.status, 201) << test_reg.body;
  EXPECT_TRUE(test_reg.Str("apiKey").starts_with("rl_test_")) << test_reg.body;
  EXPECT_EQ(test_reg.Str("accountId"), account);
  EXPECT_EQ(test_reg.Str("mode"), "test");
  ExpectError(client_->Post("/v1/keys/register", R"({"mode":"sandbox"})"), 400, "VALIDATION_ERROR");
  // An account that does not exist gets no key (a typo would start a tenant);
  // a key added to an account has that account's plan.
  ExpectError(client_->Post("/v1/keys/register", R"({"account_id":"acct_nosuchaccount"})"), 404,
              "NOT_FOUND");
  auto second_admin = client_->Post("/v1/keys/register", R"({"account_id":"acct_admin"})");
  ASSERT_EQ(second_admin.status, 201) << second_admin.body;
  EXPECT_EQ(second_admin.Str("plan"), "internal") << second_admin.body;
  // Self-service test keys: a new account.
  auto own = anon.Post("/v1/keys/register", R"({"mode":"test"})");
  ASSERT_EQ(own.status, 201) << own.body;
  EXPECT_TRUE(own.Str("apiKey").starts_with("rl_test_"));

  HttpClient live(server_->url()), test(server_->url());
  live.SetKey(live_reg.Str("apiKey"));
  test.SetKey(test_reg.Str("apiKey"));
  auto created = test.Post("/v1/tasks", R"({"type":"try"})");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id = created.Str("id");
  EXPECT_EQ(test.Get("/v1/tasks/" + id).status, 200);
  ExpectError(live.Get("/v1/tasks/" + id), 404, "TASK_NOT_FOUND");
  EXPECT_EQ(live.Get("/v1/tasks")["tasks"].Size(), 0u);
  EXPECT_TRUE(live.Post("/v1/tasks/claim", "")["task"].IsNull()) << "live workers never see it";
  auto claimed = test.Post("/v1/tasks/claim", "");
  ASSERT_TRUE(claimed["task"].IsObject()) << claimed.body;
  EXPECT_EQ(live.Get("/v1/tasks/usage")["monthly_requests"].GetInt(), 0);
  EXPECT_EQ(test.Get("/v1/tasks/usage")["monthly_requests"].GetInt(), 1);
  // The account's plan is the test key's plan too.
  ASSERT_EQ(client_->Put("/v1/accounts/" + account + "/plan", R"({"plan":"pro"})").status, 200);
  EXPECT_STREQ(test.Get("/v1/tasks/usage")["plan"].GetString(), "pro");
}

// A task nobody claims fails QUEUE_TIMEOUT after limits.max_queue_seconds
// (the plan's default when not given), instead of waiting for ever; a claimed
// one does not.
TEST_F(ApiTest, ATaskNobodyClaimsFailsWithQueueTimeout) {
  const std::string waiting = CreateId(R"({"type":"nobody","max_queue_seconds":5})");
  const std::string taken = CreateId(R"({"type":"someone","limits":{"max_queue_seconds":5}})");
  ExpectError(client_->Post("/v1/tasks", R"({"type":"x","max_queue_seconds":0})"), 400,
              "VALIDATION_ERROR");
  ASSERT_EQ(client_->Post("/v1/tasks/claim", R"({"types":["someone"],"lease_seconds":60})").status,
            200);
  clock_.Advance(6'000);
  HttpResponse task;
  ASSERT_TRUE(WaitFor(
      [&] {
        task = client_->Get("/v1/tasks/" + waiting);
        return task.Str("status") == "failed";
      },
      10s))
      << task.body;
  EXPECT_STREQ(task["error"]["code"].GetString(), "QUEUE_TIMEOUT");
  EXPECT_EQ(client_->Get("/v1/tasks/" + taken).Str("status"), "running");
  // A free account's tasks get the plan's default.
  HttpClient anon(server_->url());
  HttpClient user(server_->url());
  user.SetKey(anon.Post("/v1/keys/register", "").Str("apiKey"));
  auto created = user.Post("/v1/tasks", R"({"type":"x"})");
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created["limits"]["max_queue_seconds"].GetInt(), 86'400);
}

TEST_F(ApiTest, ReadYourWritesAfterEveryCommand) {
  for (int i = 0; i < 30; ++i) {
    const std::string id = CreateId();
    auto got = client_->Get("/v1/tasks/" + id);
    ASSERT_EQ(got.status, 200) << "iteration " << i << ": " << got.body;
    EXPECT_EQ(got.Str("status"), "queued");
  }
}

TEST_F(ApiTest, KeepsTheConnectionAlive) {
  auto first = client_->Get("/healthz");
  auto second = client_->Get("/healthz");
  auto third = client_->Post("/v1/tasks", R"({"type":"t"})");
  EXPECT_EQ(first.headers["connection"], "Keep-Alive");
  EXPECT_EQ(first.headers["content-type"], "application/json");
  EXPECT_EQ(first.headers["content-length"], std::to_string(first.body.size()));
  EXPECT_EQ(second.new_connections, 0);
  EXPECT_EQ(third.new_connections, 0);
}

TEST_F(ApiTest, TheDashboardIsCheckedByETagAndItsFilesAreCachedByTheirHash) {
  HttpClient anon(server_->url());
  auto index = anon.Get("/ui/");
  ASSERT_EQ(index.status, 200);
  EXPECT_EQ(index.headers["cache-control"], "no-cache");
  const std::string etag = index.headers["etag"];
  ASSERT_EQ(etag.size(), 18u) << etag;  // "16 hex digits"
  EXPECT_EQ(etag, "\"" + events::Sha256Hex(index.body).substr(0, 16) + "\"");

  // A revalidation answers 304 without a body, on the same connection.
  auto same = anon.Do("GET", "/ui/", nullptr, {"If-None-Match: " + etag});
  EXPECT_EQ(same.status, 304);
  EXPECT_EQ(same.body, "");
  EXPECT_EQ(same.headers["etag"], etag);
  EXPECT_FALSE(same.headers["content-security-policy"].empty());
  EXPECT_EQ(same.new_connections, 0);
  EXPECT_EQ(anon.Do("GET", "/ui/", nullptr, {"If-None-Match: \"x\", W/" + etag}).status, 304);
  EXPECT_EQ(anon.Do("GET", "/ui/", nullptr, {"If-None-Match: \"0123456789abcdef\""}).status, 200);
  EXPECT_EQ(anon.Get("/healthz").status, 200);  // the connection still reads answers in step

  // index.html names app.js by its hash, and that URL may be kept for good.
  const std::string marker = "/ui/app.js?v=";
  const size_t at = index.body.find(marker);
  ASSERT_NE(at, std::string::npos) << index.body;
  const std::string version = index.body.substr(at + marker.size(), 16);
  auto script = anon.Get(marker + version);
  ASSERT_EQ(script.status, 200);
  EXPECT_EQ(events::Sha256Hex(script.body).substr(0, 16), version);
  EXPECT_EQ(script.headers["cache-control"], "public, max-age=31536000, immutable");
  EXPECT_EQ(script.headers["etag"], "\"" + version + "\"");
  // Without its hash, or with another build's, it must be checked again.
  EXPECT_EQ(anon.Get("/ui/app.js").headers["cache-control"], "no-cache");
  EXPECT_EQ(anon.Get("/ui/app.js?v=0123456789abcdef").headers["cache-control"], "no-cache");
  // Errors under /ui/ carry the same headers; a 405 says what is allowed.
  auto missing = anon.Get("/ui/nope.js");
  ExpectError(missing, 404, "NOT_FOUND");
  EXPECT_EQ(missing.headers["content-security-policy"], index.headers["content-security-policy"]);
  EXPECT_EQ(missing.headers["x-content-type-options"], "nosniff");
  auto posted = anon.Post("/ui/", "{}");
  ExpectError(posted, 405, "METHOD_NOT_ALLOWED");
  EXPECT_EQ(posted.headers["allow"], "GET");
  EXPECT_EQ(posted.headers["x-content-type-options"], "nosniff");
  EXPECT_EQ(anon.Post("/healthz", "{}").headers["allow"], "GET");
}

// A plain TCP connection to the server, for what HTTP client libraries hide:
// small receive buffers, pipelined requests.
class RawConnection {
 public:
  RawConnection(const std::string& url, int receive_buffer = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (receive_buffer > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    }
    const timeval patience{10, 0};  // a lost answer fails the test instead of hanging it
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(std::stoi(url.substr(17))));  // http://127.0.0.1:
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawConnection() { ::close(fd_); }

  bool connected() const { return connected_; }
  bool Send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // One whole answer, headers and Content-Length bytes; "" if none came.
  std::string ReadAnswer() {
    size_t header_end;
    while ((header_end = received_.find("\r\n\r\n")) == std::string::npos) {
      if (!Receive()) return "";
    }
    const size_t at = received_.find("Content-Length: ");
    if (at == std::string::npos || at > header_end) return "";
    const size_t length = std::stoul(received_.substr(at + 16));
    while (received_.size() < header_end + 4 + length) {
      if (!Receive()) return "";
    }
    std::string answer = received_.substr(0, header_end + 4 + length);
    received_.erase(0, answer.size());
    return answer;
  }
  // Bytes received beyond the answers read.
  const std::string& rest() const { return received_; }
  // Whether the server has sent something (or closed) within `timeout`,
  // without taking it off the socket.
  bool WaitReadable(std::chrono::milliseconds timeout) {
    if (!received_.empty()) return true;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      const int n = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
      if (n > 0) return (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
      if (n == 0 || errno != EINTR) return false;
    }
  }

 private:
  bool Receive() {
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    received_.append(buf, static_cast<size_t>(n));
    return true;
  }

  int fd_;
  bool connected_ = false;
  std::string received_;
};

const std::string kAuthHeader = "Authorization: Bearer " + std::string(runlog::testing::kAdminKey);

// Answers are written straight to the socket; one bigger than the socket
// can take goes on through Pistache's reactor, and a later answer on the same
// connection waits behind it instead of cutting into it.
TEST_F(ApiTest, AnAnswerTooBigForTheSocketArrivesWholeAndBeforeTheNext) {
  const std::string input =
      "{\"type\":\"big\",\"input\":{\"blob\":\"" + std::string(450'000, 'b') + "\"}}";
  for (int i = 0; i < 10; ++i) CreateId(input);  // the list below is ~9 MB, over tcp_wmem's 4 MB

  RawConnection conn(server_->url(), 4096);
  ASSERT_TRUE(conn.connected());
  ASSERT_TRUE(conn.Send("GET /v1/tasks?type=big&limit=10 HTTP/1.1\r\nHost: x\r\n" + kAuthHeader +
                        "\r\n\r\n"));
  // The first bytes of the list show that the server is writing it: it holds
  // the connection's lock from the first byte until it has filled the socket
  // and queued the rest, so the health check's answer, whenever it is ready,
  // comes after that. (Sent only now, the health check is also a segment of
  // its own: Pistache 0.0.5 reads only the first request of a segment.)
  ASSERT_TRUE(conn.WaitReadable(10s)) << "no byte of the list's answer within 10 s";
  ASSERT_TRUE(conn.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string list = conn.ReadAnswer();
  const std::string health = conn.ReadAnswer();

  ASSERT_TRUE(list.starts_with("HTTP/1.1 200 OK\r\n")) << list.substr(0, 200);
  rapidjson::Document doc;
  doc.Parse(list.c_str() + list.find("\r\n\r\n") + 4);
  ASSERT_FALSE(doc.HasParseError());
  ASSERT_TRUE(doc["tasks"].IsArray());
  EXPECT_EQ(doc["tasks"].Size(), 10u);
  EXPECT_GT(list.size(), 4u << 20);
  ASSERT_TRUE(health.starts_with("HTTP/1.1 200 OK\r\n")) << health.substr(0, 200);
  EXPECT_NE(health.find("\"status\":\"ok\""), std::string::npos);
  EXPECT_TRUE(conn.rest().empty());
}

// Requests sent before the previous answer came (pipelined) are answered in
// the order they came, even when a later one is done first: here a long poll
// that waits a second for work, then a health check that is done at once,
// then a create. Each goes in its own segment, sent once the server has read
// the one before: Pistache 0.0.5 reads only the first request of a segment
// (pistacheio/pistache#1034).
TEST_F(ApiTest, PipelinedRequestsAreAnsweredInOrder) {
  RawConnection conn(server_->url());
  ASSERT_TRUE(conn.connected());
  const std::string claim = R"({"wait_seconds":1,"types":["never_created"]})";
  const std::string create = R"({"type":"pipelined"})";
  ASSERT_TRUE(conn.Send("POST /v1/tasks/claim HTTP/1.1\r\nHost: x\r\n" + kAuthHeader +
                        "\r\nContent-Length: " + std::to_string(claim.size()) + "\r\n\r\n" +
                        claim));
  // Read by the server: the claim is parked (for its second).
  ASSERT_TRUE(WaitFor([&] { return server_->tasks().parked_claims() > 0; }))
      << "the pipelined claim did not park within 10 s";
  ASSERT_TRUE(conn.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  // Read by the server: the health check is counted in /metrics (when it is
  // done, before its answer waits behind the claim's). Asked on client_'s own
  // connection, so as not to add to the pipeline.
  ASSERT_TRUE(WaitFor(
      [&] {
        return client_->Get("/metrics")
                   .body.find("runlog_http_requests_total{code=\"200\",route=\"healthz\"}") !=
               std::string::npos;
      },
      10s, 5ms))
      << "the pipelined health check was not counted in /metrics within 10 s";
  ASSERT_TRUE(conn.Send("POST /v1/tasks HTTP/1.1\r\nHost: x\r\n" + kAuthHeader +
                        "\r\nContent-Length: " + std::to_string(create.size()) + "\r\n\r\n" +
                        create));
  const std::string first = conn.ReadAnswer();
  const std::string second = conn.ReadAnswer();
  const std::string third = conn.ReadAnswer();
  EXPECT_NE(first.find("retry_after_wait"), std::string::npos) << first.substr(0, 300);
  EXPECT_NE(second.find("\"status\":\"ok\""), std::string::npos) << second.substr(0, 300);
  EXPECT_TRUE(third.starts_with("HTTP/1.1 201 ")) << third.substr(0, 300);
  EXPECT_NE(third.find("\"type\":\"pipelined\""), std::string::npos) << third.substr(0, 300);
}

TEST_F(ApiTest, HealthReadinessAndMetrics) {
  auto health = client_->Get("/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.Str("status"), "ok");
  // One node: each partition's log end and how far the views are (admin only).
  auto cluster = client_->Get("/v1/cluster");
  ASSERT_EQ(cluster.status, 200) << cluster.body;
  EXPECT_EQ(cluster.Str("mode"), "single");
  EXPECT_EQ(cluster["partition_state"].Size(), 4u) << cluster.body;
  HttpClient reader(server_->url());
  reader.SetKey(server_->KeyWithScopes("acct_reader", {"read"}));
  ExpectError(reader.Get("/v1/cluster"), 403, "FORBIDDEN");
  auto ready = client_->Get("/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  // Ready means the views reach what the log held when asked, not that no
  // write is in flight: right after writes (which the projector batches for
  // up to 100 ms) it is still 200.
  for (int i = 0; i < 5; ++i) {
    CreateId();
    CreateId();
    auto busy = client_->Get("/readyz");
    EXPECT_EQ(busy.status, 200) << busy.body;
  }
  auto metrics = client_->Get("/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_TRUE(metrics.headers["content-type"].starts_with("text/plain"))
      << metrics.headers["content-type"];
  EXPECT_NE(metrics.body.find("runlog_http_requests_total{code=\"201\",route=\"create_task\"} 10"),
            std::string::npos)
      << metrics.body.substr(0, 2000);
  EXPECT_NE(metrics.body.find("runlog_projection_lag_records"), std::string::npos);
  // The writers hold the ten queued tasks, and say roughly what that costs.
  EXPECT_NE(metrics.body.find("runlog_writer_tasks{state=\"queued\"} 10\n"), std::string::npos)
      << metrics.body;
  const size_t memory = metrics.body.find("\nrunlog_writer_memory_bytes ");
  ASSERT_NE(memory, std::string::npos) << metrics.body;
  const double bytes = std::stod(metrics.body.substr(memory + 28));
  EXPECT_GT(bytes, 10 * 500.0);  // a queued task is well over 500 bytes today
  EXPECT_LT(bytes, 10 * 100'000.0);
  // The stores' memtables hold the creates, and the server says how much.
  const size_t memtables = metrics.body.find("\nrunlog_store_memory_bytes{kind=\"memtables\"} ");
  ASSERT_NE(memtables, std::string::npos) << metrics.body;
  const double held = std::stod(metrics.body.substr(metrics.body.find("} ", memtables) + 2));
  EXPECT_GT(held, 0.0);
  EXPECT_LE(held, 2.0 * events::StoreLimits::kWriteBuffersBytes);
  // Read fresh at each scrape: no writer failed, the executor's slots, the disk.
  EXPECT_NE(metrics.body.find("\nrunlog_writers_failed 0\n"), std::string::npos);
  EXPECT_NE(metrics.body.find("\nrunlog_executor_slots{state=\"total\"} "), std::string::npos);
  const size_t free_at = metrics.body.find("\nrunlog_data_filesystem_bytes{kind=\"free\"} ");
  ASSERT_NE(free_at, std::string::npos);
  EXPECT_GT(std::stod(metrics.body.substr(metrics.body.find("} ", free_at) + 2)), 0.0);

  // A task that ends counts for its tenant, with its tokens.
  auto claim = client_->Post("/v1/tasks/claim", "");
  ASSERT_EQ(claim.status, 200) << claim.body;
  const std::string id = claim["task"]["id"].GetString();
  ASSERT_EQ(client_->Post("/v1/tasks/" + id + "/complete", R"({"result":{},"usage":{"tokens":42}})")
                .status,
            200);
  std::string scraped;
  EXPECT_TRUE(WaitFor([&] {
    scraped = client_->Get("/metrics").body;
    return scraped.find("runlog_tenant_tasks_total{status=\"succeeded\",tenant=\"") !=
           std::string::npos;
  })) << scraped;
  const size_t tokens_at = scraped.find("\nrunlog_tenant_tokens_total{tenant=\"");
  ASSERT_NE(tokens_at, std::string::npos) << scraped;
  EXPECT_EQ(std::stod(scraped.substr(scraped.find("} ", tokens_at) + 2)), 42.0);
}

// A stopping server answers every new call 503 UNAVAILABLE, in the usual
// envelope, with Retry-After: another node, or this one restarted, serves it.
TEST_F(ApiTest, ADrainingServerAnswersNewCallsUnavailableInTheUsualEnvelope) {
  server_->http().BeginDrain();
  for (const char* path : {"/healthz", "/v1/tasks"}) {
    auto r = std::string(path) == "/healthz" ? client_->Get(path)
                                             : client_->Post(path, R"({"type":"t"})");
    ExpectError(r, 503, "UNAVAILABLE");
    EXPECT_EQ(r.Str("version"), kApiVersion) << r.body;
    EXPECT_TRUE(r["agent_contract"]["retryable"].GetBool()) << r.body;
    EXPECT_EQ(r.headers["retry-after"], "1");
  }
  client_.reset();
  server_.reset();  // nothing to check in TearDown: the server is gone
}

TEST_F(ApiTest, GarbageNeverCrashesOrAnswers5xx) {
  std::mt19937 rng(7);
  const std::vector<std::string> paths = {
      "/v1/tasks",        "/v1/tasks/claim",       "/v1/tasks/x/complete",
      "/v1/tasks/x/fail", "/v1/tasks/x/heartbeat", "/v1/tasks/x/cancel",
      "/v1/keys/register"};
  const std::vector<std::string> seeds = {
      R"({"type":"t","input":{"a":[1,2,{"b":null}]}})", R"({"types":["a"],"wait_seconds":0})",
      R"({"result":{"x":1e308},"lease_id":"l"})", R"({"plan":{"steps":[{"tool":"math"}]}})"};
  for (int i = 0; i < 400; ++i) {
    std::string body = seeds[rng() % seeds.size()];
    for (int k = 0, n = static_cast<int>(rng() % 4); k < n; ++k) {
      body[rng() % body.size()] = static_cast<char>(rng() % 256);
    }
    if (rng() % 5 == 0) body = std::string(rng() % 100, '[');
    auto r = client_->Post(paths[rng() % paths.size()], body);
    ASSERT_GT(r.status, 0) << "no answer to " << body;
    EXPECT_LT(r.status, 500) << body << " -> " << r.body;
  }
  EXPECT_EQ(client_->Get("/healthz").status, 200);
}

TEST_F(ApiTest, BinaryContentIsStoredOnceAndGoesWithItsLastArtifact) {
  const std::string id = CreateId(R"({"type":"scan"})");
  auto claimed = client_->Post("/v1/tasks/claim", R"({"types":["scan"]})");
  ASSERT_EQ(claimed.status, 200);
  const std::string lease = claimed["lease"]["lease_id"].GetString();
  std::string pdf = "%PDF-1.7\n";
  for (uint64_t i = 0; i < 300000; ++i) pdf.push_back(static_cast<char>(i * 7919 % 256));
  auto put = [&](const std::string& type, const std::string& bytes) {
    return client_->Do("PUT", "/v1/tasks/" + id + "/artifacts/" + type + "?lease_id=" + lease,
                       &bytes, {"Content-Type: application/pdf"});
  };
  auto first = put("report.pdf", pdf);
  ASSERT_EQ(first.status, 201) << first.body;
  ExpectContract(first);
  auto second = put("report.pdf", pdf);  // the same bytes, another artifact
  ASSERT_EQ(second.status, 201) << second.body;
  const std::string a = first.Str("artifact_id"), b = second.Str("artifact_id");
  auto got = client_->Get("/v1/artifacts/" + a);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.Str("content_type"), "application/pdf");
  EXPECT_EQ(got["size"].GetInt64(), static_cast<int64_t>(pdf.size()));
  EXPECT_TRUE(got["data"].IsNull());
  EXPECT_EQ(got.Str("content_url"), "/v1/artifacts/" + a + "/content");
  auto content = client_->Get("/v1/artifacts/" + a + "/content");
  ASSERT_EQ(content.status, 200);
  EXPECT_EQ(content.body, pdf);
  EXPECT_EQ(content.headers["content-type"], "application/pdf");
  // Outputs take content too; a type name is checked; no lease, no artifact.
  const std::string text = "plain words";
  auto output = client_->Do("PUT", "/v1/outputs", &text, {"Content-Type: text/plain"});
  ASSERT_EQ(output.status, 201) << output.body;
  EXPECT_EQ(client_->Get("/v1/artifacts/" + output.Str("output_id") + "/content").body, text);
  ExpectError(put("a%20b", pdf), 400, "VALIDATION_ERROR");
  ExpectError(client_->Do("PUT", "/v1/tasks/" + id + "/artifacts/x?lease_id=lease_nope", &text,
                          {"Content-Type: text/plain"}),
              409, "LEASE_MISMATCH");
  // Deleting one artifact keeps the bytes the other names; the last takes them.
  const std::string digest = got.Str("digest").substr(7);
  EXPECT_EQ(client_->Delete("/v1/artifacts/" + a).status, 200);
  EXPECT_EQ(client_->Get("/v1/artifacts/" + b + "/content").body, pdf);
  EXPECT_EQ(client_->Delete("/v1/artifacts/" + b).status, 200);
  ExpectError(client_->Get("/v1/artifacts/" + b + "/content"), 404, "ARTIFACT_NOT_FOUND");
  server_.reset();
  auto store = services::ContentStore::Open(dir_.path());
  ASSERT_TRUE(store);
  EXPECT_EQ((*store)->Get(digest).error().code, "NOT_FOUND")
      << "the bytes outlived their artifacts";
}

TEST(ApiContent, ContentOverTheLimitIs413) {
  runlog::testing::TempDir dir;
  infra::SystemClock clock;
  runlog::testing::TestServer server(dir.path(), clock, [](app::Config& c) {
    c.api.max_content_bytes = c.http.max_content_bytes = 100'000;
  });
  HttpClient client(server.url());
  client.SetKey(runlog::testing::kAdminKey);
  const std::string big(150'000, 'x');
  auto r = client.Do("PUT", "/v1/outputs", &big, {"Content-Type: application/octet-stream"});
  EXPECT_EQ(r.status, 413) << r.body;
  EXPECT_EQ(r.ErrorCode(), "PAYLOAD_TOO_LARGE");
  const std::string small(90'000, 'x');
  EXPECT_EQ(client.Do("PUT", "/v1/outputs", &small, {"Content-Type: text/plain"}).status, 201);
}

TEST(ApiRetention, ArtifactsOlderThanThePlansRetentionExpireWithTheirBytes) {
  runlog::testing::TempDir dir;
  infra::ManualClock clock{1'800'000'000'000};
  std::string digest, kept;
  {
    runlog::testing::TestServer server(dir.path(), clock, [](app::Config& c) {
      c.retention_every = std::chrono::milliseconds(50);
    });
    HttpClient free(server.url()), pro(server.url());
    free.SetKey(server.KeyWithScopes("acct_free", {"read", "write", "worker"}, "free"));  // 7 days
    pro.SetKey(server.KeyWithScopes("acct_pro", {"read", "write", "worker"}, "pro"));     // 60 days
    auto make = [](HttpClient& client) {
      const std::string id = client.Post("/v1/tasks", R"({"type":"r"})").Str("id");
      auto claimed = client.Post("/v1/tasks/claim", R"({"types":["r"]})");
      EXPECT_EQ(claimed.status, 200) << claimed.body;
      auto done = client.Post(
          "/v1/tasks/" + id + "/complete",
          R"({"result":{},"artifacts":[{"type":"note","data":{"n":"unique-)" + id + R"("}}]})");
      EXPECT_EQ(done.status, 200) << done.body;
      return std::string(done["task"]["artifacts"][0].GetString());
    };
    const std::string old = make(free);
    kept = make(pro);
    digest = free.Get("/v1/artifacts/" + old).Str("digest").substr(7);
    const std::string output = free.Post("/v1/outputs", R"({"content":"o"})").Str("output_id");
    // Six days on nothing has gone; eight days on the free tenant's have.
    clock.Advance(6 * 86'400'000LL);
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(free.Get("/v1/artifacts/" + old).status, 200);
    clock.Advance(2 * 86'400'000LL);
    EXPECT_TRUE(runlog::testing::WaitFor(
        [&] { return free.Get("/v1/artifacts/" + old).status == 404; }, 5s));
    EXPECT_TRUE(runlog::testing::WaitFor(
        [&] { return free.Get("/v1/artifacts/" + output).status == 404; }, 5s));
    EXPECT_EQ(pro.Get("/v1/artifacts/" + kept).status, 200);
  }
  auto store = services::ContentStore::Open(dir.path());
  ASSERT_TRUE(store);
  EXPECT_EQ((*store)->Get(digest).error().code, "NOT_FOUND");
  // The log still names the expired artifact's digest.
  auto log = events::OpenEventLog({.data_dir = dir.path(), .partitions = 4});
  ASSERT_TRUE(log);
  bool deleted = false;
  for (uint32_t p = 0; p < (*log)->partition_count(); ++p) {
    auto records = (*log)->Read(p, 0, 10'000);
    ASSERT_TRUE(records);
    for (const auto& r : *records) {
      deleted |= r.event.type == "artifact.deleted" &&
                 r.event.payload.find("\"retention\"") != std::string::npos;
    }
  }
  EXPECT_TRUE(deleted);
}

}  // namespace
}  // namespace runlog::api
