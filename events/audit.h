#pragma once
// The auditor behind `runlog audit`: replays a log, checks every task event
// against the state machine (the same ApplyEvent the writers use) and
// recomputes every step_hash and task_hash (docs/hashing.md). Anything that
// does not match is a problem naming the record: partition, offset, event id.

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "events/event.h"
#include "events/task.h"

namespace runlog::events {

struct AuditReport {
  uint64_t events = 0;        // task and step events checked
  uint64_t other_events = 0;  // keys and other aggregates, not audited here
  uint64_t tasks = 0;         // tasks that ended succeeded or failed
  uint64_t steps = 0;         // step hashes recomputed
  std::vector<std::string> problems;
};

class Auditor {
 public:
  // Checks one record; records of one partition must come in offset order.
  void Add(const LogRecord& record);
  // A record that could not be read at all (a checksum mismatch, say).
  void Unreadable(const std::string& what) { report_.problems.push_back(what); }
  const AuditReport& report() const { return report_; }
  // Tasks seen but not ended (running, queued, …): not a problem.
  size_t open_tasks() const { return tasks_.size(); }

 private:
  void Problem(const LogRecord& r, const std::string& what);
  std::unordered_map<std::string, Task> tasks_;
  std::unordered_set<std::string> broken_;  // tasks with an illegal event
  AuditReport report_;
};

}  // namespace runlog::events
