// `runlog export` and `runlog audit`: read the whole log as stored, in offset
// order per partition. export writes it as JSON lines (docs/hashing.md has
// the format, tests/audit/check_hashes.py reads it); audit checks every
// record's checksum and chain link, each partition's tree against the signed
// checkpoints, every transition and every hash (events/audit.h), reads on
// past damage, and exits 1 with the count of problems.

#include "events/audit.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include "events/canonical_json.h"
#include "events/codec.h"
#include "events/event_log.h"
#include "events/partitioner.h"
#include "events/payload.h"
#include "events/receipt.h"
#include "events/sha256.h"
#include "events/types.h"
#include "infra/base/json.h"
#include "infra/cli/commands.h"
#include "infra/cli/common.h"

namespace runlog::cli {
namespace {

using Clock = std::chrono::steady_clock;

// What audit and export read: every record of a log or of an export, as stored.
struct RecordSource {
  uint32_t partitions = 0;
  bool dense_offsets = true;
  // Calls `each` for every record of `partition` in offset order, and
  // `unreadable` for storage that cannot be read (it reads on after it).
  std::function<void(
      uint32_t partition, const std::function<void(uint64_t offset, std::string_view bytes)>& each,
      const std::function<void(uint64_t offset, const std::string& what)>& unreadable)>
      read;
};

// Every record of `partition` of `log`, as stored.
void ReadPartition(events::EventLog& log, uint32_t p,
                   const std::function<void(uint64_t, std::string_view)>& each,
                   const std::function<void(uint64_t, const std::string&)>& unreadable) {
  auto end = log.EndOffset(p);
  if (!end) return unreadable(0, end.error().message);
  for (uint64_t offset = 0; offset < *end;) {
    auto records = log.ReadRaw(p, offset, 8192);
    if (!records) {
      // Damage there: name it, and read on from the next offset.
      unreadable(offset, records.error().message);
      ++offset;
      continue;
    }
    if (records->empty()) {
      if (log.OffsetsContiguous()) unreadable(offset, "the partition ended early");
      break;  // Kafka: the rest is markers
    }
    for (const auto& r : *records) each(r.offset, r.bytes);
    offset = records->back().offset + 1;
  }
}

// The record an export line stands for, rebuilt byte for byte from its
// fields (docs/hashing.md, "The export"). Sets partition and offset.
Result<std::string> RecordOfLine(std::string_view line, uint32_t* partition, uint64_t* offset,
                                 std::string* type) {
  json::Document doc;
  if (!json::Parse(line, &doc) || !doc.IsObject()) {
    return Fail(codes::kInvalidArgument, "not a JSON object");
  }
  const json::Value* p = json::Find(doc, "partition");
  const json::Value* o = json::Find(doc, "offset");
  const json::Value* ev = json::Find(doc, "event");
  if (p == nullptr || !p->IsUint() || o == nullptr || !o->IsUint64() || ev == nullptr ||
      !ev->IsObject()) {
    return Fail(codes::kInvalidArgument, "no partition, offset or event");
  }
  *partition = p->GetUint();
  *offset = o->GetUint64();
  events::Event e;
  e.type = json::String(*ev, "type");
  e.schema_version = static_cast<uint32_t>(json::Int(*ev, "schema_version"));
  e.event_id = json::String(*ev, "event_id");
  e.aggregate_id = json::String(*ev, "aggregate_id");
  e.tenant_id = json::String(*ev, "tenant_id");
  e.sequence = static_cast<uint64_t>(json::Int(*ev, "sequence"));
  e.timestamp_ms = json::Int(*ev, "timestamp_ms");
  *type = e.type;
  if (const json::Value* payload = json::Find(*ev, "payload");
      payload != nullptr && !payload->IsNull()) {
    if (auto s = events::WriteCanonical(*payload, &e.payload); !s) {
      return std::unexpected(s.error());
    }
  }
  std::string prev;
  if (const std::string hex = json::String(doc, "prev");
      !hex.empty() && (!events::UnHex(hex, &prev) || prev.size() != 32)) {
    return Fail(codes::kInvalidArgument, "prev is not 64 hex digits");
  }
  const std::string form = json::String(doc, "form", "binary");
  if (form != "binary" && form != "json") {
    return Fail(codes::kInvalidArgument, "form is neither binary nor json");
  }
  return events::EncodeRecord(e, form == "json", prev);
}

// An export as a source: lines are in partition order (docs/hashing.md).
Result<RecordSource> ExportSource(const std::string& path, uint32_t partitions) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(codes::kInvalidArgument, "cannot read " + path);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  struct Line {
    uint64_t offset;
    std::string bytes;  // the record, or why the line is unreadable
    bool readable;
  };
  auto by_partition = std::make_shared<std::vector<std::vector<Line>>>(partitions);
  // Split on \n only: strings carry raw U+2028 and U+0085.
  for (size_t at = 0, number = 1; at < all.size(); ++number) {
    size_t nl = all.find('\n', at);
    if (nl == std::string::npos) nl = all.size();
    uint32_t p = 0;
    uint64_t offset = 0;
    std::string type;
    auto bytes = RecordOfLine(std::string_view(all).substr(at, nl - at), &p, &offset, &type);
    at = nl + 1;
    if (p >= partitions) {
      return Fail(codes::kInvalidArgument, "export line " + std::to_string(number) +
                                               " names partition " + std::to_string(p) +
                                               ", past --partitions " + std::to_string(partitions));
    }
    // A line whose place is unknown is reported at partition 0 offset 0.
    (*by_partition)[p].push_back(
        bytes ? Line{offset, std::move(*bytes), true}
              : Line{offset, "export line " + std::to_string(number) + ": " + bytes.error().message,
                     false});
  }
  RecordSource src;
  src.partitions = partitions;
  src.read = [by_partition](uint32_t partition, const auto& each, const auto& unreadable) {
    for (const Line& line : (*by_partition)[partition]) {
      if (line.readable) {
        each(line.offset, line.bytes);
      } else {
        unreadable(line.offset, line.bytes);
      }
    }
  };
  return src;
}

// Reads a verifier key given as the string itself or a file holding it.
Result<events::NoteKey> LoadKey(const std::string& arg) {
  std::string text = arg;
  if (std::ifstream f(arg); f) {
    std::stringstream s;
    s << f.rdbuf();
    text = s.str();
  }
  return events::NoteKey::FromVerifierString(text);
}

struct AuditArgs {
  events::LogOptions log;
  std::string export_path;
  std::string key;
  std::vector<std::string> checkpoints;
  bool json = false;
};

int RunExport(const events::LogOptions& options, const std::string& out_path) {
  auto log = events::OpenEventLog(options);
  if (!log) {
    std::fprintf(stderr, "runlog export: %s (is runlogd still running on this data?)\n",
                 log.error().message.c_str());
    return 2;
  }
  std::FILE* out = out_path == "-" ? stdout : std::fopen(out_path.c_str(), "w");
  if (out == nullptr) {
    std::fprintf(stderr, "runlog export: cannot write %s\n", out_path.c_str());
    return 2;
  }
  uint64_t n = 0, total = 0;
  for (uint32_t p = 0; p < (*log)->partition_count(); ++p) {
    if (auto end = (*log)->EndOffset(p)) total += *end;
  }
  // Not over lines going to the same terminal.
  std::optional<Progress> progress;
  if (out != stdout || ::isatty(STDOUT_FILENO) != 1) progress.emplace("runlog export");
  const auto fraction = [&] { return total > 0 ? std::min(1.0, double(n) / total) : -1.0; };
  bool damaged = false;
  std::string line;
  for (uint32_t p = 0; p < (*log)->partition_count(); ++p) {
    ReadPartition(
        **log, p,
        [&](uint64_t offset, std::string_view bytes) {
          if ((n & 1023) == 0 && progress && progress->Due()) {
            progress->Show(fraction(), Grouped(n) + "/" + Grouped(total) + " records");
          }
          auto r = events::DecodeRecord(p, offset, bytes);
          if (!r) {
            std::fprintf(stderr, "runlog export: partition %u offset %llu: %s\n", p,
                         static_cast<unsigned long long>(offset), r.error().message.c_str());
            damaged = true;
            return;
          }
          const events::Event& e = r->event;
          events::Payload row;
          row.Int("partition", p).Int("offset", static_cast<int64_t>(offset));
          row.Str("form", bytes.starts_with("{") ? "json" : "binary");
          if (!r->prev.empty()) row.Str("prev", events::HexOf(r->prev));
          line = row.Raw("event", events::Payload()
                                      .Str("type", e.type)
                                      .Int("schema_version", e.schema_version)
                                      .Str("event_id", e.event_id)
                                      .Str("aggregate_id", e.aggregate_id)
                                      .Str("tenant_id", e.tenant_id)
                                      .Int("sequence", static_cast<int64_t>(e.sequence))
                                      .Int("timestamp_ms", e.timestamp_ms)
                                      .Raw("payload", e.payload.empty() ? "null" : e.payload)
                                      .Build())
                     .Build();
          line.push_back('\n');
          std::fwrite(line.data(), 1, line.size(), out);
          ++n;
        },
        [&](uint64_t offset, const std::string& what) {
          std::fprintf(stderr, "runlog export: partition %u offset %llu: %s\n", p,
                       static_cast<unsigned long long>(offset), what.c_str());
          damaged = true;
        });
  }
  if (progress) progress->Finish(1.0, Grouped(n) + " records");
  int rc = 0;
  if (out != stdout && std::fclose(out) != 0) rc = 2;
  std::fprintf(stderr, "runlog export: %llu events\n", static_cast<unsigned long long>(n));
  return rc != 0 ? rc : damaged ? 1 : 0;
}

int RunAudit(const AuditArgs& args) {
  const auto start = Clock::now();
  std::unique_ptr<events::EventLog> log;
  RecordSource src;
  if (!args.export_path.empty()) {
    auto s = ExportSource(args.export_path, args.log.partitions);
    if (!s) {
      std::fprintf(stderr, "runlog audit: %s\n", s.error().message.c_str());
      return 2;
    }
    src = std::move(*s);
  } else {
    auto opened = events::OpenEventLog(args.log);
    if (!opened) {
      std::fprintf(stderr, "runlog audit: %s (is runlogd still running on this data?)\n",
                   opened.error().message.c_str());
      return 2;
    }
    log = std::move(*opened);
    src.partitions = log->partition_count();
    src.dense_offsets = log->OffsetsContiguous();
    src.read = [&log](uint32_t p, const auto& each, const auto& unreadable) {
      ReadPartition(*log, p, each, unreadable);
    };
  }
  events::AuditOptions options;
  options.dense_offsets = src.dense_offsets;
  std::string key_arg = args.key;
  if (key_arg.empty() && args.log.uri == "embedded") {
    key_arg = args.log.data_dir + "/signing.pub";  // runlogd's, if it signed
    if (!std::ifstream(key_arg)) key_arg.clear();
  }
  if (!key_arg.empty()) {
    auto key = LoadKey(key_arg);
    if (!key) {
      std::fprintf(stderr, "runlog audit: --key: %s\n", key.error().message.c_str());
      return 2;
    }
    options.key = std::move(*key);
  }
  events::Auditor auditor(src.partitions, options);
  // First the checkpoints, from their partition, and those held elsewhere.
  for (const std::string& path : args.checkpoints) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    if (!f) {
      std::fprintf(stderr, "runlog audit: cannot read checkpoint %s\n", path.c_str());
      return 2;
    }
    auditor.AddCheckpoint(s.str(), "the checkpoint in " + path);
  }
  const uint32_t cp = events::PartitionFor(events::kCheckpointAggregate, src.partitions);
  src.read(
      cp,
      [&](uint64_t offset, std::string_view bytes) {
        auto r = events::DecodeRecord(cp, offset, bytes);
        if (!r || r->event.type != "checkpoint.signed") return;
        auto body = events::Decode(r->event);
        if (const auto* c = body ? std::get_if<events::CheckpointSigned>(&*body) : nullptr) {
          auditor.AddCheckpoint(c->note, "the checkpoint at partition " + std::to_string(cp) +
                                             " offset " + std::to_string(offset));
        }
      },
      [](uint64_t, const std::string&) {});
  // Progress against the log's end offsets (an export's size is not known in records).
  uint64_t total = 0;
  for (uint32_t p = 0; log != nullptr && p < src.partitions; ++p) {
    if (auto end = log->EndOffset(p)) total += *end;
  }
  Progress progress("runlog audit");
  const auto status = [&](uint32_t p) {
    const uint64_t n = auditor.report().records;
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    return Grouped(n) + (total > 0 ? "/" + Grouped(total) : "") + " records, " +
           Grouped(static_cast<uint64_t>(n / std::max(s, 1e-9))) + "/s, partition " +
           std::to_string(p + 1) + "/" + std::to_string(src.partitions);
  };
  const auto fraction = [&] {
    return total > 0 ? static_cast<double>(auditor.report().records) / total : -1.0;
  };
  for (uint32_t p = 0; p < src.partitions; ++p) {
    src.read(
        p,
        [&](uint64_t offset, std::string_view bytes) {
          auditor.Record(p, offset, bytes);
          if ((auditor.report().records & 1023) == 0 && progress.Due()) {
            progress.Show(fraction(), status(p));
          }
        },
        [&](uint64_t offset, const std::string& what) { auditor.Unreadable(p, offset, what); });
    auditor.EndPartition(p);
  }
  progress.Finish(total > 0 ? 1.0 : -1.0, status(src.partitions - 1));
  auditor.Finish();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const events::AuditReport& r = auditor.report();
  for (const std::string& p : r.problems) std::printf("MISMATCH %s\n", p.c_str());
  for (const std::string& n : r.notes) std::fprintf(stderr, "runlog audit: note: %s\n", n.c_str());
  const auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  if (args.json) {
    std::printf(
        "{\"events\":%llu,\"task_events\":%llu,\"tasks\":%llu,\"steps\":%llu,\"open_tasks\":%zu,"
        "\"chained\":%llu,\"unchained\":%llu,\"checkpoints\":%llu,\"roots_checked\":%llu,"
        "\"results\":%llu,\"replays\":%llu,\"problems\":%zu,\"seconds\":%.3f,"
        "\"events_per_s\":%.0f}\n",
        u(r.records), u(r.events), u(r.tasks), u(r.steps), auditor.open_tasks(), u(r.chained),
        u(r.unchained), u(r.checkpoints), u(r.roots_checked), u(r.results), u(r.replays),
        r.problems.size(), seconds, r.records / std::max(seconds, 1e-9));
  } else {
    std::printf(
        "audited %llu records (%llu of tasks): %llu finished tasks, %llu steps, %zu tasks still "
        "open; %llu chain links, %llu signed checkpoints (%llu roots); %zu problems; %.3f s "
        "(%.0f records/s)%s\n",
        u(r.records), u(r.events), u(r.tasks), u(r.steps), auditor.open_tasks(), u(r.chained),
        u(r.checkpoints), u(r.roots_checked), r.problems.size(), seconds,
        r.records / std::max(seconds, 1e-9), r.problems.empty() ? ": OK" : ": FAILED");
  }
  return r.problems.empty() ? 0 : 1;
}

