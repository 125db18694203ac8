// Triggers end to end. A schedule that fires every second runs for about
// 30 s in a separate runlogd killed twice with SIGKILL: its fires have no
// duplicates, and the seconds missed while it was down follow each
// trigger's catch_up (all, latest, none). An event trigger chains tasks on
// an artifact and on a status; a channel refuses a message whose signature
// does not verify and starts a task for one that does and matches.

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <map>
#include <regex>
#include <set>
#include <thread>

#include "tests/testing/http_client.h"
#include "tests/testing/process.h"
#include "tests/testing/runlogd.h"
#include "tests/testing/server.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace runlog {
namespace {

using namespace std::chrono_literals;
using runlog::testing::HttpClient;
using runlog::testing::HttpResponse;
using runlog::testing::Process;

constexpr char kKey[] = "rl_test_triggers_admin";

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<Process> StartServer(const std::string& data, std::string* url) {
  return runlog::testing::StartRunlogd(data, url);
}

TEST(Triggers, AnEverySecondScheduleSurvivesTwoKillNinesAndFollowsItsCatchUp) {
  ::setenv("RUNLOG_ADMIN_KEY", kKey, 1);
  runlog::testing::TempDir dir;
  const std::string data = dir / "data";
  std::string url;
  auto server = StartServer(data, &url);
  ASSERT_TRUE(server);
  std::map<std::string, std::string> ids;  // policy -> trigger id
  {
    HttpClient client(url);
    client.SetKey(kKey);
    for (const char* name : {"all", "latest", "none"}) {
      const std::string policy = name;
      auto t = client.Post("/v1/triggers",
                           R"({"kind":"schedule","schedule":"* * * * * *",)"
                           R"("timezone":"Europe/Berlin","catch_up":")" +
                               policy + R"(","task":{"type":"tick-)" + policy +
                               R"(","input":{"at":{"$ref":"/trigger/scheduled_at_ms"}}}})");
      ASSERT_EQ(t.status, 201) << t.body;
      EXPECT_EQ(t.Str("state"), "active");
      ids[policy] = t.Str("trigger_id");
    }
  }
  // Up 8 s, down ~6 s, up 8 s, down ~6 s, up 6 s.
  std::vector<std::pair<int64_t, int64_t>> outages;  // killed at, serving again at
  for (int round = 0; round < 2; ++round) {
    std::this_thread::sleep_for(8s);
    server->Signal(SIGKILL);
    server->Wait();
    const int64_t killed = NowMs();
    std::this_thread::sleep_for(6s);
    server = StartServer(data, &url);
    ASSERT_TRUE(server);
    outages.emplace_back(killed, NowMs());
  }
  std::this_thread::sleep_for(6s);
  HttpClient client(url);
  client.SetKey(kKey);
  for (const auto& [policy, id] : ids) {
    ASSERT_EQ(client.Post("/v1/triggers/" + id + "/pause", "").status, 200);
  }
  std::this_thread::sleep_for(1s);  // a fire under way when paused lands now
  std::map<std::string, std::vector<int64_t>> fired;
  for (const auto& [policy, id] : ids) {
    auto fires = client.Get("/v1/triggers/" + id + "/fires");
    ASSERT_EQ(fires.status, 200) << fires.body;
    std::set<std::string> fire_ids, tasks;
    std::set<int64_t> occasions;
    for (const auto& f : fires["fires"].GetArray()) {
      EXPECT_TRUE(fire_ids.insert(f["fire_id"].GetString()).second) << policy << " repeated a fire";
      EXPECT_TRUE(occasions.insert(std::stoll(f["occasion"].GetString())).second) << policy;
      const std::string task_id = f["task_id"].GetString();
      EXPECT_TRUE(tasks.insert(task_id).second) << policy << ": two fires, one task";
    }
    // One task per fire, and no task of the trigger without a fire.
    auto listed = client.Get("/v1/tasks?type=tick-" + policy + "&limit=200");
    ASSERT_EQ(listed.status, 200);
    std::set<std::string> of_type;
    for (const auto& t : listed["tasks"].GetArray()) {
      of_type.insert(t["id"].GetString());
      EXPECT_TRUE(occasions.count(t["input"]["at"].GetInt64())) << policy;
    }
    EXPECT_EQ(of_type, tasks) << policy;
    fired[policy].assign(occasions.begin(), occasions.end());
    EXPECT_GE(occasions.size(), 15u) << policy;
  }
  // all: every second from the first to the last, the outages included.
  const auto& all = fired["all"];
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(static_cast<int64_t>(all.size()), (all.back() - all.front()) / 1000 + 1);
  for (size_t i = 1; i < all.size(); ++i) EXPECT_EQ(all[i] - all[i - 1], 1000);
  // Seconds surely missed in an outage: well after the kill, well before the restart.
  for (const auto& [killed, back] : outages) {
    auto missed = [&](const std::vector<int64_t>& occasions) {
      return std::count_if(occasions.begin(), occasions.end(),
                           [&](int64_t at) { return at > killed + 1000 && at < back - 2500; });
    };
    EXPECT_GE(missed(all), 1) << "catch_up all fires what it missed";
    EXPECT_LE(missed(fired["latest"]), 1) << "catch_up latest fires the latest only";
    EXPECT_EQ(missed(fired["none"]), 0) << "catch_up none fires none of it";
  }
  EXPECT_GT(all.size(), fired["none"].size());
}

