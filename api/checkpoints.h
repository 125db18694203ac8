#pragma once
// The checkpointer: every `interval`, or once `every_records` records were
// applied, signs a checkpoint of the whole log as the views have applied it
// (each partition's RFC 6962 tree, events/checkpoint.h) and appends it as a
// checkpoint.signed record (docs/receipts.md). Nothing is signed while only
// checkpoints were added since the last one. In a cluster only the owner of
// the checkpoints' partition signs. Stop() signs a last one if the log grew,
// so a clean shutdown leaves the whole log covered.
//
// Thread contract: SignNow and the accessors from any thread; Start/Stop once.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "events/checkpoint.h"
#include "events/event_log.h"
#include "infra/base/clock.h"
#include "infra/base/ids.h"
#include "infra/base/result.h"

namespace runlog::projections {
class Views;
class Projector;
}  // namespace runlog::projections
namespace runlog::services {
class TaskService;
}  // namespace runlog::services

namespace runlog::api {

class Checkpointer {
 public:
  struct Options {
    services::TaskService* tasks = nullptr;  // appends the record
    events::EventLog* log = nullptr;
    projections::Views* views = nullptr;
    projections::Projector* projector = nullptr;
    const events::NoteSigner* signer = nullptr;
    infra::IdGenerator* ids = nullptr;
    infra::Clock* clock = nullptr;
    uint32_t partitions = 0;
    std::chrono::milliseconds interval{10'000};
    uint64_t every_records = 10'000;
    // Whether this node writes `partition` (cluster mode); null: it writes all.
    std::function<bool(uint32_t)> owns;
  };
  explicit Checkpointer(Options options);
  ~Checkpointer();
  void Start();
  void Stop();

  // Signs a checkpoint now if the views hold records the newest one does not
  // cover, and waits until the views hold it. The newest checkpoint's note.
  // UNAVAILABLE if this node does not sign (another node owns the partition).
  [[nodiscard]] Result<std::string> SignNow();
  const events::NoteKey& key() const { return options_.signer->key(); }
  uint32_t partition() const { return partition_; }

 private:
  void Loop();
  // The sizes and roots the views have applied.
  [[nodiscard]] Result<events::Checkpoint> Current();
  // Whether `now` covers records `signed_` does not, besides checkpoints.
  bool Grew(const events::Checkpoint& now) const;
  [[nodiscard]] Result<std::string> Sign(const events::Checkpoint& c);

  const Options options_;
  const uint32_t partition_;      // of the checkpoints' aggregate
  std::mutex sign_mu_;            // one signing at a time
  std::vector<uint64_t> signed_;  // sizes of the last checkpoint signed (guarded by sign_mu_)
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace runlog::api
