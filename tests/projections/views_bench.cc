// The projector's cost per task, without the rest of the server: a real log
// holds N tasks created, then claimed and completed (made by the real task
// service); each iteration projects it into fresh views, the way the projector
// does.
// Argument 0: random task ids; 1: sortable ones (time first), as runlogd makes.
//
//   build/tests/views_bench --benchmark_repetitions=3

#include <benchmark/benchmark.h>

#include "projections/views.h"
#include "services/task_service.h"
#include "tests/testing/task_lifecycles.h"
#include "tests/testing/temp_dir.h"

namespace runlog::projections {
namespace {

constexpr int kTasks = 40000;
constexpr uint32_t kPartitions = 4;

// Task ids from Next (random) instead of NextSortable.
class UnsortedIds final : public infra::IdGenerator {
 public:
  std::string Next(std::string_view prefix) override { return ids_.Next(prefix); }
  std::string NextSortable(std::string_view prefix) override { return ids_.Next(prefix); }

 private:
  infra::RandomIds ids_;
};

// Every record of a log of kTasks tasks run to success, by partition.
std::vector<std::vector<events::LogRecord>> MakeLog(bool sortable) {
  runlog::testing::TempDir dir;
  events::LogOptions options;
  options.data_dir = dir.path();
  options.partitions = kPartitions;
  auto log = std::move(events::OpenEventLog(options).value());
  infra::SystemClock clock;
  infra::RandomIds sorted;
  UnsortedIds unsorted;
  services::TaskService service(
      {log.get(), &clock, sortable ? static_cast<infra::IdGenerator*>(&sorted) : &unsorted});
  (void)service.Recover(nullptr);
  service.Start();
  runlog::testing::CreateClaimComplete(service, {"acct_bench", "key_bench"}, kTasks);
  service.Stop();
  std::vector<std::vector<events::LogRecord>> out(kPartitions);
  for (uint32_t p = 0; p < kPartitions; ++p) {
    out[p] = std::move(log->Read(p, 0, SIZE_MAX).value());
  }
  return out;
}

// The projector's batches: up to 2048 records of a partition, partitions in turn.
std::vector<std::pair<uint32_t, std::vector<events::LogRecord>>> Batches(
    const std::vector<std::vector<events::LogRecord>>& log) {
  std::vector<std::pair<uint32_t, std::vector<events::LogRecord>>> out;
  std::vector<size_t> at(log.size(), 0);
  for (bool more = true; more;) {
    more = false;
    for (uint32_t p = 0; p < log.size(); ++p) {
      const size_t n = std::min<size_t>(2048, log[p].size() - at[p]);
      if (n == 0) continue;
      out.emplace_back(
          p, std::vector<events::LogRecord>(log[p].begin() + at[p], log[p].begin() + at[p] + n));
      at[p] += n;
      more = true;
    }
  }
  return out;
}

void BM_ProjectTasks(benchmark::State& state) {
  const auto batches = Batches(MakeLog(state.range(0) == 1));
  for (auto _ : state) {
    state.PauseTiming();
    {
      runlog::testing::TempDir dir;
      auto views = std::move(Views::Open(dir.path()).value());
      state.ResumeTiming();
      for (const auto& [p, records] : batches) {
        if (!views->Apply(p, records, nullptr)) state.SkipWithError("Apply failed");
      }
      state.PauseTiming();
    }
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kTasks);
}
BENCHMARK(BM_ProjectTasks)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace runlog::projections
