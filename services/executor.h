#pragma once
// Executors run the plans runlog runs itself (every step a built-in tool, or a
// replay's recorded agent output). An executor is a stateless consumer: it
// claims a ready task through the TaskService like any worker, records
// step.started before each step and step.finished after it, strictly in
// order, and stops at the first failure. Everything it knows comes from the
// task it claimed, so a task whose executor died is retried from its first
// unfinished step once its lease expires (an explicit, counted
// task.retry_scheduled), by any executor.
//
// Thread contract: Start() runs `slots` threads; Stop() ends them, killing
// the steps they run. OnCancelled() is thread-safe: a sandboxed step of that
// task is killed within a second.

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "infra/base/ids.h"
#include "services/content_store.h"
#include "services/task_service.h"
#include "services/tools.h"

namespace runlog::services {

class Executor {
 public:
  struct Options {
    TaskService* tasks = nullptr;
    const ToolRegistry* tools = nullptr;
    infra::Clock* clock = nullptr;
    int slots = 2;
    // Added to a step's time for its lease, so an executor that died is noticed.
    std::chrono::milliseconds lease_margin{30'000};
    std::string name = "executor";
    // Called after each step (for metrics); optional.
    std::function<void(const std::string& tool, double seconds, bool ok, bool sandboxed)> on_step;
    // Approval steps store their artifact's bytes here, under ids from `ids`.
    ContentStore* content = nullptr;
    infra::IdGenerator* ids = nullptr;
  };
  // How long an approval step waits when its input names no timeout_seconds.
  static constexpr int64_t kApprovalWaitSeconds = 7 * 86'400;
  explicit Executor(Options options);
  ~Executor();

  void Start();
  void Stop();
  void OnCancelled(const std::string& task_id);
  // Slots running a task now, of options.slots.
  int64_t busy();

 private:
  void Loop(int slot);
  void Run(const std::string& worker_id, events::Task task);
  // An approval step: its artifact, pending until `until_ms`, under the lease.
  Status AwaitApproval(const Caller& caller, const LeaseRef& ref, const json::Value& input,
                       int64_t until_ms);
  // Submits `command` and waits for its answer.
  Result<CommandResult> Call(Command command);

  Options options_;
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> threads_;
  std::mutex running_mu_;
  std::map<std::string, std::shared_ptr<std::atomic<bool>>> running_;  // task id -> cancel flag
};

}  // namespace runlog::services
