// What the task service and the embedded log cost per task, without HTTP or
// the projector: N tasks created, then each claimed and completed, through
// the real writers and a real log on disk. The CPU time is the whole
// process's (the log's threads included); appends are asynchronous, so the
// log groups them far more than 64 HTTP clients would and fsyncs hardly count.
//
//   build/tests/service_bench --benchmark_repetitions=3

#include <benchmark/benchmark.h>

#include "services/task_service.h"
#include "tests/testing/task_lifecycles.h"
#include "tests/testing/temp_dir.h"

namespace runlog::services {
namespace {

constexpr int kTasks = 20000;

void BM_CreateClaimComplete(benchmark::State& state) {
  for (auto _ : state) {
    state.PauseTiming();
    runlog::testing::TempDir dir;
    events::LogOptions options;
    options.data_dir = dir.path();
    options.partitions = 4;
    auto log = std::move(events::OpenEventLog(options).value());
    infra::SystemClock clock;
    infra::RandomIds ids;
    TaskService service({log.get(), &clock, &ids});
    (void)service.Recover(nullptr);
    service.Start();
    state.ResumeTiming();

    runlog::testing::CreateClaimComplete(service, {"acct_bench", "key_bench"}, kTasks);

    state.PauseTiming();
    service.Stop();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kTasks);
}
BENCHMARK(BM_CreateClaimComplete)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime();

}  // namespace
}  // namespace runlog::services
