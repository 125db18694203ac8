// The task as the views store it: every field survives the round trip, and
// fields at their defaults are left out of the stored JSON.

#include <gtest/gtest.h>

#include "events/task.h"

namespace runlog::events {
namespace {

Task EveryFieldSet() {
  Task t;
  t.id = "task_1";
  t.tenant_id = "acct_a";
  t.type = "summarize";
  t.agent_id = "agent_1";
  t.input = R"({"a":1})";
  t.limits = R"({"max_steps":3})";
  t.plan = R"({"steps":[]})";
  t.max_attempts = 3;
  t.priority = -2;
  t.idempotency_key = "k";
  t.request_hash = "h";
  t.replay_of_task_id = "task_0";
  t.replay_of = R"({"task_id":"task_0"})";
  t.recorded_outputs = R"({"1":{}})";
  t.executor = true;
  t.plan_failures = R"([{"code":"X"}])";
  t.step_count = 2;
  t.agent_step_input = R"({"q":1})";
  t.agent_step_version = "2";
  t.step_runners = "we";
  t.handed_off = true;
  t.status = TaskStatus::kFailed;
  t.sequence = 9;
  t.attempt = 2;
  t.retry_count = 1;
  t.cancel_requested = true;
  t.lease = Lease{"lease_1", "w1", "key_1", 1000, 300};
  t.result = R"({"ok":true})";
  t.error = R"({"code":"E","message":"m"})";
  t.error_code = "E";
  t.failure = R"({"code":"E"})";
  t.steps.push_back(StepRecord{1, "math", "1", R"({"x":1})", "failed", R"({"y":2})",
                               R"({"code":"E"})", "E", "abc", 2,
                               events::Usage{7, 3, 4, "m1", 250, 1500}, true, 10, 20, 10});
  t.tokens_used = 7;
  t.cost_nanos = 1500;
  t.step_hashes = R"(["abc"])";
  t.task_hash = "def";
  t.replay = R"({"matches":false})";
  t.created_at_ms = 1;
  t.queued_at_ms = 2;
  t.first_queued_at_ms = 3;
  t.execution_started_at_ms = 4;
  t.claimed_at_ms = 5;
  t.execution_finished_at_ms = 6;
  return t;
}

TEST(TaskJson, EveryFieldSurvivesTheRoundTrip) {
  const Task t = EveryFieldSet();
  const std::string json = TaskToJson(t);
  auto back = TaskFromJson(json);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(TaskToJson(*back), json);
  EXPECT_EQ(back->max_attempts, 3);
  EXPECT_EQ(back->priority, -2);
  EXPECT_EQ(back->error_code, "E");
  EXPECT_EQ(back->lease.expires_at_ms, 1000);
  ASSERT_EQ(back->steps.size(), 1u);
  EXPECT_TRUE(back->steps[0].sandboxed);
  EXPECT_EQ(back->steps[0].duration_ms, 10);
  EXPECT_TRUE(back->handed_off);
  EXPECT_TRUE(back->cancel_requested);
}

TEST(TaskJson, DefaultsAreLeftOutAndReadBackAsDefaults) {
  Task t;
  t.id = "task_2";
  t.tenant_id = "acct_a";
  t.type = "t";
  t.status = TaskStatus::kQueued;
  const std::string json = TaskToJson(t);
  EXPECT_EQ(json, R"({"id":"task_2","tenant_id":"acct_a","type":"t","max_attempts":1,)"
                  R"("status":"queued"})");
  auto back = TaskFromJson(json);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->max_attempts, 1);
  EXPECT_EQ(back->status, TaskStatus::kQueued);
  EXPECT_TRUE(back->input.empty());
  EXPECT_TRUE(back->steps.empty());
  EXPECT_FALSE(back->executor);
  EXPECT_EQ(TaskToJson(*back), json);
}

}  // namespace
}  // namespace runlog::events
