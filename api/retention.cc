#include "api/retention.h"

#include <future>

#include "events/types.h"
#include "services/account_plans.h"

namespace runlog::api {

void Retention::Start() {
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      lock.unlock();
      Sweep();
      lock.lock();
      wake_.wait_for(lock, options_.every, [this] { return stopping_; });
    }
  });
}

void Retention::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

size_t Retention::Sweep() {
  const int64_t now = options_.clock->NowMillis();
  auto due = options_.views->ArtifactsOlderThan(
      [&](const std::string& tenant) -> int64_t {
        const int64_t days =
            services::PlanNamed(options_.keys->PlanOfTenant(tenant)).retention_days;
        return days > 0 ? now - days * 86'400'000 : 0;  // 0: keeps everything
      },
      options_.max_per_sweep);
  if (!due) return 0;
  // Expired by an earlier sweep but still in views that lag: not again (its
  // bytes would be released twice). Ids the views no longer list are dropped.
  std::set<std::string> listed;
  for (const auto& [tenant, a] : *due) listed.insert(a.id);
  std::erase_if(recorded_, [&](const std::string& id) { return !listed.contains(id); });
  size_t expired = 0;
  for (const auto& [tenant, a] : *due) {
    if (recorded_.contains(a.id)) continue;
    events::Event e;
    e.type = "artifact.deleted";
    e.event_id = options_.ids->Next("evt_");
    // On the artifact's task (or the output): the views apply it after the artifact.
    e.aggregate_id = a.task_id.empty() ? a.id : a.task_id;
    e.tenant_id = tenant;
    e.timestamp_ms = now;
    e.payload = events::Encode(events::ArtifactDeleted{a.id, "retention"});
    std::promise<Status> recorded;
    options_.writers->Record(std::move(e), [&](Status s) { recorded.set_value(s); });
    if (!recorded.get_future().get()) break;  // the log refuses: the next sweep tries again
    options_.content->Release(a.digest);
    recorded_.insert(a.id);
    ++expired;
  }
  return expired;
}

}  // namespace runlog::api