// An in-process server for the event and channel triggers.
class TriggerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<runlog::testing::TestServer>(dir_.path(), clock_);
    client_ = std::make_unique<HttpClient>(server_->url());
    client_->SetKey(runlog::testing::kAdminKey);
  }
  // Claims a task of `type` and completes it with `body` added to the lease.
  std::string ClaimAndComplete(const std::string& type, const std::string& more,
                               HttpResponse* claimed = nullptr) {
    auto c = client_->Post("/v1/tasks/claim", R"({"types":[")" + type + R"("],"wait_seconds":10})");
    EXPECT_EQ(c.status, 200) << c.body;
    if (!c.json.IsObject() || !c["task"].IsObject()) return "";
    const std::string id = c["task"]["id"].GetString();
    auto done = client_->Post(
        "/v1/tasks/" + id + "/complete",
        R"({"lease_id":")" + std::string(c["lease"]["lease_id"].GetString()) + "\"" + more + "}");
    EXPECT_EQ(done.status, 200) << done.body;
    if (claimed != nullptr) *claimed = std::move(c);
    return id;
  }

  runlog::testing::TempDir dir_;
  infra::SystemClock clock_;
  std::unique_ptr<runlog::testing::TestServer> server_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(TriggerTest, AnEventTriggerChainsTasksOnAnArtifactAndOnAStatus) {
  auto on_artifact = client_->Post("/v1/triggers", R"J({"kind":"event",
      "on":{"artifact_type":"sales.lead_list"},
      "task":{"type":"enrich","input":{"leads":{"$ref":"/artifact/data"},
                                      "from":{"$ref":"/task/id"}}}})J");
  ASSERT_EQ(on_artifact.status, 201) << on_artifact.body;
  auto on_status = client_->Post("/v1/triggers", R"J({"kind":"event",
      "on":{"status":"succeeded","task_type":"enrich"},
      "task":{"type":"report","input":{"enriched":{"$ref":"/task/result"}}}})J");
  ASSERT_EQ(on_status.status, 201) << on_status.body;
  ASSERT_EQ(client_->Post("/v1/tasks", R"({"type":"find","input":{}})").status, 201);
  const std::string first = ClaimAndComplete(
      "find",
      R"J(,"result":{"n":2},"artifacts":[{"type":"sales.lead_list","data":["ada","bob"]}])J");
  HttpResponse enrich;
  const std::string second = ClaimAndComplete("enrich", R"J(,"result":{"count":2})J", &enrich);
  ASSERT_FALSE(second.empty());
  EXPECT_EQ(enrich["task"]["input"]["from"].GetString(), first) << enrich.body;
  EXPECT_STREQ(enrich["task"]["input"]["leads"][1].GetString(), "bob") << enrich.body;
  HttpResponse report;
  ClaimAndComplete("report", R"(,"result":{})", &report);
  EXPECT_EQ(report["task"]["input"]["enriched"]["count"].GetInt(), 2) << report.body;
  // Each fire is on record with the task it started.
  auto fires = client_->Get("/v1/triggers/" + on_artifact.Str("trigger_id") + "/fires");
  ASSERT_EQ(fires["fires"].Size(), 1u) << fires.body;
  EXPECT_EQ(fires["fires"][0]["task_id"].GetString(), second);
  // Paused, it starts nothing; deleted, it is gone.
  const std::string id = on_artifact.Str("trigger_id");
  EXPECT_EQ(client_->Post("/v1/triggers/" + id + "/pause", "").Str("state"), "paused");
  ASSERT_EQ(client_->Post("/v1/tasks", R"({"type":"find","input":{}})").status, 201);
  ClaimAndComplete("find", R"J(,"artifacts":[{"type":"sales.lead_list","data":[]}])J");
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(client_->Get("/v1/triggers/" + id + "/fires")["fires"].Size(), 1u);
  EXPECT_EQ(client_->Post("/v1/triggers/" + id + "/resume", "").Str("state"), "active");
  EXPECT_EQ(client_->Delete("/v1/triggers/" + id).status, 200);
  EXPECT_EQ(client_->Get("/v1/triggers/" + id).ErrorCode(), "TRIGGER_NOT_FOUND");
  // Another tenant sees none of them.
  HttpClient other(server_->url());
  other.SetKey(server_->KeyWithScopes("acct_other", {"read", "write"}));
  EXPECT_EQ(other.Get("/v1/triggers/" + on_status.Str("trigger_id")).status, 404);
}

