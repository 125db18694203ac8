// `runlog bench-log`: appenders in threads, each appending one event at a time
// and waiting for it to be durable, for a bounded time. Prints throughput and
// latency, next to the same disk's raw 512-byte write+fdatasync rate measured
// in the same run (machines here are shared and noisy, so only ratios within
// one run mean much).

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include "events/event_log.h"
#include "events/kafka_log.h"
#include "events/kafka_mock.h"
#include "events/partitioner.h"
#include "infra/cli/commands.h"
#include "infra/cli/common.h"

namespace runlog::cli {
namespace {

using SteadyClock = std::chrono::steady_clock;

struct BenchLogOptions {
  std::string backend = "embedded";
  std::string mode = "async";
  int appenders = 16;
  double seconds = 5;
  int record_bytes = 300;
  bool json = false;
  std::string data;
  std::string brokers;  // empty: an in-process mock cluster
  uint32_t partitions = 8;
  // Kafka: one idempotent producer for all partitions (--single-node), or a
  // transactional producer per partition, as a cluster node writes.
  std::string kafka_writes = "idempotent";
};

double Percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * (sorted.size() - 1) + 0.5));
  return sorted[i];
}

events::Event MakeEvent(int thread, uint64_t n, int record_bytes) {
  events::Event e;
  e.type = "bench.appended";
  e.event_id = "evt_" + std::to_string(thread) + "_" + std::to_string(n);
  e.aggregate_id = "bench_" + std::to_string(thread) + "_" + std::to_string(n);
  e.sequence = 1;
  e.timestamp_ms = 1;
  // Fixed envelope overhead of the codec is 46 bytes plus the strings.
  int overhead = 46 + static_cast<int>(e.type.size() + e.event_id.size() + e.aggregate_id.size());
  int pad = std::max(0, record_bytes - overhead - 10);
  e.payload = "{\"pad\":\"" + std::string(pad, 'p') + "\"}";
  return e;
}

using Latencies = std::vector<std::vector<double>>;

// One thread per appender, each blocked in Append until its record is durable.
void RunBlocking(events::EventLog& log, const BenchLogOptions& o, SteadyClock::time_point deadline,
                 Latencies& latencies, std::atomic<uint64_t>& errors) {
  std::vector<std::thread> threads;
  for (int t = 0; t < o.appenders; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t n = 0; SteadyClock::now() < deadline; ++n) {
        events::Event e = MakeEvent(t, n, o.record_bytes);
        uint32_t p = events::PartitionFor(e.aggregate_id, o.partitions);
        auto t0 = SteadyClock::now();
        if (!log.Append(p, std::span(&e, 1))) {
          ++errors;
          continue;
        }
        latencies[t].push_back(
            std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count());
      }
    });
  }
  for (auto& th : threads) th.join();
}

// Appenders as state machines with one append in flight each: the next append
// is issued from the completion of the previous one, as runlogd's partition
// writers do, so no thread waits per append.
void RunAsync(events::EventLog& log, const BenchLogOptions& o, SteadyClock::time_point deadline,
              Latencies& latencies, std::atomic<uint64_t>& errors) {
  std::mutex mu;
  std::condition_variable all_done;
  int running = o.appenders;
  std::function<void(int, uint64_t)> issue = [&](int t, uint64_t n) {
    if (SteadyClock::now() >= deadline) {
      std::lock_guard lock(mu);
      if (--running == 0) all_done.notify_one();
      return;
    }
    events::Event e = MakeEvent(t, n, o.record_bytes);
    uint32_t p = events::PartitionFor(e.aggregate_id, o.partitions);
    auto t0 = SteadyClock::now();
    auto appended =
        log.AppendAsync(p, std::span(&e, 1), [&, t, n, t0](Result<std::vector<uint64_t>> r) {
          if (r) {
            latencies[t].push_back(
                std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count());
          } else if (++errors > 1000) {
            std::lock_guard lock(mu);
            if (--running == 0) all_done.notify_one();
            return;  // give up: the log is failing
          }
          issue(t, n + 1);
        });
    if (!appended) {  // refused at once: the log is closing or latched
      std::lock_guard lock(mu);
      ++errors;
      if (--running == 0) all_done.notify_one();
    }
  };
  for (int t = 0; t < o.appenders; ++t) issue(t, 0);
  std::unique_lock lock(mu);
  all_done.wait(lock, [&] { return running == 0; });
}

