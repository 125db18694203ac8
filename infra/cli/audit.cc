// `runlog export` and `runlog audit`: read the whole log, in offset order per
// partition. export writes it as JSON lines (docs/hashing.md has the format,
// tests/audit/check_hashes.py reads it); audit replays it through the state
// machine, recomputes every step and task hash, and exits 1 on any mismatch.

#include "events/audit.h"

#include <chrono>
#include <cstdio>

#include "events/event_log.h"
#include "events/payload.h"
#include "infra/cli/commands.h"

namespace runlog::cli {
namespace {

// Calls `each` for every record of every partition; an unreadable record goes
// to `unreadable` and ends that partition (nothing after it can be trusted).
int ForEachRecord(const char* command, const events::LogOptions& options,
                  const std::function<void(const events::LogRecord&)>& each,
                  const std::function<void(const std::string&)>& unreadable) {
  auto log = events::OpenEventLog(options);
  if (!log) {
    std::fprintf(stderr, "runlog %s: %s (is runlogd still running on this data?)\n", command,
                 log.error().message.c_str());
    return 2;
  }
  for (uint32_t p = 0; p < (*log)->partition_count(); ++p) {
    auto end = (*log)->EndOffset(p);
    if (!end) {
      unreadable(end.error().message);
      continue;
    }
    for (uint64_t offset = 0; offset < *end;) {
      auto records = (*log)->Read(p, offset, 8192);
      if (records && records->empty() && !(*log)->OffsetsContiguous())
        break;  // the rest is markers
      if (!records || records->empty()) {
        unreadable(records ? "partition " + std::to_string(p) + " ended early at offset " +
                                 std::to_string(offset)
                           : records.error().message + (records.error().details.empty()
                                                            ? ""
                                                            : " " + records.error().details));
        break;
      }
      for (const events::LogRecord& r : *records) each(r);
      offset = records->back().offset + 1;
    }
  }
  return 0;
}

int RunExport(const events::LogOptions& options, const std::string& out_path) {
  std::FILE* out = out_path == "-" ? stdout : std::fopen(out_path.c_str(), "w");
  if (out == nullptr) {
    std::fprintf(stderr, "runlog export: cannot write %s\n", out_path.c_str());
    return 2;
  }
  uint64_t n = 0;
  bool damaged = false;
  std::string line;
  int rc = ForEachRecord(
      "export", options,
      [&](const events::LogRecord& r) {
        const events::Event& e = r.event;
        line = events::Payload()
                   .Int("partition", r.partition)
                   .Int("offset", static_cast<int64_t>(r.offset))
                   .Raw("event", events::Payload()
                                     .Str("type", e.type)
                                     .Int("schema_version", e.schema_version)
                                     .Str("event_id", e.event_id)
                                     .Str("aggregate_id", e.aggregate_id)
                                     .Str("tenant_id", e.tenant_id)
                                     .Int("sequence", static_cast<int64_t>(e.sequence))
                                     .Int("timestamp_ms", e.timestamp_ms)
                                     .Raw("payload", e.payload)
                                     .Build())
                   .Build();
        line.push_back('\n');
        std::fwrite(line.data(), 1, line.size(), out);
        ++n;
      },
      [&](const std::string& what) {
        std::fprintf(stderr, "runlog export: %s\n", what.c_str());
        damaged = true;
      });
  if (out != stdout && std::fclose(out) != 0) rc = 2;
  std::fprintf(stderr, "runlog export: %llu events\n", static_cast<unsigned long long>(n));
  return rc != 0 ? rc : damaged ? 1 : 0;
}

int RunAudit(const events::LogOptions& options, bool json) {
  const auto start = std::chrono::steady_clock::now();
  events::Auditor auditor;
  int rc = ForEachRecord(
      "audit", options, [&](const events::LogRecord& r) { auditor.Add(r); },
      [&](const std::string& what) { auditor.Unreadable("unreadable record: " + what); });
  if (rc != 0) return rc;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const events::AuditReport& report = auditor.report();
  for (const std::string& p : report.problems) std::printf("MISMATCH %s\n", p.c_str());
  const uint64_t all = report.events + report.other_events;
  if (json) {
    std::printf(
        "{\"events\":%llu,\"task_events\":%llu,\"tasks\":%llu,\"steps\":%llu,\"open_tasks\":%zu,"
        "\"problems\":%zu,\"seconds\":%.3f,\"events_per_s\":%.0f}\n",
        static_cast<unsigned long long>(all), static_cast<unsigned long long>(report.events),
        static_cast<unsigned long long>(report.tasks),
        static_cast<unsigned long long>(report.steps), auditor.open_tasks(), report.problems.size(),
        seconds, all / std::max(seconds, 1e-9));
  } else {
    std::printf(
        "audited %llu events (%llu of tasks): %llu finished tasks, %llu steps, %zu tasks still "
        "open; %zu problems; %.3f s (%.0f events/s)%s\n",
        static_cast<unsigned long long>(all), static_cast<unsigned long long>(report.events),
        static_cast<unsigned long long>(report.tasks),
        static_cast<unsigned long long>(report.steps), auditor.open_tasks(), report.problems.size(),
        seconds, all / std::max(seconds, 1e-9), report.problems.empty() ? ": OK" : ": FAILED");
  }
  return report.problems.empty() ? 0 : 1;
}

void AddLogOptions(CLI::App* sub, events::LogOptions* o) {
  sub->add_option("--data", o->data_dir, "data directory")->capture_default_str();
  sub->add_option("--log", o->uri, "embedded, or kafka://HOST:PORT[,HOST:PORT]")
      ->capture_default_str();
  sub->add_option("--partitions", o->partitions, "log partitions")->capture_default_str();
  sub->add_option("--kafka-topic", o->kafka_topic, "Kafka topic of the log")->capture_default_str();
}

}  // namespace

Runner AddExport(CLI::App& app) {
  auto o = std::make_shared<events::LogOptions>();
  auto out = std::make_shared<std::string>("-");
  auto* sub = app.add_subcommand("export", "write the whole log as JSON lines");
  AddLogOptions(sub, o.get());
  sub->add_option("--out", *out, "file to write (- for stdout)")->capture_default_str();
  return [o, out] { return RunExport(*o, *out); };
}

Runner AddAudit(CLI::App& app) {
  auto o = std::make_shared<events::LogOptions>();
  auto json = std::make_shared<bool>(false);
  auto* sub = app.add_subcommand(
      "audit", "replay the log, check every transition, recompute every step and task hash");
  AddLogOptions(sub, o.get());
  sub->add_flag("--json", *json, "print the summary as JSON");
  return [o, json] { return RunAudit(*o, *json); };
}

}  // namespace runlog::cli