TEST_F(TriggerTest, ATriggersOwnTasksDoNotSetItOffAgain) {
  auto t = client_->Post("/v1/triggers", R"J({"kind":"event","on":{"status":"succeeded"},
      "task":{"type":"echo","input":{"after":{"$ref":"/task/id"}}}})J");
  ASSERT_EQ(t.status, 201) << t.body;
  ASSERT_EQ(client_->Post("/v1/tasks", R"({"type":"seed","input":{}})").status, 201);
  ClaimAndComplete("seed", R"(,"result":{})");
  ASSERT_FALSE(ClaimAndComplete("echo", R"(,"result":{})").empty());
  std::this_thread::sleep_for(1s);  // a loop would have started a second echo by now
  EXPECT_EQ(client_->Get("/v1/triggers/" + t.Str("trigger_id") + "/fires")["fires"].Size(), 1u);
  EXPECT_EQ(client_->Get("/v1/tasks?type=echo")["tasks"].Size(), 1u);
}

std::string HexHmac(const std::string& key, const std::string& body) {
  unsigned char md[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), md, &len);
  std::string out;
  char b[3];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(b, sizeof b, "%02x", md[i]);
    out += b;
  }
  return out;
}

TEST_F(TriggerTest, AChannelRefusesABadSignatureAndStartsATaskForAMatchingMessage) {
  const std::string secret = "channel-secret-0123456789";
  auto channel = client_->Post("/v1/triggers", R"J({"kind":"channel","secret":")J" + secret +
                                                   R"J(","match":{"text":"^invoice",
      "fields":{"from":"@acme\\.com$"}},
      "task":{"type":"file_invoice","input":{"text":{"$ref":"/message/text"}}}})J");
  ASSERT_EQ(channel.status, 201) << channel.body;
  EXPECT_EQ(channel.body.find(secret), std::string::npos) << "the secret was echoed";
  const std::string inbound = channel.Str("inbound_url");
  HttpClient anyone(server_->url());  // channels take no API key: the signature is the proof
  const std::string message = R"({"text":"invoice 42 attached","from":"billing@acme.com"})";
  auto unsigned_ = anyone.Post(inbound, message);
  EXPECT_EQ(unsigned_.status, 401);
  EXPECT_EQ(unsigned_.ErrorCode(), "BAD_SIGNATURE");
  auto forged = anyone.Do("POST", inbound, &message,
                          {"X-Runlog-Signature: sha256=" + HexHmac("wrong", message)});
  EXPECT_EQ(forged.status, 401);
  EXPECT_EQ(forged.ErrorCode(), "BAD_SIGNATURE");
  const std::string other = R"({"text":"hello","from":"billing@acme.com"})";
  auto unmatched =
      anyone.Do("POST", inbound, &other, {"X-Runlog-Signature: sha256=" + HexHmac(secret, other)});
  EXPECT_EQ(unmatched.status, 200) << unmatched.body;
  EXPECT_FALSE(unmatched["fired"].GetBool());
  auto fired = anyone.Do("POST", inbound, &message,
                         {"X-Runlog-Signature: sha256=" + HexHmac(secret, message)});
  ASSERT_EQ(fired.status, 202) << fired.body;
  const std::string task_id = fired.Str("task_id");
  auto task = client_->Get("/v1/tasks/" + task_id);
  EXPECT_STREQ(task["input"]["text"].GetString(), "invoice 42 attached") << task.body;
  // The same message again is the same fire: no second task.
  auto again = anyone.Do("POST", inbound, &message,
                         {"X-Runlog-Signature: sha256=" + HexHmac(secret, message)});
  EXPECT_EQ(again.Str("task_id"), task_id);
  EXPECT_EQ(anyone.Post("/v1/channels/trg_nope/inbound", message).status, 404);
}

