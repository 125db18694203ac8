// What one answer costs to build: a claimed task rendered the way the claim
// answer shows it, and an event payload the way the writer builds one.
//
//   build/tests/render_bench --benchmark_repetitions=3

#include <benchmark/benchmark.h>

#include "api/render.h"

namespace runlog::api {
namespace {

events::Task ClaimedTask() {
  events::Task t;
  t.id = "task_2b4kqjv3x5aaaaj6mrnvd5k2qa";
  t.tenant_id = "acct_admin";
  t.type = "bench-12345";
  t.status = events::TaskStatus::kRunning;
  t.input =
      R"({"i":123456,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"})";
  t.limits = R"({"max_steps":20,"timeout_seconds":300})";
  t.plan = R"({"steps":[{"input":{"$ref":"/input"},"tool":"agent","tool_version":"1"}]})";
  t.max_attempts = 1;
  t.attempt = 1;
  t.created_at_ms = 1'790'000'000'000;
  t.execution_started_at_ms = 1'790'000'000'050;
  t.lease.lease_id = "lease_abcdefghijklmnopqrstuvwxyz";
  t.lease.worker_id = "worker-7";
  t.lease.expires_at_ms = 1'790'000'300'050;
  return t;
}

void BM_RenderClaimedTask(benchmark::State& state) {
  const events::Task t = ClaimedTask();
  for (auto _ : state) benchmark::DoNotOptimize(RenderTask(t));
}
BENCHMARK(BM_RenderClaimedTask);

void BM_ClaimEventPayload(benchmark::State& state) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(events::Payload()
                                 .Str("lease_id", "lease_abcdefghijklmnopqrstuvwxyz")
                                 .Str("worker_id", "worker-7")
                                 .Str("key_id", "key_abcdefghijklmnopqrstuvwxyz")
                                 .Int("attempt", 1)
                                 .Int("lease_expires_at_ms", 1'790'000'300'050)
                                 .Int("lease_ms", 300'000)
                                 .Build());
  }
}
BENCHMARK(BM_ClaimEventPayload);

}  // namespace
}  // namespace runlog::api