int RunVerifyReceipt(const std::string& path, const std::string& key_arg) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "runlog verify-receipt: cannot read %s\n", path.c_str());
    return 2;
  }
  std::string receipt((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto key = LoadKey(key_arg);
  if (!key) {
    std::fprintf(stderr, "runlog verify-receipt: --key: %s\n", key.error().message.c_str());
    return 2;
  }
  auto r = events::VerifyReceipt(receipt, *key);
  if (!r) {
    std::printf("REFUSED %s: %s\n", path.c_str(), r.error().message.c_str());
    return 1;
  }
  const events::Event& last = r->records.back().event;
  std::printf(
      "OK task %s: its %zu records (sequence 1 to %zu, the last %s) are in partition %u of the log "
      "%s signed at %llu records (%llu in the partition)\n",
      r->task_id.c_str(), r->records.size(), r->records.size(), last.type.c_str(), r->partition,
      r->checkpoint.origin.c_str(), static_cast<unsigned long long>(r->checkpoint.total()),
      static_cast<unsigned long long>(r->tree_size));
  return 0;
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

Runner AddVerifyReceipt(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto key = std::make_shared<std::string>();
  auto* sub = app.add_subcommand("verify-receipt",
                                 "check a task's receipt offline against the log's verifier key");
  sub->add_option("file", *path, "the receipt (GET /v1/tasks/{id}/receipt)")->required();
  sub->add_option("--key", *key,
                  "the verifier key (GET /v1/checkpoints/key: verifier_key), or a file holding it")
      ->required();
  return [path, key] { return RunVerifyReceipt(*path, *key); };
}

Runner AddAudit(CLI::App& app) {
  auto a = std::make_shared<AuditArgs>();
  auto* sub = app.add_subcommand(
      "audit",
      "check every record, the hash chain, the signed checkpoints, every transition and hash");
  AddLogOptions(sub, &a->log);
  sub->add_option("--export", a->export_path, "audit an export (runlog export) instead of a log");
  sub->add_option("--key", a->key,
                  "the verifier key checkpoints must be signed by (or a file holding it); "
                  "default: DATA/signing.pub");
  sub->add_option("--checkpoint", a->checkpoints,
                  "a signed checkpoint held elsewhere that the log must still match (repeatable)");
  sub->add_flag("--json", a->json, "print the summary as JSON");
  return [a] { return RunAudit(*a); };
}

}  // namespace runlog::cli
