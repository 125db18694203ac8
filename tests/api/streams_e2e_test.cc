// Live progress over server-sent events: a client follows a running plan,
// disconnects, and resumes with Last-Event-ID without a gap or a repeat; the
// tenant-wide stream resumes across partitions the same way.

#include <gtest/gtest.h>

#include <thread>

#include "tests/testing/http_client.h"
#include "tests/testing/server.h"
#include "tests/testing/sse_client.h"
#include "tests/testing/temp_dir.h"

namespace runlog {
namespace {

using namespace std::chrono_literals;
using runlog::testing::HttpClient;
using runlog::testing::kAdminKey;
using runlog::testing::SseClient;

constexpr char kPlan[] = R"J({
  "type": "live", "input": {"who": "ada"},
  "plan": {"steps": [
    {"tool": "math", "input": {"expression": "6*7"}},
    {"tool": "agent", "input": {"question": {"$ref": "/steps/1/output/result"}}},
    {"tool": "math", "input": {"expression": "1+1"}}
  ]}})J";

// The types of the events of `id` on the log, in order, from its trace.
std::vector<std::string> TraceTypes(HttpClient& client, const std::string& id) {
  auto trace = client.Get("/v1/tasks/" + id + "/trace");
  std::vector<std::string> types;
  for (const auto& e : trace["events"].GetArray()) types.emplace_back(e["event"].GetString());
  return types;
}

TEST(Streams, AClientFollowsARunningPlanAndResumesWithoutAGapOrARepeat) {
  runlog::testing::TempDir dir;
  infra::SystemClock clock;
  runlog::testing::TestServer server(dir.path(), clock);
  HttpClient client(server.url());
  client.SetKey(kAdminKey);
  const uint16_t port = server.http().port();
  auto created = client.Post("/v1/tasks", kPlan);
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id = created.Str("id");

  std::vector<SseClient::Frame> seen;
  std::string last;
  {
    SseClient sse(port, "/v1/tasks/" + id + "/events", kAdminKey);
    ASSERT_EQ(sse.status(), 200);
    EXPECT_NE(sse.headers().find("text/event-stream"), std::string::npos);
    // Up to the worker's claim of step 2: the plan waits there for us.
    auto claim = client.Post("/v1/tasks/claim", R"J({"types":["live"],"wait_seconds":10})J");
    ASSERT_EQ(claim.status, 200) << claim.body;
    while (auto f = sse.Next()) {
      seen.push_back(*f);
      if (f->event == "task.claimed") break;
    }
    ASSERT_FALSE(seen.empty());
    ASSERT_EQ(seen.back().event, "task.claimed");
    last = seen.back().id;
    // Disconnected; the plan goes on without the client.
    auto done =
        client.Post("/v1/tasks/" + id + "/complete",
                    R"J({"lease_id":")J" + std::string(claim["lease"]["lease_id"].GetString()) +
                        R"J(","output":{"answer":"yes"}})J");
    ASSERT_EQ(done.status, 200) << done.body;
  }
  SseClient resumed(port, "/v1/tasks/" + id + "/events", kAdminKey, last);
  ASSERT_EQ(resumed.status(), 200);
  while (auto f = resumed.Next(20s)) seen.push_back(*f);  // until the task's end closes it
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().event, "task.succeeded");
  // Every event of the task, in log order, each once.
  std::vector<std::string> types;
  for (size_t i = 0; i < seen.size(); ++i) {
    types.push_back(seen[i].event);
    if (i > 0) {
      EXPECT_LT(std::stoll(seen[i - 1].id), std::stoll(seen[i].id));
    }
    rapidjson::Document data;
    data.Parse(seen[i].data.c_str());
    ASSERT_TRUE(data.IsObject()) << seen[i].data;
    EXPECT_EQ(std::to_string(data["offset"].GetInt64()), seen[i].id);
    EXPECT_EQ(data["aggregate_id"].GetString(), id);
  }
  EXPECT_EQ(types, TraceTypes(client, id));
  EXPECT_GE(types.size(), 10u);  // created … step.started/finished ×3 … succeeded
  // Another tenant's key does not see the task; a bad resume id is a 400.
  const std::string other = server.KeyWithScopes("acct_other", {"read", "write"});
  SseClient foreign(port, "/v1/tasks/" + id + "/events", other);
  EXPECT_EQ(foreign.status(), 404);
  SseClient bad(port, "/v1/tasks/" + id + "/events", kAdminKey, "not-an-id");
  EXPECT_EQ(bad.status(), 400);
}

TEST(Streams, TheTenantStreamResumesAcrossPartitionsWithItsPositionId) {
  runlog::testing::TempDir dir;
  infra::SystemClock clock;
  runlog::testing::TestServer server(dir.path(), clock);
  HttpClient client(server.url());
  client.SetKey(kAdminKey);
  const uint16_t port = server.http().port();
  std::vector<std::string> first;
  std::string last;
  {
    SseClient sse(port, "/v1/events?types=task.created", kAdminKey);
    ASSERT_EQ(sse.status(), 200);
    for (int i = 0; i < 6; ++i) {
      ASSERT_EQ(client.Post("/v1/tasks", R"({"type":"t","input":{}})").status, 201);
    }
    while (first.size() < 6) {
      auto f = sse.Next();
      ASSERT_TRUE(f);
      EXPECT_EQ(f->event, "task.created");
      rapidjson::Document data;
      data.Parse(f->data.c_str());
      first.emplace_back(data["aggregate_id"].GetString());
      last = f->id;
    }
  }
  // Created while nobody listened; the resumed stream has them all, once.
  std::set<std::string> later;
  for (int i = 0; i < 6; ++i) {
    later.insert(client.Post("/v1/tasks", R"({"type":"t","input":{}})").Str("id"));
  }
  SseClient resumed(port, "/v1/events?types=task.created", kAdminKey, last);
  ASSERT_EQ(resumed.status(), 200);
  std::set<std::string> got;
  while (got.size() < 6) {
    auto f = resumed.Next();
    ASSERT_TRUE(f) << got.size();
    rapidjson::Document data;
    data.Parse(f->data.c_str());
    EXPECT_TRUE(got.insert(data["aggregate_id"].GetString()).second);
  }
  EXPECT_EQ(got, later);
  EXPECT_FALSE(resumed.Next(500ms)) << "more than the six created";
}

}  // namespace
}  // namespace runlog
