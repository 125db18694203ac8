#include "projections/views.h"

#include <rocksdb/slice_transform.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <optional>
#include <unordered_map>

#include "events/bytes.h"
#include "events/local_store.h"
#include "events/merkle.h"
#include "events/payload.h"
#include "infra/base/clock.h"
#include "infra/base/json.h"

namespace runlog::projections {
namespace {

using events::Task;

// The layout of the keys and values below; another value means rebuild.
constexpr char kFormatKey[] = "v";
// 5: tasks without their default fields; 6: usage rows; 7: cost; 8: artifacts;
// 9: Merkle trees and checkpoints; 10: tree levels 1 to 3 no longer stored
constexpr char kFormat[] = "10";

std::string OffsetKey(uint32_t partition) { return "o" + std::to_string(partition); }
std::string CheckpointKey(uint64_t total) {
  std::string key = "C";
  events::PutBigEndian(key, total, 8);
  return key;
}
std::string TreeSizeKey(uint32_t partition) {
  std::string key = "N";
  events::PutBigEndian(key, partition, 4);
  return key;
}
// Levels 1 to kUnstoredLevels of a partition's tree are not stored: each
// is hashed from at most 2^kUnstoredLevels leaves when asked for. That saves
// seven in eight of the tree's inner-node writes (about one view write per
// record) for a few leaf reads per proof.
constexpr int kUnstoredLevels = 3;
std::string TreeNodeKey(uint32_t partition, int level, uint64_t index) {
  std::string key = "T";
  events::PutBigEndian(key, partition, 4);
  key.push_back(static_cast<char>(level));
  events::PutBigEndian(key, index, 8);
  return key;
}
std::string TaskKey(const std::string& id) { return "t" + id; }
// An artifact (or output) of a tenant: "a" tenant NUL artifact id.
std::string ArtifactKey(const std::string& tenant, const std::string& id) {
  std::string key = "a" + tenant;
  key.push_back('\0');
  return key + id;
}

// A "t" value: the trace positions' length (u32 LE), the positions, then the
// task as JSON.
// A webhook delivery: "h" tenant NUL webhook id NUL delivery id.
std::string DeliveryKey(const std::string& tenant, const std::string& webhook,
                        const std::string& delivery) {
  return "h" + tenant + '\0' + webhook + '\0' + delivery;
}
// A trigger's fire: "f" tenant NUL trigger id NUL fire id; its latest
// scheduled occasion: "F" tenant NUL trigger id.
std::string FireKey(const std::string& tenant, const std::string& trigger,
                    const std::string& fire) {
  return "f" + tenant + '\0' + trigger + '\0' + fire;
}
std::string LastFireKey(const std::string& tenant, const std::string& trigger) {
  return "F" + tenant + '\0' + trigger;
}

// A delivery's row after one more attempt (`row` empty for the first): the
// last kMaxAttemptsShown attempts, newest last.
constexpr size_t kMaxAttemptsShown = 20;
std::string DeliveryJson(const std::string& row, const events::WebhookAttempted& a, int64_t at_ms) {
  json::Document old;
  std::vector<std::string> attempts;
  int64_t count = 0;
  if (!row.empty() && json::Parse(row, &old) && old.IsObject()) {
    count = json::Int(old, "attempt_count");
    if (const json::Value* list = json::FindSet(old, "attempts"); list && list->IsArray()) {
      for (const json::Value& item : list->GetArray()) {
        attempts.push_back(events::CanonicalText(item));
      }
    }
  }
  events::Payload attempt;
  attempt.Int("attempt", a.attempt)
      .Int("status_code", a.status_code)
      .Int("latency_ms", a.latency_ms)
      .Str("outcome", a.outcome)
      .Int("at_ms", at_ms);
  if (!a.error.empty()) attempt.Str("error", a.error);
  attempts.push_back(attempt.Build());
  if (attempts.size() > kMaxAttemptsShown) {
    attempts.erase(attempts.begin(), attempts.end() - kMaxAttemptsShown);
  }
  std::string list = "[";
  for (const std::string& item : attempts) {
    if (list.size() > 1) list += ',';
    list += item;
  }
  list += ']';
  events::Payload out;
  out.Str("delivery_id", a.delivery_id)
      .Str("webhook_id", a.webhook_id)
      .Str("event", a.event)
      .Str("status", a.outcome)
      .Int("attempt_count", count + 1)
      .Int("source_partition", a.source_partition)
      .Int("source_offset", a.source_offset)
      .Int("updated_at_ms", at_ms)
      .Raw("attempts", list);
  if (a.next_attempt_at_ms != 0) out.Int("next_attempt_at_ms", a.next_attempt_at_ms);
  return out.Build();
}

std::string TaskValue(const std::string& positions, const Task& task) {
  std::string out;
  events::PutLittleEndian(out, positions.size(), 4);
  out += positions;
  out += events::TaskToJson(task);
  return out;
}

// Splits a "t" value into positions and task JSON; false if it is damaged.
bool SplitTaskValue(std::string_view value, std::string_view* positions, std::string_view* json) {
  if (value.size() < 4) return false;
  const uint64_t n = events::GetLittleEndian(value.substr(0, 4));
  if (n < 4 || (n - 4) % 8 != 0 || value.size() < 4 + n) return false;
  *positions = value.substr(4, n);
  *json = value.substr(4 + n);
  return true;
}

// Index keys of one listing share everything up to their ordering; inserting
// next to the last key of the same prefix lets RocksDB skip most of the
// memtable search (memtable_insert_with_hint_prefix_extractor). The offset
// keys are their own prefix: the same key is rewritten on every batch.
class InsertHintPrefix final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "runlog.InsertHintPrefix"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    if (key[0] == 'o') return key;
    if (key[0] == 't') return rocksdb::Slice(key.data(), 1);
    std::string_view k(key.data(), key.size());
    const size_t id_start = k.rfind('\0');  // "<ordering>\0<task id>"
    const size_t order_start = k.rfind('\0', id_start - 1);
    return rocksdb::Slice(key.data(), order_start + 1);
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    if (key.empty()) return false;
    if (key[0] == 'o' || key[0] == 't') return true;
    if (key[0] != 'i') return false;
    std::string_view k(key.data(), key.size());
    const size_t id_start = k.rfind('\0');
    return id_start != std::string_view::npos && id_start > 0 &&
           k.rfind('\0', id_start - 1) != std::string_view::npos;
  }
};

