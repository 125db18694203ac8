// `runlog rebuild --data DIR`: deletes the views and rebuilds them from offset
// 0 of the log. Run it while runlogd is stopped (the log's lock refuses a
// second opener, and says so).

#include <chrono>
#include <cstdio>

#include "events/event_log.h"
#include "infra/cli/commands.h"
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
  if (auto s = projector.CatchUp(); !s) {
    std::fprintf(stderr, "runlog rebuild: %s\n", s.error().message.c_str());
    return 1;
  }
  uint64_t records = 0;
  for (uint32_t p = 0; p < (*log)->partition_count(); ++p) records += projector.applied(p);
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
  sub->add_option("--data", o->data_dir, "data directory")->capture_default_str();
  sub->add_option("--log", o->uri, "embedded, or kafka://HOST:PORT[,HOST:PORT]")
      ->capture_default_str();
  sub->add_option("--partitions", o->partitions, "log partitions")->capture_default_str();
  sub->add_option("--kafka-topic", o->kafka_topic, "Kafka topic of the log")->capture_default_str();
  return [o] { return RunRebuild(*o); };
}

}  // namespace runlog::cli
