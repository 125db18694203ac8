// What the sandbox costs per run: a command through Sandbox::Run against plain
// posix_spawn + waitpid of the same command, 50 runs each, interleaved so drift
// on the machine hits both alike. Reported as counters (milliseconds): the two
// medians and their difference, the sandbox's overhead. One iteration each; the
// 50 runs are inside it, because Google Benchmark's own statistics give means of
// iterations, not the median of single runs.
//
//   sandbox_bench --benchmark_counters_tabular=true

#include <benchmark/benchmark.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "sandbox/sandbox.h"

#ifndef SANDBOX_HELPER_PATH
#error "SANDBOX_HELPER_PATH must name the runlog-sandbox executable"
#endif

namespace runlog::sandbox {
namespace {

constexpr int kRuns = 50;
using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// Same environment as the sandbox gives, so the program does the same work.
double TimePlain(const std::vector<std::string>& argv, benchmark::State& state) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  char path[] = "PATH=/usr/local/bin:/usr/bin:/bin", home[] = "HOME=/tmp";
  char* env[] = {path, home, nullptr};
  auto start = Clock::now();
  pid_t pid;
  int status = 0;
  if (::posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), env) != 0 ||
      ::waitpid(pid, &status, 0) != pid || status != 0)
    state.SkipWithError("plain run failed");
  return Ms(Clock::now() - start);
}

double TimeSandboxed(Sandbox& sandbox, const std::vector<std::string>& argv,
                     benchmark::State& state) {
  auto start = Clock::now();
  Result<Outcome> outcome = sandbox.Run({argv, "", {}});
  if (!outcome || outcome->exit_code != 0) state.SkipWithError("sandboxed run failed");
  return Ms(Clock::now() - start);
}

void BM_SandboxOverhead(benchmark::State& state, std::vector<std::string> argv, bool cgroups) {
  Options options{SANDBOX_HELPER_PATH};
  if (!cgroups) options.cgroup_root.clear();
  Sandbox sandbox(options);
  for (int i = 0; i < 3; ++i) {  // warm up: page cache, the seccomp filter's compilation
    TimePlain(argv, state);
    TimeSandboxed(sandbox, argv, state);
  }
  for (auto _ : state) {
    std::vector<double> plain, sandboxed;
    for (int i = 0; i < kRuns; ++i) {
      plain.push_back(TimePlain(argv, state));
      sandboxed.push_back(TimeSandboxed(sandbox, argv, state));
    }
    double p = Median(plain), s = Median(sandboxed);
    state.counters["plain_median_ms"] = p;
    state.counters["sandbox_median_ms"] = s;
    state.counters["overhead_ms"] = s - p;
  }
  state.SetLabel("cgroups: " + sandbox.cgroup_mode());
}

BENCHMARK_CAPTURE(BM_SandboxOverhead, python3_pass,
                  std::vector<std::string>{"/usr/bin/python3", "-c", "pass"}, true)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_SandboxOverhead, python3_pass_no_cgroups,
                  std::vector<std::string>{"/usr/bin/python3", "-c", "pass"}, false)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_SandboxOverhead, bin_true, std::vector<std::string>{"/bin/true"}, true)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace runlog::sandbox