// A usage row's key: "u" tenant NUL day NUL partition (4 bytes, big-endian)
// type NUL agent. Each partition's projector writes only its own rows, so
// two never race on one; readers sum over partitions.
std::string UsageKey(const std::string& tenant, const std::string& day, uint32_t partition,
                     const std::string& type, const std::string& agent) {
  std::string key = "u" + tenant + '\0' + day + '\0';
  events::PutBigEndian(key, partition, 4);
  return key + type + '\0' + agent;
}

// A usage row's value: the counters, 8 bytes LE each, in UsageCounters' order.
std::string UsageValue(const UsageCounters& c) {
  std::string out;
  for (int64_t v : c.Fields()) events::PutLittleEndian(out, static_cast<uint64_t>(v), 8);
  return out;
}
UsageCounters ParseUsage(std::string_view value) {
  UsageCounters c;
  auto fields = c.MutableFields();
  for (size_t i = 0; i < fields.size() && 8 * (i + 1) <= value.size(); ++i) {
    *fields[i] = static_cast<int64_t>(events::GetLittleEndian(value.substr(8 * i, 8)));
  }
  return c;
}

// What one event adds to its task's usage row (the task as after the event).
void CountUsage(const events::EventBody& body, const Task& task, UsageCounters& c) {
  auto count_step = [&c](const events::StepRecord& step) {
    ++c.steps;
    c.tokens += step.usage.tokens;
    c.input_tokens += step.usage.input_tokens;
    c.output_tokens += step.usage.output_tokens;
    c.sandbox_cpu_ms += step.usage.sandbox_cpu_ms;
    c.cost_nanos += step.usage.cost_nanos;
    c.step_ms += step.duration_ms;
    if (step.sandboxed) c.sandbox_ms += step.duration_ms;
  };
  if (std::holds_alternative<events::TaskCreated>(body)) {
    ++c.tasks_created;
  } else if (const auto* finished = std::get_if<events::StepFinished>(&body)) {
    count_step(task.steps[finished->step_index - 1]);
  } else if (std::holds_alternative<events::TaskSucceeded>(body) ||
             std::holds_alternative<events::TaskFailed>(body)) {
    ++(std::holds_alternative<events::TaskSucceeded>(body) ? c.tasks_succeeded : c.tasks_failed);
    // A worker-run task has no step events: its one step is implied by its
    // claim and its end (docs/hashing.md), added to the task by this event.
    if (!task.executor && task.steps.size() == 1) count_step(task.steps.front());
  } else if (std::holds_alternative<events::TaskCancelled>(body)) {
    ++c.tasks_cancelled;
  }
}

std::string ArtifactJson(const Artifact& a) {
  return events::Payload()
      .Str("artifact_id", a.id)
      .Str("task_id", a.task_id)
      .Str("type", a.type)
      .Str("digest", a.digest)
      .Str("content_type", a.content_type)
      .Int("size", a.size)
      .Int("created_at_ms", a.created_at_ms)
      .Str("approval_status", a.approval_status)
      .Int("approval_expires_at_ms", a.approval_expires_at_ms)
      .Str("decided_by", a.decided_by)
      .Str("comment", a.comment)
      .Int("decided_at_ms", a.decided_at_ms)
      .Build();
}

Artifact ParseArtifact(std::string_view value) {
  json::ScratchDocument scratch;
  Artifact a;
  if (!json::Parse(value, &scratch.doc())) return a;
  const json::Value& d = scratch.doc();
  a.id = json::String(d, "artifact_id");
  a.task_id = json::String(d, "task_id");
  a.type = json::String(d, "type");
  a.digest = json::String(d, "digest");
  a.content_type = json::String(d, "content_type");
  a.size = json::Int(d, "size");
  a.created_at_ms = json::Int(d, "created_at_ms");
  a.approval_status = json::String(d, "approval_status");
  a.approval_expires_at_ms = json::Int(d, "approval_expires_at_ms");
  a.decided_by = json::String(d, "decided_by");
  a.comment = json::String(d, "comment");
  a.decided_at_ms = json::Int(d, "decided_at_ms");
  return a;
}

