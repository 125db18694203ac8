// `runlog rebuild --data DIR`: deletes the views and rebuilds them from offset
// 0 of the log. Run it while runlogd is stopped (the log's lock refuses a
// second opener, and says so).

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "events/event_log.h"
#include "infra/cli/commands.h"
#include "infra/cli/common.h"
#include "projections/projector.h"

namespace runlog::cli {
namespace {

int RunRebuild(const events::LogOptions& options) {
  auto log = events::OpenEventLog(options);
  if (!log) {
    std::fprintf(stderr, "runlog rebuild: %s (is runlogd still running on this data?)\n",
                 log.error().message.c_str());
    return 2;
  }
  const auto start = std::chrono::steady_clock::now();
  if (auto s = projections::Views::Destroy(options.data_dir); !s) {
    std::fprintf(stderr, "runlog rebuild: %s\n", s.error().message.c_str());
    return 1;
  }
  auto views = projections::Views::Open(options.data_dir);
  if (!views) {
    std::fprintf(stderr, "runlog rebuild: %s\n", views.error().message.c_str());
    return 1;
  }
  projections::Projector projector(**log, **views);
  uint64_t total = 0;
  for (uint32_t p = 0; p < (*log)->partition_count(); ++p) {
    if (auto end = (*log)->EndOffset(p)) total += *end;
  }
  const auto applied = [&] {
    uint64_t n = 0;
    for (uint32_t p = 0; p < (*log)->partition_count(); ++p) n += projector.applied(p);
    return n;
  };
  // CatchUp applies on this thread; another one watches how far it is.
  Progress progress("runlog rebuild");
  const auto show = [&](bool last) {
    const uint64_t n = applied();
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const std::string status = Grouped(n) + "/" + Grouped(total) + " records, " +
                               Grouped(static_cast<uint64_t>(n / std::max(s, 1e-9))) + "/s";
    const double fraction = total > 0 ? std::min(1.0, double(n) / total) : 1.0;
    last ? progress.Finish(fraction, status) : progress.Show(fraction, status);
  };
  std::mutex mu;
  std::condition_variable cv;
  bool caught_up = false;
  std::thread watcher([&] {
    std::unique_lock lock(mu);
    while (!cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return caught_up; })) {
      lock.unlock();  // not held while drawing
      show(false);
      lock.lock();
    }
  });
  auto caught = projector.CatchUp();
  {
    std::lock_guard lock(mu);
    caught_up = true;
  }
  cv.notify_one();
  watcher.join();
  if (!caught) {
    std::fprintf(stderr, "runlog rebuild: %s\n", caught.error().message.c_str());
    return 1;
  }
  show(true);
  const uint64_t records = applied();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("{\"records\":%llu,\"seconds\":%.3f,\"records_per_s\":%.0f}\n",
              static_cast<unsigned long long>(records), seconds, records / std::max(seconds, 1e-9));
  return 0;
}

}  // namespace

Runner AddRebuild(CLI::App& app) {
  auto o = std::make_shared<events::LogOptions>();
  auto* sub = app.add_subcommand("rebuild", "delete the views and rebuild them from the log");
  AddLogOptions(sub, o.get());
  return [o] { return RunRebuild(*o); };
}

}  // namespace runlog::cli
