// A plan's approval step: it records its data as an artifact pending
// approval and waits with no executor; the wait survives a kill -9 of
// runlogd, and the plan continues once the artifact is approved. A
// rejection fails the step APPROVAL_REJECTED; no decision in time,
// APPROVAL_EXPIRED.

#include <gtest/gtest.h>

#include <thread>

#include "tests/testing/http_client.h"
#include "tests/testing/process.h"
#include "tests/testing/runlogd.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace runlog {
namespace {

using namespace std::chrono_literals;
using runlog::testing::HttpClient;
using runlog::testing::HttpResponse;
using runlog::testing::Process;

constexpr char kKey[] = "rl_test_approvals_admin";

std::unique_ptr<Process> StartServer(const std::string& data, std::string* url) {
  return runlog::testing::StartRunlogd(data, url);
}

std::string Plan(int timeout_seconds, int max_total_seconds = 3600) {
  return R"J({"type":"outreach","input":{"to":"ada"},"limits":{"max_total_seconds":)J" +
         std::to_string(max_total_seconds) + R"J(},
    "plan":{"steps":[
      {"tool":"math","input":{"expression":"6*7"}},
      {"tool":"approval","input":{"type":"sales.email_draft","timeout_seconds":)J" +
         std::to_string(timeout_seconds) + R"J(,
                                  "data":{"to":{"$ref":"/input/to"},"n":{"$ref":"/steps/1/output/result"}}}},
      {"tool":"template","input":{"template":"sent after {{d}}",
                                  "values":{"d":{"$ref":"/steps/2/output/decision"}}}}]}})J";
}

// The task once its step 2 waits, and the id of the artifact it waits on.
std::string WaitingArtifact(HttpClient& client, const std::string& id) {
  std::string artifact;
  EXPECT_TRUE(runlog::testing::WaitFor(
      [&] {
        auto t = client.Get("/v1/tasks/" + id + "/trace");
        if (!t.json.IsObject() || !t["steps"].IsArray() || t["steps"].Size() < 2) return false;
        if (std::string(t["steps"][1]["status"].GetString()) != "waiting") return false;
        auto listed = client.Get("/v1/artifacts?task_id=" + id + "&approval_status=pending");
        if (listed["artifacts"].Size() != 1) return false;
        artifact = listed["artifacts"][0]["artifact_id"].GetString();
        return true;
      },
      15s))
      << client.Get("/v1/tasks/" + id).body;
  return artifact;
}

HttpResponse Ended(HttpClient& client, const std::string& id) {
  HttpResponse r;
  runlog::testing::WaitFor(
      [&] {
        r = client.Get("/v1/tasks/" + id);
        const std::string s = r.Str("status");
        return s == "succeeded" || s == "failed" || s == "cancelled";
      },
      15s);
  return r;
}

