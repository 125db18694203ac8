#pragma once
// Retention of artifacts (docs/api.md, "Artifacts"): an artifact or output
// older than its tenant's plan's retention_days expires through an
// `artifact.deleted` event on the log (deleted_by "retention"), exactly as a
// DELETE does: its view row goes and its bytes are freed once no other
// artifact names them. The log keeps its digest, so `runlog audit` still
// covers it. Plans with retention_days 0 keep everything.
//
// Lifecycle: Start() runs a thread that sweeps every `every`; Stop() ends it.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "infra/base/clock.h"
#include "infra/base/ids.h"
#include "projections/views.h"
#include "services/content_store.h"
#include "services/keys.h"
#include "services/task_service.h"

namespace runlog::api {

class Retention {
 public:
  struct Options {
    projections::Views* views = nullptr;
    services::TaskService* writers = nullptr;
    services::ContentStore* content = nullptr;
    services::KeyStore* keys = nullptr;
    infra::Clock* clock = nullptr;
    infra::IdGenerator* ids = nullptr;
    std::chrono::milliseconds every{60'000};
    size_t max_per_sweep = 1000;
  };
  explicit Retention(Options options) : options_(std::move(options)) {}
  ~Retention() { Stop(); }

  void Start();
  void Stop();
  // One pass: expires what is due (up to max_per_sweep); how many it expired.
  size_t Sweep();

 private:
  Options options_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;           // guarded by mu_
  std::set<std::string> recorded_;  // expired, maybe not yet gone from the views (Sweep's)
  std::thread thread_;
};

}  // namespace runlog::api