// Newest first: the inverted creation time in fixed-width hex, then the id.
// The index orders newest first: by this, then by id.
std::string TimeOrder(int64_t created_at_ms) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx",
                static_cast<unsigned long long>(INT64_MAX - created_at_ms));
  return buf;
}

std::string Ordering(const Task& t) { return TimeOrder(t.created_at_ms) + '\0' + t.id; }

std::string IndexPrefix(const std::string& tenant, const std::string& status,
                        const std::string& type) {
  std::string key = "i" + tenant + '\0';
  if (status.empty() && type.empty()) return key + "a" + '\0';
  if (type.empty()) return key + "s" + '\0' + status + '\0';
  if (status.empty()) return key + "y" + '\0' + type + '\0';
  return key + "x" + '\0' + status + '\0' + type + '\0';
}

std::vector<std::string> IndexKeys(const Task& t) {
  const std::string status(events::StatusName(t.status));
  const std::string order = Ordering(t);
  return {IndexPrefix(t.tenant_id, "", "") + order, IndexPrefix(t.tenant_id, status, "") + order,
          IndexPrefix(t.tenant_id, "", t.type) + order,
          IndexPrefix(t.tenant_id, status, t.type) + order};
}

std::unexpected<Error> Storage(const rocksdb::Status& s) {
  return Fail(codes::kUnavailable, "views: " + s.ToString());
}

}  // namespace

Result<std::unique_ptr<Views>> Views::Open(const std::string& data_dir) {
  const std::string dir = (std::filesystem::path(data_dir) / "views").string();
  auto opened = events::OpenLocalStore(dir, [](rocksdb::Options& options) {
    options.memtable_insert_with_hint_prefix_extractor = std::make_shared<InsertHintPrefix>();
    options.write_buffer_size = 64 << 20;  // every event writes here: fewer, larger flushes
  });
  if (!opened) return std::unexpected(opened.error());
  std::unique_ptr<rocksdb::DB> db = std::move(*opened);
  rocksdb::Status s;
  // Views written in another layout (an older runlogd) are dropped and rebuilt
  // from the log by the projector: they hold nothing the log does not.
  std::string format;
  s = db->Get(rocksdb::ReadOptions(), kFormatKey, &format);
  if (!s.ok() && !s.IsNotFound()) return Storage(s);
  if (format != kFormat) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    it->SeekToFirst();
    const bool empty = !it->Valid();
    it.reset();
    if (!empty) {
      db.reset();
      if (auto d = Destroy(data_dir); !d) return std::unexpected(d.error());
      std::fprintf(stderr, "runlog: views at %s had another layout; rebuilding them from the log\n",
                   dir.c_str());
      return Open(data_dir);
    }
    rocksdb::WriteOptions sync;
    sync.sync = true;
    s = db->Put(sync, kFormatKey, kFormat);
    if (!s.ok()) return Storage(s);
  }
  return std::unique_ptr<Views>(new Views(std::move(db)));
}

Status Views::Destroy(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::remove_all(std::filesystem::path(data_dir) / "views", ec);
  if (ec) return Fail(codes::kUnavailable, "cannot delete views: " + ec.message());
  return {};
}

Result<uint64_t> Views::NextOffset(uint32_t partition) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), OffsetKey(partition), &value);
  if (s.IsNotFound()) return 0;
  if (!s.ok()) return Storage(s);
  return std::stoull(value);
}