TEST(Approvals, AnApprovalStepWaitsAcrossAKillNineAndContinuesOnceApproved) {
  ::setenv("RUNLOG_ADMIN_KEY", kKey, 1);
  runlog::testing::TempDir dir;
  const std::string data = dir / "data";
  std::string url;
  auto server = StartServer(data, &url);
  ASSERT_TRUE(server);
  std::string approved_id, rejected_id, approved_artifact, rejected_artifact;
  {
    HttpClient client(url);
    client.SetKey(kKey);
    approved_id = client.Post("/v1/tasks", Plan(600)).Str("id");
    rejected_id = client.Post("/v1/tasks", Plan(600)).Str("id");
    approved_artifact = WaitingArtifact(client, approved_id);
    rejected_artifact = WaitingArtifact(client, rejected_id);
    auto artifact = client.Get("/v1/artifacts/" + approved_artifact);
    EXPECT_EQ(artifact["data"]["n"].GetInt(), 42) << artifact.body;
    EXPECT_EQ(artifact.Str("approval_status"), "pending");
    EXPECT_EQ(client.Get("/v1/tasks/" + approved_id).Str("status"), "running");
  }
  server->Signal(SIGKILL);
  server->Wait();
  server = StartServer(data, &url);
  ASSERT_TRUE(server);
  HttpClient client(url);
  client.SetKey(kKey);
  // Still waiting, on no executor, after the restart.
  std::this_thread::sleep_for(500ms);
  auto waiting = client.Get("/v1/tasks/" + approved_id + "/trace");
  EXPECT_EQ(client.Get("/v1/tasks/" + approved_id).Str("status"), "running");
  EXPECT_STREQ(waiting["steps"][1]["status"].GetString(), "waiting") << waiting.body;
  auto approve = client.Post("/v1/artifacts/" + approved_artifact + "/approve",
                             R"({"comment":"looks right"})");
  ASSERT_EQ(approve.status, 200) << approve.body;
  EXPECT_EQ(approve.Str("approval_status"), "approved");
  auto done = Ended(client, approved_id);
  ASSERT_EQ(done.Str("status"), "succeeded") << done.body;
  EXPECT_STREQ(done["result"]["result"].GetString(), "sent after approved") << done.body;
  auto trace = client.Get("/v1/tasks/" + approved_id + "/trace");
  EXPECT_STREQ(trace["steps"][1]["output"]["decided_by"].GetString(),
               approve.Str("decided_by").c_str())
      << trace.body;
  // A replay reuses the recorded decision: it does not wait, and matches.
  auto replay = client.Post("/v1/tasks/" + approved_id + "/replay", "{}");
  ASSERT_EQ(replay.status, 201) << replay.body;
  auto replayed = Ended(client, replay.Str("id"));
  ASSERT_EQ(replayed.Str("status"), "succeeded") << replayed.body;
  auto verdict = client.Get("/v1/tasks/" + replay.Str("id") + "/trace");
  EXPECT_TRUE(verdict["replay"]["matches"].GetBool()) << verdict.body;
  auto reject =
      client.Post("/v1/artifacts/" + rejected_artifact + "/reject", R"({"comment":"wrong tone"})");
  ASSERT_EQ(reject.status, 200) << reject.body;
  auto failed = Ended(client, rejected_id);
  ASSERT_EQ(failed.Str("status"), "failed") << failed.body;
  EXPECT_STREQ(failed["failure"]["code"].GetString(), "APPROVAL_REJECTED") << failed.body;
  EXPECT_EQ(failed["failure"]["index"].GetInt(), 2);
  // Undecided past its timeout, the step fails and a late approval is refused.
  const std::string late_id = client.Post("/v1/tasks", Plan(1)).Str("id");
  const std::string late_artifact = WaitingArtifact(client, late_id);
  auto expired = Ended(client, late_id);
  ASSERT_EQ(expired.Str("status"), "failed") << expired.body;
  EXPECT_STREQ(expired["failure"]["code"].GetString(), "APPROVAL_EXPIRED") << expired.body;
  auto too_late = client.Post("/v1/artifacts/" + late_artifact + "/approve", "{}");
  EXPECT_EQ(too_late.status, 409) << too_late.body;
  EXPECT_EQ(too_late.ErrorCode(), "APPROVAL_NOT_PENDING");
  // Waiting for a person is not the task's run time: a 2 s task waits 3 s
  // for its decision and then runs its last step.
  const std::string patient_id = client.Post("/v1/tasks", Plan(600, 2)).Str("id");
  const std::string patient_artifact = WaitingArtifact(client, patient_id);
  std::this_thread::sleep_for(3s);
  ASSERT_EQ(client.Post("/v1/artifacts/" + patient_artifact + "/approve", "{}").status, 200);
  auto patient = Ended(client, patient_id);
  EXPECT_EQ(patient.Str("status"), "succeeded") << patient.body;
  // Every transition on the log is legal, every hash recomputes.
  server->Signal(SIGTERM);
  EXPECT_EQ(server->Wait(), 0);
  Process audit({RUNLOG_PATH, "audit", "--data", data, "--partitions", "4"});
  EXPECT_EQ(audit.Wait(), 0) << audit.DrainStderr();
}

}  // namespace
}  // namespace runlog
