#pragma once
// The auditor behind `runlog audit` (docs/hashing.md, docs/receipts.md). Fed
// every record of a log as stored, partition after partition in offset
// order, it checks:
//   - each record's checksum and form (an unreadable record is reported and
//     the audit reads on);
//   - the hash chain: each record's link is the hash of the record before;
//   - each partition's RFC 6962 tree against every signed checkpoint's root
//     and size (a log shorter than a checkpoint lost its tail);
//   - every task event against the state machine (ApplyEvent), every
//     step_hash and task_hash, each executor-run task's result against its
//     last step's output, and each replay's verdict against the two tasks'
//     hashes.
// A problem names the partition and offset of the record it was found at.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "events/checkpoint.h"
#include "events/event.h"
#include "events/merkle.h"
#include "events/task.h"

namespace runlog::events {

struct AuditReport {
  uint64_t records = 0;        // records read, readable or not
  uint64_t events = 0;         // task and step events checked
  uint64_t other_events = 0;   // keys and other aggregates
  uint64_t tasks = 0;          // tasks that ended succeeded or failed
  uint64_t steps = 0;          // step hashes recomputed
  uint64_t chained = 0;        // records whose chain link was checked
  uint64_t unchained = 0;      // format 1 records, from before the chain
  uint64_t checkpoints = 0;    // signed checkpoints verified
  uint64_t roots_checked = 0;  // partition roots compared with a checkpoint's
  uint64_t results = 0;        // executor-run results compared with their last step
  uint64_t replays = 0;        // replay verdicts recomputed
  std::vector<std::string> problems;
  std::vector<std::string> notes;  // facts that are not problems
};

struct AuditOptions {
  // Checkpoint signatures are checked against this key; without one they
  // are reported unverified and their roots are not trusted.
  std::optional<NoteKey> key;
  // Offsets grow by one per record (the embedded log): a gap is a missing record.
  bool dense_offsets = true;
};

class Auditor {
 public:
  Auditor(uint32_t partitions, AuditOptions options);

  // First, every checkpoint to hold the log to: the notes of the log's
  // checkpoint.signed records (`where` names the record), and any held elsewhere.
  void AddCheckpoint(const std::string& note, const std::string& where);
  // Then each partition's records in offset order, as stored.
  void Record(uint32_t partition, uint64_t offset, std::string_view bytes);
  // Storage that could not be read at `offset` (the audit reads on after it).
  void Unreadable(uint32_t partition, uint64_t offset, const std::string& what);
  void EndPartition(uint32_t partition);
  // After every partition: what needs the whole log (replays of tasks elsewhere).
  void Finish();

  const AuditReport& report() const { return report_; }
  size_t open_tasks() const { return tasks_.size(); }

 private:
  struct PartitionState {
    merkle::Frontier tree;
    std::string last_hash;     // of the record before; empty at the start
    uint64_t last_offset = 0;  // of the record before
    uint64_t next_offset = 0;  // expected next, where offsets are dense
    bool last_unreadable = false;
    bool chain_started = false;
  };
  struct CheckpointClaim {
    std::string where;
    uint64_t size;
    std::string root;
  };
  struct PendingReplay {
    std::string original, original_hash, where;
  };

  void Problem(uint32_t partition, uint64_t offset, const std::string& what);
  void TaskEvent(const LogRecord& r);
  void TaskEnded(const LogRecord& r, const Task& task);
  void CheckTargets(uint32_t partition);

  const AuditOptions options_;
  std::vector<PartitionState> partitions_;
  // Per partition: tree size -> the checkpoints that claim a root for it.
  std::vector<std::map<uint64_t, std::vector<CheckpointClaim>>> claims_;
  std::unordered_map<std::string, Task> tasks_;
  std::unordered_set<std::string> broken_;  // tasks with an illegal event
  // Ended tasks' task_hash, for replays of them seen in another partition.
  std::unordered_map<std::string, std::string> ended_hashes_;
  std::vector<PendingReplay> replays_;
  uint64_t unverified_checkpoints_ = 0;
  AuditReport report_;
};

}  // namespace runlog::events
