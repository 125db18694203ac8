#pragma once
// Triggers start tasks (docs/triggers.md): on a cron schedule in a time
// zone, when another task emits an artifact of a type or reaches a status,
// or when a signed message arrives on a channel. Each fire creates its task
// through the API's own create path, acting as the trigger (key id
// "trigger:<id>"), with an Idempotency-Key derived from the trigger and the
// occasion (the scheduled time, the source event's id, the message's
// digest), and is recorded as `trigger.fired`. A fire repeated after a crash
// therefore finds the task it made and starts no second one.
//
// The scheduler resumes each schedule from the latest time it fired for (the
// views keep it) and applies its `catch_up` policy to the times it missed:
// all, latest or none. A time more than kLate late counts as missed.
//
// Thread contract: Start() runs the scheduler's thread; OnRecord runs on the
// dispatcher's thread; Inbound on HTTP threads. All are thread-safe.

#include <absl/time/time.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "api/api.h"
#include "events/event_log.h"
#include "infra/base/clock.h"
#include "projections/views.h"
#include "services/cron.h"
#include "services/hooks.h"

namespace runlog::api {

// The checked, canonical spec of a trigger from a create body (without its
// secret, which `secret` gets for a channel): VALIDATION_ERROR with a field.
[[nodiscard]] Result<std::string> CheckTriggerSpec(const json::Value& body, std::string* kind,
                                                   std::string* secret);
// "fire_" + 26 hex of SHA-256 over the trigger id and the occasion.
std::string FireId(const std::string& trigger_id, const std::string& occasion);

class Triggers {
 public:
  static constexpr int64_t kLateMs = 2000;

  struct Options {
    Api* api = nullptr;
    services::HookStore* hooks = nullptr;
    services::KeyStore* keys = nullptr;
    services::TaskService* writers = nullptr;
    projections::Views* views = nullptr;
    services::ContentStore* content = nullptr;
    infra::Clock* clock = nullptr;
    std::chrono::milliseconds tick{200};
    // Cluster mode: whether this node writes `partition`; a schedule fires
    // only on the node that writes its trigger's partition. Null: all.
    std::function<bool(uint32_t partition)> owns;
  };
  explicit Triggers(Options options) : options_(std::move(options)) {}
  ~Triggers() { Stop(); }

  void Start();
  void Stop();

  // The dispatcher's hook: fires the event triggers `record` matches; false
  // if a fire failed and the record must be offered again.
  bool OnRecord(const events::LogRecord& record);

  // A message on channel `trigger_id`, verified with its secret: fired (its
  // task), not matched, or an error (BAD_SIGNATURE, TRIGGER_NOT_FOUND).
  struct Inbound {
    bool fired = false;
    std::string task_id, fire_id;
  };
  [[nodiscard]] Result<Inbound> OnMessage(const std::string& trigger_id, const std::string& body,
                                          const std::map<std::string, std::string>& headers);

 private:
  // Creates the trigger's task for `occasion` with `context` for its $refs;
  // the task id, or the error.
  Result<std::string> Fire(const services::TriggerRecord& t, const std::string& occasion,
                           const std::string& context);
  void Loop();
  void Tick();

  Options options_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  std::mutex mu_;
  // Per schedule trigger (tenant \0 id): the latest time it fired for or
  // passed over; guarded by mu_.
  std::map<std::string, int64_t> cursor_;
  // Per schedule trigger: its spec parsed (the scheduler's thread only).
  struct Schedule {
    std::string spec;
    services::Cron cron;
    absl::TimeZone zone;
    std::string policy;
  };
  std::map<std::string, Schedule> schedules_;
};

}  // namespace runlog::api