Status Views::Apply(uint32_t partition, const std::vector<events::LogRecord>& records,
                    const Observer& observer) {
  if (records.empty()) return {};
  std::unordered_map<std::string, Cached>* cache;
  {
    std::lock_guard lock(cache_mu_);
    cache = &cache_[partition];
  }
  rocksdb::WriteBatch batch;
  // Tasks changed in this batch, with their index keys before it: only the
  // index keys that differ at the end of the batch are written.
  struct Touched {
    Cached state;
    std::vector<std::string> index_before;
  };
  std::unordered_map<std::string, Touched> touched;
  std::map<std::string, UsageCounters> usage;  // what this batch adds, by row
  struct Write {
    std::string key;
    std::optional<std::string> value;  // none: delete
  };
  std::vector<Write> writes;
  // A row as this batch left it, else as stored; "" if none.
  auto current = [&](const std::string& key) -> Result<std::string> {
    for (auto w = writes.rbegin(); w != writes.rend(); ++w) {
      if (w->key == key) return w->value.value_or("");
    }
    std::string stored;
    rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), key, &stored);
    if (!got.ok() && !got.IsNotFound()) return Storage(got);
    return got.ok() ? stored : "";
  };
  for (const events::LogRecord& r : records) {
    if (!events::IsTaskEvent(r.event)) {
      if (r.event.type == "checkpoint.signed") {
        // Kept by the size it signed, for /v1/checkpoints (its signature is
        // checked by whoever reads it; a note that does not parse is skipped).
        auto body = events::Decode(r.event);
        const auto* c = body ? std::get_if<events::CheckpointSigned>(&*body) : nullptr;
        if (c != nullptr) {
          if (auto parsed =
                  events::ParseCheckpointText(c->note.substr(0, c->note.find("\n\n") + 1))) {
            writes.push_back({CheckpointKey(parsed->total()), c->note});
          }
        }
        continue;
      }
      if (r.event.type == "webhook.attempted" || r.event.type == "trigger.fired") {
        auto body = events::Decode(r.event);
        if (!body) return Fail(codes::kLogCorrupt, body.error().message);
        if (const auto* a = std::get_if<events::WebhookAttempted>(&*body)) {
          const std::string key = DeliveryKey(r.event.tenant_id, a->webhook_id, a->delivery_id);
          auto row = current(key);
          if (!row) return std::unexpected(row.error());
          writes.push_back({key, DeliveryJson(*row, *a, r.event.timestamp_ms)});
        } else if (const auto* f = std::get_if<events::TriggerFired>(&*body)) {
          writes.push_back({FireKey(r.event.tenant_id, f->trigger_id, f->fire_id),
                            events::Payload()
                                .Str("fire_id", f->fire_id)
                                .Str("trigger_id", f->trigger_id)
                                .Str("occasion", f->occasion)
                                .Str("task_id", f->task_id)
                                .Int("fired_at_ms", r.event.timestamp_ms)
                                .Build()});
          // A schedule's occasion is its time in ms: the latest is where it resumes.
          int64_t at = 0;
          if (std::from_chars(f->occasion.data(), f->occasion.data() + f->occasion.size(), at).ec ==
              std::errc()) {
            const std::string key = LastFireKey(r.event.tenant_id, f->trigger_id);
            auto last = current(key);
            if (!last) return std::unexpected(last.error());
            int64_t before = 0;
            std::from_chars(last->data(), last->data() + last->size(), before);
            if (at > before) writes.push_back({key, std::to_string(at)});
          }
        }
        continue;
      }
      // Outputs, approvals and deletions of artifacts; other records are not views'.
      if (!r.event.type.starts_with("output.") && !r.event.type.starts_with("artifact.")) continue;
      auto body = events::Decode(r.event);
      if (!body) return Fail(codes::kLogCorrupt, body.error().message);
      // The artifact: an output's own id, else named by the event (whose
      // aggregate is the artifact's task).
      std::string artifact_id = r.event.aggregate_id;
      if (const auto* d = std::get_if<events::ArtifactApprovalDecided>(&*body)) {
        artifact_id = d->artifact_id;
      } else if (const auto* gone = std::get_if<events::ArtifactDeleted>(&*body)) {
        artifact_id = gone->artifact_id;
      }
      const std::string key = ArtifactKey(r.event.tenant_id, artifact_id);
      if (const auto* out = std::get_if<events::OutputCreated>(&*body)) {
        Artifact row;
        row.id = r.event.aggregate_id;
        row.type = "output";
        row.digest = out->digest;
        row.content_type = out->content_type;
        row.size = out->size;
        row.created_at_ms = r.event.timestamp_ms;
        writes.push_back({key, ArtifactJson(row)});
      } else if (const auto* d = std::get_if<events::ArtifactApprovalDecided>(&*body)) {
        // The first decision on a pending artifact counts; its row may be in this batch.
        auto row = current(key);
        if (!row) return std::unexpected(row.error());
        if (row->empty()) continue;  // deleted (or discarded) before the decision
        Artifact a = ParseArtifact(*row);
        if (a.approval_status != "pending") continue;
        a.approval_status = d->decision;
        a.decided_by = d->decided_by;
        a.comment = d->comment;
        a.decided_at_ms = r.event.timestamp_ms;
        writes.push_back({key, ArtifactJson(a)});
      } else if (std::holds_alternative<events::ArtifactDeleted>(*body)) {
        writes.push_back({key, std::nullopt});
      }
      continue;
    }
    auto it = touched.find(r.event.aggregate_id);
    if (it == touched.end()) {
      Touched t;
      if (r.event.sequence == 1) {  // a new task: nothing stored to read
        events::PutLittleEndian(t.state.positions, partition, 4);
      } else {
        auto loaded = Load(*cache, r.event.aggregate_id);
        if (!loaded) return std::unexpected(loaded.error());
        t.state = std::move(*loaded);
        if (t.state.task.sequence > 0) t.index_before = IndexKeys(t.state.task);
      }
      it = touched.emplace(r.event.aggregate_id, std::move(t)).first;
    }
    Task& task = it->second.state.task;
    // Decoded once, for the task and its usage.
    auto body = events::Decode(r.event);
    Status applied =
        body ? events::ApplyEvent(task, r.event, *body) : Status(std::unexpected(body.error()));
    if (!applied) {
      return Fail(codes::kLogCorrupt, "partition " + std::to_string(partition) + " offset " +
                                          std::to_string(r.offset) + ": " +
                                          applied.error().message);
    }
    if (const auto* a = std::get_if<events::TaskArtifactCreated>(&*body)) {
      Artifact row;
      row.id = a->artifact_id;
      row.task_id = task.id;
      row.type = a->type;
      row.digest = a->digest;
      row.content_type = a->content_type;
      row.size = a->size;
      row.created_at_ms = r.event.timestamp_ms;
      if (a->approval_expires_at_ms != 0) {
        row.approval_status = "pending";
        row.approval_expires_at_ms = a->approval_expires_at_ms;
      }
      writes.push_back({ArtifactKey(task.tenant_id, a->artifact_id), ArtifactJson(row)});
    } else if (std::holds_alternative<events::TaskCancelled>(*body)) {
      // A cancelled task's partial artifacts are discarded (Ariftly's rule).
      for (const std::string& id : task.artifacts) {
        writes.push_back({ArtifactKey(task.tenant_id, id), std::nullopt});
      }
    }
    UsageCounters counted;
    CountUsage(*body, task, counted);
    if (counted != UsageCounters{}) {
      usage[UsageKey(task.tenant_id, infra::UtcDay(r.event.timestamp_ms), partition, task.type,
                     task.agent_id)]
          .Add(counted);
    }
    if (observer) observer(r.event, task);
    events::PutLittleEndian(it->second.state.positions, r.offset, 8);
  }
  // The writes go to the memtable in key order: each insert then starts its
  // search where the previous one ended (RocksDB keeps that place), instead
  // of from the top of the skip list, a cache miss per level.
  writes.reserve(writes.size() + touched.size() * 5 + 1);
  for (const auto& [id, t] : touched) {
    std::vector<std::string> after = IndexKeys(t.state.task);
    for (const std::string& key : t.index_before) {
      if (std::find(after.begin(), after.end(), key) == after.end()) writes.push_back({key, {}});
    }
    for (std::string& key : after) {
      if (std::find(t.index_before.begin(), t.index_before.end(), key) == t.index_before.end()) {
        writes.push_back({std::move(key), std::string()});
      }
    }
    // Rewritten whole, positions included: a task has few events.
    writes.push_back({TaskKey(id), TaskValue(t.state.positions, t.state.task)});
  }
  for (const auto& [key, added] : usage) {
    std::string stored;
    rocksdb::Status got = db_->Get(rocksdb::ReadOptions(), key, &stored);
    if (!got.ok() && !got.IsNotFound()) return Storage(got);
    UsageCounters total = got.ok() ? ParseUsage(stored) : UsageCounters{};
    total.Add(added);
    writes.push_back({key, UsageValue(total)});
  }
  writes.push_back({OffsetKey(partition), std::to_string(records.back().offset + 1)});
  // Stable: an artifact made and deleted in one batch stays deleted.
  std::stable_sort(writes.begin(), writes.end(),
                   [](const Write& a, const Write& b) { return a.key < b.key; });
  // The partition's Merkle tree grows by the batch's records: each record's
  // leaf and every subtree it completes ('T' keys sort before the rest).
  auto tree = Tree(partition);
  if (!tree) return std::unexpected(tree.error());
  std::vector<std::pair<std::string, std::string>> nodes;
  nodes.reserve(records.size() * 2);
  for (const events::LogRecord& r : records) {
    tree->Append(events::merkle::LeafHash(r.hash),
                 [&](int level, uint64_t index, const std::string& hash) {
                   if (level >= 1 && level <= kUnstoredLevels) return;
                   std::string value = hash;
                   if (level == 0) events::PutBigEndian(value, r.offset, 8);
                   nodes.emplace_back(TreeNodeKey(partition, level, index), std::move(value));
                 });
  }
  std::sort(nodes.begin(), nodes.end());
  for (const auto& [key, value] : nodes) batch.Put(key, value);
  std::string size;
  events::PutBigEndian(size, tree->size(), 8);
  batch.Put(TreeSizeKey(partition), size);
  for (const Write& w : writes) {
    if (w.value) {
      batch.Put(w.key, *w.value);
    } else {
      batch.Delete(w.key);
    }
  }
  // No WAL: the offset travels in the same batch, and a memtable flush never
  // splits a batch, so after a crash the views are an older consistent state
  // that the projector brings forward from the log. RocksDB flushes the
  // memtables when the views close normally.
  rocksdb::WriteOptions no_wal;
  no_wal.disableWAL = true;
  rocksdb::Status s = db_->Write(no_wal, &batch);
  if (!s.ok()) return Storage(s);
  {
    std::lock_guard lock(tree_mu_);
    trees_[partition] = std::move(*tree);
  }
  // Only live tasks stay cached: a terminal task never changes again.
  for (auto& [id, t] : touched) {
    if (events::IsTerminal(t.state.task.status)) {
      cache->erase(id);
    } else {
      if (cache->size() >= kCachedTasksPerPartition) cache->clear();
      (*cache)[id] = std::move(t.state);
    }
  }
  return {};
}

