#include "services/writer/ready_index.h"

namespace runlog::services {

ReadyIndex::TenantType ReadyIndex::KeyOf(const events::Task& t) {
  return events::WorkerRunsNext(t) ? TenantType{t.tenant_id, t.type} : TenantType{};
}

void ReadyIndex::Add(const events::Task& t) {
  Where w{KeyOf(t), Key{-t.priority, next_seq_++, t.id}, t.queued_at_ms};
  ready_[w.tenant_type].insert(w.key);
  where_[t.id] = std::move(w);
}

void ReadyIndex::Remove(const std::string& id) {
  auto it = where_.find(id);
  if (it == where_.end()) return;
  auto set = ready_.find(it->second.tenant_type);
  set->second.erase(it->second.key);
  if (set->second.empty()) ready_.erase(set);
  where_.erase(it);
}

const std::string* ReadyIndex::Best(const std::string& tenant,
                                    const std::vector<std::string>& types) const {
  const Key* best = nullptr;
  auto consider = [&](const std::set<Key>& keys) {
    if (!keys.empty() && (best == nullptr || *keys.begin() < *best)) best = &*keys.begin();
  };
  if (types.empty()) {
    for (auto it = ready_.lower_bound({tenant, ""});
         it != ready_.end() && it->first.first == tenant; ++it) {
      consider(it->second);
    }
  } else {
    for (const std::string& type : types) {
      if (auto it = ready_.find({tenant, type}); it != ready_.end()) consider(it->second);
    }
  }
  return best == nullptr ? nullptr : &best->id;
}

std::vector<std::pair<int64_t, std::string>> ReadyIndex::TakeDue(int64_t now_ms) {
  std::vector<std::pair<int64_t, std::string>> due;
  while (!expiry_.empty() && expiry_.begin()->first <= now_ms) {
    due.emplace_back(expiry_.begin()->first, std::move(expiry_.begin()->second));
    expiry_.erase(expiry_.begin());
  }
  return due;
}

void ReadyIndex::Publish() {
  std::map<TenantType, int64_t> summary;
  for (const auto& [tenant_type, keys] : ready_) {
    summary[tenant_type] = where_.at(keys.begin()->id).queued_at_ms;
  }
  std::lock_guard lock(summary_mu_);
  summary_.swap(summary);
}

int64_t ReadyIndex::Oldest(const std::string& tenant, const std::vector<std::string>& types) const {
  std::lock_guard lock(summary_mu_);
  int64_t best = INT64_MAX;
  if (types.empty()) {
    for (auto it = summary_.lower_bound({tenant, ""});
         it != summary_.end() && it->first.first == tenant; ++it) {
      best = std::min(best, it->second);
    }
  } else {
    for (const std::string& type : types) {
      if (auto it = summary_.find({tenant, type}); it != summary_.end()) {
        best = std::min(best, it->second);
      }
    }
  }
  return best;
}

}  // namespace runlog::services
