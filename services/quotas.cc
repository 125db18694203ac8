#include "services/quotas.h"

#include <chrono>

namespace runlog::services {

std::pair<int64_t, int64_t> Quotas::Window(Counter counter, int64_t at_ms) {
  using namespace std::chrono;
  if (counter == kClaimsPerHour) {
    const int64_t start = at_ms - at_ms % 3'600'000;
    return {start, start + 3'600'000};
  }
  const sys_days day = floor<days>(sys_time<milliseconds>(milliseconds(at_ms)));
  const year_month_day ymd{day};
  const year_month month = ymd.year() / ymd.month();
  const sys_days start = sys_days(month / 1);
  const sys_days end = sys_days((month + months(1)) / 1);
  return {duration_cast<milliseconds>(start.time_since_epoch()).count(),
          duration_cast<milliseconds>(end.time_since_epoch()).count()};
}

void Quotas::Bump(Slots& slots, Counter counter, int64_t at_ms, int64_t n) {
  Slot& slot = slots[counter];
  const int64_t start = Window(counter, at_ms).first;
  if (start < slot.start) return;  // an earlier window than the one kept
  if (start > slot.start) slot = Slot{start, 0};
  slot.count += n;
}

bool Quotas::TryCount(const std::string& tenant, Counter counter, int64_t at_ms, int64_t limit) {
  std::lock_guard lock(mu_);
  Slots& slots = counts_[tenant];
  Bump(slots, counter, at_ms, 0);
  if (limit > 0 && slots[counter].start == Window(counter, at_ms).first &&
      slots[counter].count >= limit) {
    return false;
  }
  Bump(slots, counter, at_ms);
  return true;
}

void Quotas::Uncount(const std::string& tenant, Counter counter, int64_t at_ms) {
  std::lock_guard lock(mu_);
  Slots& slots = counts_[tenant];
  if (slots[counter].start == Window(counter, at_ms).first && slots[counter].count > 0) {
    --slots[counter].count;
  }
}

void Quotas::Add(const std::string& tenant, Counter counter, int64_t window_start, int64_t n) {
  std::lock_guard lock(mu_);
  Bump(counts_[tenant], counter, window_start, n);
}

int64_t Quotas::Count(const std::string& tenant, Counter counter, int64_t at_ms) const {
  std::lock_guard lock(mu_);
  auto it = counts_.find(tenant);
  if (it == counts_.end()) return 0;
  const Slot& slot = it->second[counter];
  return slot.start == Window(counter, at_ms).first ? slot.count : 0;
}

bool Quotas::TryHold(const std::string& tenant, const std::string& worker, int64_t limit) {
  std::lock_guard lock(mu_);
  auto& workers = leases_[tenant];
  auto it = workers.find(worker);
  if (it == workers.end()) {
    if (limit > 0 && static_cast<int64_t>(workers.size()) >= limit) return false;
    it = workers.emplace(worker, 0).first;
  }
  ++it->second;
  return true;
}

void Quotas::Release(const std::string& tenant, const std::string& worker) {
  std::lock_guard lock(mu_);
  auto t = leases_.find(tenant);
  if (t == leases_.end()) return;
  auto it = t->second.find(worker);
  if (it == t->second.end()) return;
  if (--it->second <= 0) t->second.erase(it);
  if (t->second.empty()) leases_.erase(t);
}

int64_t Quotas::WorkersInUse(const std::string& tenant) const {
  std::lock_guard lock(mu_);
  auto t = leases_.find(tenant);
  return t == leases_.end() ? 0 : static_cast<int64_t>(t->second.size());
}

namespace {
std::string TenantKey(const std::string& tenant, const std::string& key) {
  std::string out = tenant;
  out.push_back('\0');
  return out + key;
}
}  // namespace

bool Quotas::TryRun(const std::string& tenant, bool executor, const std::string& key,
                    int64_t key_limit, int64_t tenant_limit) {
  std::lock_guard lock(mu_);
  if (executor && tenant_limit > 0) {
    auto it = executor_runs_.find(tenant);
    if (it != executor_runs_.end() && it->second >= tenant_limit) return false;
  }
  if (!key.empty() && key_limit > 0) {
    auto it = key_runs_.find(TenantKey(tenant, key));
    if (it != key_runs_.end() && it->second >= key_limit) return false;
  }
  if (executor) ++executor_runs_[tenant];
  if (!key.empty()) ++key_runs_[TenantKey(tenant, key)];
  return true;
}

void Quotas::EndRun(const std::string& tenant, bool executor, const std::string& key) {
  std::lock_guard lock(mu_);
  auto drop = [](auto& map, const std::string& k) {
    auto it = map.find(k);
    if (it != map.end() && --it->second <= 0) map.erase(it);
  };
  if (executor) drop(executor_runs_, tenant);
  if (!key.empty()) drop(key_runs_, TenantKey(tenant, key));
}

int64_t Quotas::ExecutorRuns(const std::string& tenant) const {
  std::lock_guard lock(mu_);
  auto it = executor_runs_.find(tenant);
  return it == executor_runs_.end() ? 0 : it->second;
}

int64_t Quotas::KeyRuns(const std::string& tenant, const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = key_runs_.find(TenantKey(tenant, key));
  return it == key_runs_.end() ? 0 : it->second;
}

}  // namespace runlog::services