Result<events::merkle::Frontier> Views::Tree(uint32_t partition) {
  {
    std::lock_guard lock(tree_mu_);
    if (auto it = trees_.find(partition); it != trees_.end()) return it->second;
  }
  std::string size;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), TreeSizeKey(partition), &size);
  if (!s.ok() && !s.IsNotFound()) return Storage(s);
  auto loaded = events::merkle::Frontier::Load(
      s.ok() ? events::GetBigEndian(size) : 0,
      [&](int level, uint64_t index) { return TreeNode(partition, level, index); });
  if (!loaded) return loaded;
  std::lock_guard lock(tree_mu_);
  return trees_.try_emplace(partition, std::move(*loaded)).first->second;
}

Result<std::optional<std::string>> Views::Checkpoint(std::optional<uint64_t> total) {
  std::string note;
  if (total) {
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), CheckpointKey(*total), &note);
    if (s.IsNotFound()) return std::nullopt;
    if (!s.ok()) return Storage(s);
    return note;
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  it->SeekForPrev(CheckpointKey(UINT64_MAX));
  if (!it->status().ok()) return Storage(it->status());
  if (!it->Valid() || !it->key().starts_with("C") || it->key().size() != 9) return std::nullopt;
  return it->value().ToString();
}

Result<events::PartitionHead> Views::TreeHead(uint32_t partition) {
  auto tree = Tree(partition);
  if (!tree) return std::unexpected(tree.error());
  return events::PartitionHead{tree->size(), tree->Root()};
}