int RunBenchLog(const BenchLogOptions& o) {
  if (o.appenders < 1 || o.appenders > 1024 || o.seconds <= 0 || o.seconds > 300 ||
      o.record_bytes < 64 || o.record_bytes > (1 << 20)) {
    std::fprintf(stderr,
                 "runlog bench-log: need 1-1024 appenders, 0-300 seconds, 64 B-1 MiB records\n");
    return 2;
  }
  const bool own_dir = o.data.empty();
  const std::string dir = own_dir ? "./data/bench-log-" + std::to_string(::getpid()) : o.data;
  std::filesystem::create_directories(dir);
  const double fdatasync_per_s = MeasureFdatasync(dir, 2.0);

  std::unique_ptr<events::MockKafkaCluster> mock;
  events::LogOptions log_options;
  log_options.data_dir = dir;
  log_options.partitions = o.partitions;
  if (o.backend == "kafka") {
    std::string brokers = o.brokers;
    if (brokers.empty()) {
      auto started = events::MockKafkaCluster::Start(3);
      if (!started) return std::fprintf(stderr, "%s\n", started.error().ToString().c_str()), 1;
      mock = std::move(*started);
      if (auto s = mock->CreateTopic(log_options.kafka_topic, o.partitions, 3); !s) return 1;
      brokers = mock->bootstraps();
    }
    log_options.uri = "kafka://" + brokers;
    log_options.kafka_transactional = o.kafka_writes == "transactional";
  }
  auto log = events::OpenEventLog(log_options);
  if (!log) {
    std::fprintf(stderr, "runlog bench-log: %s\n", log.error().message.c_str());
    return 1;
  }
  if (log_options.kafka_transactional) {
    auto* kafka = dynamic_cast<events::KafkaLog*>(log->get());
    for (uint32_t p = 0; kafka != nullptr && p < o.partitions; ++p) {
      if (auto s = kafka->OpenWriter(p); !s) {
        std::fprintf(stderr, "runlog bench-log: %s\n", s.error().message.c_str());
        return 1;
      }
    }
  }
  // Warm up every partition (the Kafka mock needs ~1 s before a topic serves).
  for (uint32_t p = 0, n = 0; p < o.partitions; ++n) {
    auto e = MakeEvent(-1, n, o.record_bytes);
    if (events::PartitionFor(e.aggregate_id, o.partitions) != p) continue;
    if (!(*log)->Append(p, std::span(&e, 1))) return 1;
    ++p;
  }

  std::atomic<uint64_t> errors{0};
  std::vector<std::vector<double>> latencies(o.appenders);
  const auto start = SteadyClock::now();
  const auto deadline = start + std::chrono::duration_cast<SteadyClock::duration>(
                                    std::chrono::duration<double>(o.seconds));
  if (o.mode == "blocking") {
    RunBlocking(**log, o, deadline, latencies, errors);
  } else {
    RunAsync(**log, o, deadline, latencies, errors);
  }
  const double elapsed = std::chrono::duration<double>(SteadyClock::now() - start).count();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  const double rate = all.size() / elapsed;
  log->reset();
  mock.reset();
  if (own_dir) std::filesystem::remove_all(dir);

  const char* fmt = o.json ? "{\"backend\":\"%s\",\"kafka_writes\":\"%s\",\"mode\":\"%s\","
                             "\"appenders\":%d,\"seconds\":%.2f,"
                             "\"record_bytes\":%d,\"partitions\":%u,\"appends\":%zu,"
                             "\"appends_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
                             "\"max_ms\":%.3f,\"errors\":%llu,\"fdatasync_per_s\":%.1f,"
                             "\"ratio_to_fdatasync\":%.2f}\n"
                           : "backend %s  kafka_writes %s  mode %s  appenders %d  seconds %.2f  "
                             "record_bytes %d  "
                             "partitions %u\nappends %zu  appends/s %.1f  p50 %.3f ms  "
                             "p99 %.3f ms  max %.3f ms  errors %llu\nfdatasync/s %.1f  "
                             "ratio %.2f\n";
  std::printf(fmt, o.backend.c_str(), o.backend == "kafka" ? o.kafka_writes.c_str() : "-",
              o.mode.c_str(), o.appenders, elapsed, o.record_bytes, o.partitions, all.size(), rate,
              Percentile(all, 0.5), Percentile(all, 0.99), all.empty() ? 0.0 : all.back(),
              static_cast<unsigned long long>(errors.load()), fdatasync_per_s,
              fdatasync_per_s > 0 ? rate / fdatasync_per_s : 0.0);
  return errors.load() == 0 ? 0 : 1;
}

}  // namespace

Runner AddBenchLog(CLI::App& app) {
  auto o = std::make_shared<BenchLogOptions>();
  auto* sub = app.add_subcommand("bench-log", "measure durable log appends against fdatasync");
  sub->add_option("--backend", o->backend, "embedded or kafka")
      ->check(CLI::IsMember({"embedded", "kafka"}));
  sub->add_option("--mode", o->mode, "async (appenders as callbacks) or blocking (a thread each)")
      ->check(CLI::IsMember({"async", "blocking"}))
      ->capture_default_str();
  sub->add_option("--appenders", o->appenders, "concurrent appenders")->capture_default_str();
  sub->add_option("--seconds", o->seconds, "duration (at most 300)")->capture_default_str();
  sub->add_option("--record-bytes", o->record_bytes, "encoded record size")->capture_default_str();
  sub->add_option("--partitions", o->partitions, "log partitions")->capture_default_str();
  sub->add_option("--data", o->data, "directory for the log (default: a temporary one in ./data)");
  sub->add_option("--brokers", o->brokers, "Kafka bootstrap (default: in-process mock cluster)");
  sub->add_option("--kafka-writes", o->kafka_writes,
                  "idempotent (one producer) or transactional (one per partition, as a cluster)")
      ->check(CLI::IsMember({"idempotent", "transactional"}))
      ->capture_default_str();
  sub->add_flag("--json", o->json, "print one JSON object");
  return [o] { return RunBenchLog(*o); };
}

}  // namespace runlog::cli