TEST_F(TriggerTest, BadSpecsAreRefusedWithTheField) {
  struct Bad {
    const char* body;
    const char* field;
  };
  for (
      const Bad& b : {
          Bad{R"({"kind":"schedule","schedule":"61 * * * *","task":{"type":"t"}})", "schedule"},
          Bad{R"({"kind":"schedule","schedule":"* * * * *","timezone":"Nowhere/City","task":{"type":"t"}})",
              "timezone"},
          Bad{R"({"kind":"schedule","schedule":"* * * * *","catch_up":"some","task":{"type":"t"}})",
              "catch_up"},
          Bad{R"({"kind":"later","task":{"type":"t"}})", "kind"},
          Bad{R"({"kind":"schedule","schedule":"* * * * *"})", "task"},
          Bad{R"({"kind":"event","on":{},"task":{"type":"t"}})", "on"},
          Bad{R"({"kind":"channel","secret":"short","task":{"type":"t"}})", "secret"},
      }) {
    auto r = client_->Post("/v1/triggers", b.body);
    EXPECT_EQ(r.status, 400) << b.body << " " << r.body;
    EXPECT_EQ(r.ErrorCode(), "VALIDATION_ERROR") << b.body;
    if (r.json.IsObject() && r.json.HasMember("error")) {
      EXPECT_STREQ(r["error"]["details"]["field"].GetString(), b.field) << b.body;
    }
  }
}

TEST_F(TriggerTest, AnActiveScheduleSaysWhenItFiresNextAndAPausedOneDoesNot) {
  // Yearly at 09:30 on 1 January in Tokyo: 00:30 UTC on 1 January.
  auto created = client_->Post("/v1/triggers", R"({"kind":"schedule","schedule":"30 9 1 1 *",)"
                                               R"("timezone":"Asia/Tokyo","task":{"type":"t"}})");
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string next = created.Str("next_fire_at");
  EXPECT_TRUE(std::regex_match(next, std::regex(R"(\d{4}-01-01T00:30:00(\.000)?Z)"))) << next;
  const std::string id = created.Str("id");
  ASSERT_EQ(client_->Post("/v1/triggers/" + id + "/pause", "{}").status, 200);
  auto paused = client_->Get("/v1/triggers/" + id);
  EXPECT_EQ(paused.Str("state"), "paused");
  EXPECT_FALSE(paused.json.HasMember("next_fire_at")) << paused.body;
  // The list says the same.
  auto listed = client_->Get("/v1/triggers");
  ASSERT_EQ(listed.status, 200) << listed.body;
  ASSERT_EQ(listed["triggers"].Size(), 1u) << listed.body;
  EXPECT_STREQ(listed["triggers"][0]["state"].GetString(), "paused");
  EXPECT_FALSE(listed["triggers"][0].HasMember("next_fire_at")) << listed.body;
}

}  // namespace
}  // namespace runlog