Result<std::string> Views::TreeNode(uint32_t partition, int level, uint64_t index) {
  if (level >= 1 && level <= kUnstoredLevels) {
    // Hashed from its leaves, which are adjacent keys.
    const uint64_t first = index << level, count = uint64_t{1} << level;
    std::vector<std::string> hashes;
    hashes.reserve(count);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    const std::string start = TreeNodeKey(partition, 0, first);
    for (it->Seek(start); it->Valid() && hashes.size() < count; it->Next()) {
      const std::string expected = TreeNodeKey(partition, 0, first + hashes.size());
      if (it->key() != expected || it->value().size() < 32) break;
      hashes.emplace_back(it->value().data(), 32);
    }
    if (!it->status().ok()) return Storage(it->status());
    if (hashes.size() < count) {
      return Fail(codes::kNotFound, "partition " + std::to_string(partition) +
                                        "'s tree has no node at level " + std::to_string(level) +
                                        " index " + std::to_string(index));
    }
    while (hashes.size() > 1) {  // a power of two: every node has both children
      std::vector<std::string> up;
      up.reserve(hashes.size() / 2);
      for (size_t i = 0; i + 1 < hashes.size(); i += 2) {
        up.push_back(events::merkle::NodeHash(hashes[i], hashes[i + 1]));
      }
      hashes = std::move(up);
    }
    return hashes.front();
  }
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), TreeNodeKey(partition, level, index), &value);
  if (s.IsNotFound() || (s.ok() && value.size() < 32)) {
    return Fail(codes::kNotFound, "partition " + std::to_string(partition) +
                                      "'s tree has no node at level " + std::to_string(level) +
                                      " index " + std::to_string(index));
  }
  if (!s.ok()) return Storage(s);
  value.resize(32);
  return value;
}

Result<std::optional<uint64_t>> Views::LeafOf(uint32_t partition, uint64_t offset, uint64_t size) {
  // Leaves are in offset order: a binary search over them.
  uint64_t lo = 0, hi = size;
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), TreeNodeKey(partition, 0, mid), &value);
    if (!s.ok() || value.size() != 40) {
      return s.ok() || s.IsNotFound() ? Fail(codes::kInternal, "a tree leaf is missing")
                                      : Storage(s);
    }
    const uint64_t at = events::GetBigEndian(std::string_view(value).substr(32));
    if (at == offset) return mid;
    if (at < offset) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return std::nullopt;
}

Result<Views::Cached> Views::Load(std::unordered_map<std::string, Cached>& cache,
                                  const std::string& id) {
  if (auto it = cache.find(id); it != cache.end()) {
    // Taken out, not copied: Apply puts it back once the batch is written. If
    // the write fails, the next Load reads the stored (older, true) state.
    Cached out = std::move(it->second);
    cache.erase(it);
    return out;
  }
  Cached out;
  std::string stored;
  auto found = Read(id, &out.positions, &out.task);
  if (!found) return std::unexpected(found.error());
  return out;
}

Result<bool> Views::Read(const std::string& id, std::string* positions, Task* task) {
  std::string stored;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), TaskKey(id), &stored);
  if (s.IsNotFound()) return false;
  if (!s.ok()) return Storage(s);
  std::string_view pos, json;
  if (!SplitTaskValue(stored, &pos, &json)) {
    return Fail(codes::kInternal, "the view of " + id + " is damaged; run runlog rebuild");
  }
  if (positions != nullptr) positions->assign(pos);
  if (task != nullptr) {
    auto parsed = events::TaskFromJson(json);
    if (!parsed) return std::unexpected(parsed.error());
    *task = std::move(*parsed);
  }
  return true;
}

