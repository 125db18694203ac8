#include "events/audit.h"

#include "events/hashes.h"

namespace runlog::events {

void Auditor::Problem(const LogRecord& r, const std::string& what) {
  report_.problems.push_back("partition " + std::to_string(r.partition) + " offset " +
                             std::to_string(r.offset) + " event " + r.event.event_id + " (" +
                             r.event.type + ", task " + r.event.aggregate_id + "): " + what);
}

void Auditor::Add(const LogRecord& r) {
  const Event& e = r.event;
  if (!IsTaskEvent(e)) {
    ++report_.other_events;
    return;
  }
  ++report_.events;
  if (broken_.contains(e.aggregate_id)) return;  // its problem is reported once
  Task& task = tasks_[e.aggregate_id];
  // Steps run one at a time: the one running now is the one a step.finished ends.
  size_t running = task.steps.size();
  for (size_t i = 0; i < task.steps.size(); ++i) {
    if (task.steps[i].status == "running") running = i;
  }
  if (auto s = ApplyEvent(task, e); !s) {
    Problem(r, "illegal: " + s.error().message);
    tasks_.erase(e.aggregate_id);
    broken_.insert(e.aggregate_id);
    return;
  }
  if (e.type == "step.finished") {
    ++report_.steps;
    StepRecord& step = task.steps[running];
    const std::string recomputed = StepHash(step);
    if (recomputed != step.step_hash) {
      Problem(r,
              "step_hash mismatch: the log has " + step.step_hash + ", recomputed " + recomputed);
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
      Problem(r, "implied agent step_hash mismatch: the log has " + step.step_hash +
                     ", recomputed " + recomputed);
      step.step_hash = recomputed;
    }
  }
  const std::string step_hashes = StepHashesJson(task);
  const std::string recomputed = TaskHash(task, e.type == "task.succeeded" ? "succeeded" : "failed",
                                          step_hashes, task.error_code);
  if (task.task_hash.empty()) {
    Problem(r, "no task_hash");
  } else if (task.step_hashes != step_hashes) {
    Problem(
        r, "step_hashes mismatch: the log has " + task.step_hashes + ", recomputed " + step_hashes);
  } else if (task.task_hash != recomputed) {
    Problem(r, "task_hash mismatch: the log has " + task.task_hash + ", recomputed " + recomputed);
  }
  tasks_.erase(e.aggregate_id);
}

}  // namespace runlog::events
