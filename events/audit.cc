#include "events/audit.h"

#include "events/canonical_json.h"
#include "events/codec.h"
#include "events/hashes.h"
#include "events/sha256.h"
#include "infra/base/json.h"

namespace runlog::events {
namespace {

std::string Where(uint32_t partition, uint64_t offset) {
  return "partition " + std::to_string(partition) + " offset " + std::to_string(offset);
}

std::string Short(std::string_view raw_hash) { return HexOf(raw_hash).substr(0, 16) + "…"; }

// The verdict a replay's end must carry (docs/events.md, "The replay
// verdict"), from what its task.created copied of the original (replay_of)
// and its own hashes.
std::string ExpectedVerdict(const Task& replay) {
  json::Document of, mine;
  if (!json::Parse(replay.replay_of, &of) || !of.IsObject() ||
      !json::Parse(replay.step_hashes.empty() ? "[]" : replay.step_hashes, &mine) ||
      !mine.IsArray()) {
    return "";
  }
  const std::string original_hash = json::String(of, "task_hash");
  const json::Value* theirs = json::Find(of, "step_hashes");
  const size_t n_theirs = theirs != nullptr && theirs->IsArray() ? theirs->Size() : 0;
  std::string divergent = "null";
  for (size_t i = 0; i < std::max<size_t>(n_theirs, mine.Size()); ++i) {
    const bool differs = i >= n_theirs || i >= mine.Size() || !(*theirs)[i].IsString() ||
                         !mine[i].IsString() ||
                         std::string_view((*theirs)[i].GetString()) != mine[i].GetString();
    if (differs) {
      divergent = std::to_string(i + 1);
      break;
    }
  }
  std::string out = "{\"first_divergent_step\":" + divergent +
                    ",\"matches\":" + (replay.task_hash == original_hash ? "true" : "false") +
                    ",\"of_task_id\":";
  AppendCanonicalString(replay.replay_of_task_id, &out);
  out += ",\"original_task_hash\":";
  AppendCanonicalString(original_hash, &out);
  return out + "}";
}

}  // namespace

Auditor::Auditor(uint32_t partitions, AuditOptions options)
    : options_(std::move(options)), partitions_(partitions), claims_(partitions) {}

void Auditor::Problem(uint32_t partition, uint64_t offset, const std::string& what) {
  report_.problems.push_back(Where(partition, offset) + ": " + what);
}

void Auditor::AddCheckpoint(const std::string& note, const std::string& where) {
  Result<Checkpoint> c = Fail(codes::kInvalidArgument, "no key");
  if (options_.key) {
    c = VerifyCheckpointNote(note, *options_.key);
    if (!c) {
      report_.problems.push_back(where + ": checkpoint does not verify: " + c.error().message);
      return;
    }
    ++report_.checkpoints;
  } else {
    ++unverified_checkpoints_;
    return;  // unsigned roots prove nothing
  }
  if (c->partitions.size() != partitions_.size()) {
    report_.problems.push_back(where + ": checkpoint covers " +
                               std::to_string(c->partitions.size()) + " partitions, the log has " +
                               std::to_string(partitions_.size()));
    return;
  }
  for (size_t p = 0; p < c->partitions.size(); ++p) {
    claims_[p][c->partitions[p].size].push_back(
        {where, c->partitions[p].size, c->partitions[p].root});
  }
}

void Auditor::CheckTargets(uint32_t partition) {
  PartitionState& s = partitions_[partition];
  auto it = claims_[partition].find(s.tree.size());
  if (it == claims_[partition].end()) return;
  const std::string root = s.tree.Root();
  for (const CheckpointClaim& claim : it->second) {
    ++report_.roots_checked;
    if (claim.root != root) {
      Problem(partition, s.last_offset,
              "the first " + std::to_string(claim.size) +
                  " records (to here) do not hash to the root " + claim.where + " signed (" +
                  Short(claim.root) + ", recomputed " + Short(root) +
                  "): a record up to here was changed, removed or reordered");
    }
  }
}

void Auditor::Record(uint32_t partition, uint64_t offset, std::string_view bytes) {
  PartitionState& s = partitions_[partition];
  ++report_.records;
  if (options_.dense_offsets && offset != s.next_offset) {
    if (offset > s.next_offset) {
      Problem(partition, s.next_offset,
              "record missing" + (offset - s.next_offset > 1
                                      ? " (offsets " + std::to_string(s.next_offset) + " to " +
                                            std::to_string(offset - 1) + ")"
                                      : std::string()));
    } else {
      Problem(partition, offset, "record out of offset order");
    }
  }
  s.next_offset = offset + 1;
  auto record = DecodeRecord(partition, offset, bytes);
  const std::string hash = record ? record->hash : RecordHash(bytes);  // hashed once
  if (!record) {
    Problem(partition, offset, "unreadable record: " + record.error().message);
  } else if (record->prev.empty()) {
    ++report_.unchained;
    if (s.chain_started) {
      Problem(partition, offset, "a format 1 record (without a chain link) after the chain began");
    }
  } else {
    s.chain_started = true;
    const std::string expected = s.last_hash.empty() ? std::string(kNoPrev) : s.last_hash;
    if (record->prev == expected) {
      ++report_.chained;
    } else if (!s.last_unreadable) {  // the unreadable record was reported already
      Problem(partition, offset,
              "hash chain broken: the record links to " + Short(record->prev) + ", but " +
                  (s.last_hash.empty()
                       ? std::string("it is the partition's first record")
                       : "the record before it (offset " + std::to_string(s.last_offset) +
                             ") hashes to " + Short(s.last_hash)) +
                  ": a record before it was edited, removed or reordered");
    }
  }
  s.tree.Append(merkle::LeafHash(hash));
  s.last_hash = hash;
  s.last_offset = offset;
  s.last_unreadable = !record;
  CheckTargets(partition);
  if (!record) return;
  if (IsTaskEvent(record->event)) {
    TaskEvent(*record);
  } else {
    ++report_.other_events;
  }
}

void Auditor::Unreadable(uint32_t partition, uint64_t offset, const std::string& what) {
  Problem(partition, offset, "unreadable storage: " + what);
  partitions_[partition].last_unreadable = true;
  partitions_[partition].next_offset = offset + 1;
}

void Auditor::EndPartition(uint32_t partition) {
  const PartitionState& s = partitions_[partition];
  for (auto it = claims_[partition].upper_bound(s.tree.size()); it != claims_[partition].end();
       ++it) {
    for (const CheckpointClaim& claim : it->second) {
      ++report_.roots_checked;
      const std::string at = s.tree.size() == 0
                                 ? std::string("it has none")
                                 : "its last is at offset " + std::to_string(s.last_offset);
      report_.problems.push_back(
          Where(partition, options_.dense_offsets ? s.tree.size() : s.last_offset + 1) + ": " +
          claim.where + " signed " + std::to_string(claim.size) + " records of this partition, " +
          "the log has " + std::to_string(s.tree.size()) + " (" + at +
          "): records at its end were removed");
    }
  }
  if (report_.unchained > 0 && !s.chain_started && s.tree.size() > 0) {
    report_.notes.push_back("partition " + std::to_string(partition) +
                            ": every record is format 1, written before the hash chain");
  }
}

void Auditor::TaskEvent(const LogRecord& r) {
  const Event& e = r.event;
  ++report_.events;
  if (broken_.contains(e.aggregate_id)) return;  // its problem is reported once
  auto problem = [&](const std::string& what) {
    Problem(r.partition, r.offset,
            "event " + e.event_id + " (" + e.type + ", task " + e.aggregate_id + "): " + what);
  };
  Task& task = tasks_[e.aggregate_id];
  // Steps run one at a time: the one running now is the one a step.finished ends.
  size_t running = task.steps.size();
  for (size_t i = 0; i < task.steps.size(); ++i) {
    if (task.steps[i].status == "running") running = i;
  }
  if (auto s = ApplyEvent(task, e); !s) {
    problem("illegal: " + s.error().message);
    tasks_.erase(e.aggregate_id);
    broken_.insert(e.aggregate_id);
    return;
  }
  if (e.type == "step.finished") {
    ++report_.steps;
    StepRecord& step = task.steps[running];
    const std::string recomputed = StepHash(step);
    if (recomputed != step.step_hash) {
      problem("step_hash mismatch: the log has " + step.step_hash + ", recomputed " + recomputed);
      step.step_hash = recomputed;  // so the task's hashes are checked against the true steps
    }
    return;
  }
  if (e.type != "task.succeeded" && e.type != "task.failed") {
    if (IsTerminal(task.status)) tasks_.erase(e.aggregate_id);  // cancelled: no hashes
    return;
  }
  ++report_.tasks;
  if (!task.executor && task.steps.size() == 1 && task.steps[0].tool == "agent" &&
      task.steps[0].finished_at_ms == e.timestamp_ms) {
    ++report_.steps;  // the implied agent step: its hash came from this event
    StepRecord& step = task.steps[0];
    if (const std::string recomputed = StepHash(step); recomputed != step.step_hash) {
      problem("implied agent step_hash mismatch: the log has " + step.step_hash + ", recomputed " +
              recomputed);
      step.step_hash = recomputed;
    }
  }
  const std::string step_hashes = StepHashesJson(task);
  const std::string recomputed = TaskHash(task, e.type == "task.succeeded" ? "succeeded" : "failed",
                                          step_hashes, task.error_code);
  if (task.task_hash.empty()) {
    problem("no task_hash");
  } else if (task.step_hashes != step_hashes) {
    problem("step_hashes mismatch: the log has " + task.step_hashes + ", recomputed " +
            step_hashes);
  } else if (task.task_hash != recomputed) {
    problem("task_hash mismatch: the log has " + task.task_hash + ", recomputed " + recomputed);
  }
  // An executor-run plan's result is its last step's output (docs/plans.md).
  if (e.type == "task.succeeded" && task.executor) {
    ++report_.results;
    const size_t last = static_cast<size_t>(task.step_count);
    if (last == 0 || task.steps.size() < last || task.steps[last - 1].status != "succeeded") {
      problem("succeeded without its last step (" + std::to_string(last) + ") succeeding");
    } else if (const std::string& output = task.steps[last - 1].output;
               task.result != (output.empty() ? "{}" : output) &&
               !(output.empty() && task.result.empty())) {
      problem("the result is not step " + std::to_string(last) + "'s output: the log has " +
              task.result + ", the step " + (output.empty() ? "{}" : output));
    }
  }
  // A replay's verdict follows from its hashes and the original's.
  if (!task.replay_of.empty()) {
    ++report_.replays;
    const std::string expected = ExpectedVerdict(task);
    if (task.replay != expected) {
      problem("replay verdict " + (task.replay.empty() ? std::string("missing") : task.replay) +
              ", recomputed " + expected);
    }
    json::Document of;
    if (json::Parse(task.replay_of, &of) && of.IsObject()) {
      replays_.push_back({task.replay_of_task_id, json::String(of, "task_hash"),
                          Where(r.partition, r.offset) + " (replay " + task.id + ")"});
    }
  }
  if (!task.task_hash.empty()) ended_hashes_[task.id] = task.task_hash;
  tasks_.erase(e.aggregate_id);
}

void Auditor::Finish() {
  size_t unseen = 0;
  for (const PendingReplay& r : replays_) {
    auto it = ended_hashes_.find(r.original);
    if (it == ended_hashes_.end()) {
      ++unseen;
    } else if (it->second != r.original_hash) {
      report_.problems.push_back(r.where + ": the replay was made of " + r.original +
                                 " with task_hash " + r.original_hash +
                                 ", but that task ended with " + it->second);
    }
  }
  if (unseen > 0) {
    report_.notes.push_back(std::to_string(unseen) +
                            " replays of tasks not in this log were checked against the hashes "
                            "they copied only");
  }
  if (unverified_checkpoints_ > 0) {
    report_.notes.push_back(std::to_string(unverified_checkpoints_) +
                            " checkpoints were not checked: no key (pass --key)");
  }
}

}  // namespace runlog::events