Result<std::optional<Task>> Views::GetTask(const std::string& task_id,
                                           const std::string& tenant_id) {
  Task task;
  auto found = Read(task_id, nullptr, &task);
  if (!found) return std::unexpected(found.error());
  if (!*found || (!tenant_id.empty() && task.tenant_id != tenant_id)) return std::optional<Task>();
  return std::optional<Task>(std::move(task));
}

Result<std::vector<events::LogRecord>> Views::Trace(const std::string& task_id,
                                                    events::EventLog& log, Task* task,
                                                    const std::string& tenant_id) {
  std::string positions;
  Task read;
  if (task == nullptr && !tenant_id.empty()) task = &read;
  auto found = Read(task_id, &positions, task);
  if (!found) return std::unexpected(found.error());
  if (!*found || (!tenant_id.empty() && task->tenant_id != tenant_id)) {
    return std::vector<events::LogRecord>{};
  }
  const auto partition =
      static_cast<uint32_t>(events::GetLittleEndian(std::string_view(positions).substr(0, 4)));
  std::vector<events::LogRecord> out;
  for (size_t at = 4; at < positions.size(); at += 8) {
    const uint64_t offset = events::GetLittleEndian(std::string_view(positions).substr(at, 8));
    auto records = log.Read(partition, offset, 1);
    if (!records) return std::unexpected(records.error());
    if (records->empty() || records->front().event.aggregate_id != task_id) {
      return Fail(codes::kLogCorrupt, "trace of " + task_id + " points at offset " +
                                          std::to_string(offset) + ", which is not its event");
    }
    out.push_back(std::move(records->front()));
  }
  return out;
}

Result<ListPage> Views::List(const ListQuery& q) {
  // One index scan per status asked for (one for any), merged in the
  // index's order: newest first, then by id.
  struct Scan {
    std::string prefix;
    std::unique_ptr<rocksdb::Iterator> it;
    std::string_view order() const {
      return {it->key().data() + prefix.size(), it->key().size() - prefix.size()};
    }
    bool valid() const { return it->Valid() && it->key().starts_with(prefix); }
  };
  // One snapshot for all the scans (released after them): a task that moves
  // between two statuses meanwhile shows once, not twice or never.
  std::shared_ptr<const rocksdb::Snapshot> snapshot(
      db_->GetSnapshot(), [this](const rocksdb::Snapshot* s) { db_->ReleaseSnapshot(s); });
  rocksdb::ReadOptions at_snapshot;
  at_snapshot.snapshot = snapshot.get();
  std::vector<Scan> scans;
  const std::vector<std::string> any = {""};
  // Time bounds are ranges of the index: the newest allowed is where to
  // start, the oldest where to stop.
  std::string start = q.cursor;
  if (q.created_before_ms > 0) start = std::max(start, TimeOrder(q.created_before_ms - 1));
  const std::string stop = q.created_after_ms > 0 ? TimeOrder(q.created_after_ms) : "";
  for (const std::string& status : q.statuses.empty() ? any : q.statuses) {
    Scan scan{IndexPrefix(q.tenant_id, status, q.type),
              std::unique_ptr<rocksdb::Iterator>(db_->NewIterator(at_snapshot))};
    scan.it->Seek(scan.prefix + start);
    // The last item of the previous page is not repeated.
    if (!q.cursor.empty() && scan.valid() && scan.order() == q.cursor) scan.it->Next();
    scans.push_back(std::move(scan));
  }
  ListPage page;
  std::string last;  // the order of the last task read
  for (size_t examined = 0;; ++examined) {
    Scan* next = nullptr;
    for (Scan& scan : scans) {
      if (!scan.it->status().ok()) return Storage(scan.it->status());
      if (scan.valid() && (next == nullptr || scan.order() < next->order())) next = &scan;
    }
    if (next == nullptr) break;
    const std::string_view order = next->order();
    if (!stop.empty() && order.substr(0, stop.size()) > stop) break;  // older than asked
    if (page.tasks.size() >= q.limit) {  // one more exists: the page ends here
      if (!page.tasks.empty()) page.next_cursor = Ordering(page.tasks.back());
      break;
    }
    if (examined >= q.max_examined) {  // read enough for one answer: go on after the last
      page.next_cursor = last;
      break;
    }
    const std::string id(order.substr(order.find('\0') + 1));
    auto task = GetTask(id, q.tenant_id);
    if (!task) return std::unexpected(task.error());
    if (*task && (q.agent_id.empty() || (*task)->agent_id == q.agent_id)) {
      page.tasks.push_back(std::move(**task));
    }
    last.assign(order);
    next->it->Next();
  }
  return page;
}

Result<std::vector<UsageRow>> Views::Usage(const std::string& tenant, const std::string& from_day,
                                           const std::string& to_day) {
  const std::string prefix = "u" + tenant + '\0';
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  std::vector<UsageRow> rows;
  for (it->Seek(prefix + from_day); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string_view rest(it->key().data() + prefix.size(), it->key().size() - prefix.size());
    const size_t day_end = rest.find('\0');
    if (day_end == std::string_view::npos || rest.size() < day_end + 5) continue;
    const std::string_view day = rest.substr(0, day_end);
    if (day > to_day) break;
    const std::string_view type_agent = rest.substr(day_end + 5);
    const size_t type_end = type_agent.find('\0');
    UsageRow row;
    row.day = std::string(day);
    row.type = std::string(type_agent.substr(0, type_end));
    row.agent =
        type_end == std::string_view::npos ? "" : std::string(type_agent.substr(type_end + 1));
    row.counters = ParseUsage(std::string_view(it->value().data(), it->value().size()));
    rows.push_back(std::move(row));
  }
  if (!it->status().ok()) return Storage(it->status());
  return rows;
}

Result<int64_t> Views::CountListed(const ListQuery& q) {
  int64_t n = 0;
  for (const std::string& status : q.statuses) {
    const std::string prefix = IndexPrefix(q.tenant_id, status, q.type);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) ++n;
    if (!it->status().ok()) return Storage(it->status());
  }
  return n;
}

Result<std::vector<std::pair<std::string, std::string>>> Views::Dump() {
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    out.emplace_back(it->key().ToString(), it->value().ToString());
  }
  if (!it->status().ok()) return Storage(it->status());
  return out;
}

Result<std::optional<Artifact>> Views::GetArtifact(const std::string& tenant,
                                                   const std::string& id) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), ArtifactKey(tenant, id), &value);
  if (s.IsNotFound()) return std::optional<Artifact>();
  if (!s.ok()) return Storage(s);
  return std::optional<Artifact>(ParseArtifact(value));
}

Result<std::vector<std::string>> Views::ListDeliveries(const std::string& tenant,
                                                       const std::string& webhook_id) {
  return Rows(DeliveryKey(tenant, webhook_id, ""));
}

Result<std::optional<std::string>> Views::GetDelivery(const std::string& tenant,
                                                      const std::string& webhook_id,
                                                      const std::string& delivery_id) {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), DeliveryKey(tenant, webhook_id, delivery_id), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return Storage(s);
  return std::optional<std::string>(std::move(value));
}

Result<std::vector<std::string>> Views::ListFires(const std::string& tenant,
                                                  const std::string& trigger_id) {
  return Rows(FireKey(tenant, trigger_id, ""));
}

Result<int64_t> Views::LastScheduledFire(const std::string& tenant, const std::string& trigger_id) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), LastFireKey(tenant, trigger_id), &value);
  if (s.IsNotFound()) return int64_t{0};
  if (!s.ok()) return Storage(s);
  int64_t at = 0;
  std::from_chars(value.data(), value.data() + value.size(), at);
  return at;
}

Result<std::vector<std::string>> Views::Rows(const std::string& prefix) {
  std::vector<std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix) && out.size() < kMaxRows;
       it->Next()) {
    out.emplace_back(it->value().data(), it->value().size());
  }
  if (!it->status().ok()) return Storage(it->status());
  return out;
}

Result<std::vector<std::pair<std::string, Artifact>>> Views::ArtifactsOlderThan(
    const std::function<int64_t(const std::string& tenant)>& cutoff_of, size_t limit) {
  std::vector<std::pair<std::string, Artifact>> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  it->Seek("a");
  while (it->Valid() && it->key().starts_with("a") && out.size() < limit) {
    const std::string_view key(it->key().data(), it->key().size());
    const size_t nul = key.find('\0');
    if (nul == std::string_view::npos) break;
    const std::string tenant(key.substr(1, nul - 1));
    const int64_t cutoff = cutoff_of(tenant);
    // Ids sort by time within their kind (art_, out_): past the first young
    // one, the next kind.
    const std::string prefix = std::string("a") + tenant + '\0';
    while (it->Valid() && it->key().starts_with(prefix) && out.size() < limit) {
      Artifact a = ParseArtifact(std::string_view(it->value().data(), it->value().size()));
      if (a.created_at_ms >= cutoff) {
        it->Seek(prefix + a.id.substr(0, 4) + '\xff');
        continue;
      }
      out.emplace_back(tenant, std::move(a));
      it->Next();
    }
    it->Seek(std::string("a") + tenant + '\x01');
  }
  if (!it->status().ok()) return Storage(it->status());
  return out;
}

Result<std::vector<Artifact>> Views::ListArtifacts(
    const std::string& tenant, const std::string& task_id, const std::string& type, size_t limit,
    const std::function<bool(const Artifact&)>& keep) {
  std::vector<Artifact> out;
  const std::string prefix = ArtifactKey(tenant, "");
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix) && out.size() < limit;
       it->Next()) {
    Artifact a = ParseArtifact(std::string_view(it->value().data(), it->value().size()));
    if ((task_id.empty() || a.task_id == task_id) && (type.empty() || a.type == type) &&
        (!keep || keep(a))) {
      out.push_back(std::move(a));
    }
  }
  if (!it->status().ok()) return Storage(it->status());
  return out;
}

}  // namespace runlog::projections
