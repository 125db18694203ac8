#include "services/writer/ready_index.h"

namespace runlog::services {

ReadyIndex::TenantType ReadyIndex::KeyOf(const events::Task& t) {
  return events::WorkerRunsNext(t) ? TenantType{t.tenant_id, t.type} : TenantType{};
}

void ReadyIndex::Add(const std::string& id, const TenantType& where, int64_t priority,
                     int64_t queued_at_ms) {
  auto [node, added] = where_.try_emplace(id);
  if (!added) return;
  auto queue = ready_.try_emplace(where).first;
  node->second = Where{queue, -priority, next_seq_++, queued_at_ms, deadlines_.end()};
  queue->second.insert(Entry{-priority, node->second.seq, &node->first});
}

void ReadyIndex::Remove(const std::string& id) {
  auto it = where_.find(id);
  if (it == where_.end()) return;
  const Where& w = it->second;
  if (w.deadline != deadlines_.end()) deadlines_.erase(w.deadline);
  w.queue->second.erase(Entry{w.neg_priority, w.seq, nullptr});
  if (w.queue->second.empty()) ready_.erase(w.queue);  // no other Where points at it
  where_.erase(it);
}

const std::string* ReadyIndex::Best(const std::string& tenant,
                                    const std::vector<std::string>& types) const {
  const Entry* best = nullptr;
  auto consider = [&](const std::set<Entry>& entries) {
    if (!entries.empty() && (best == nullptr || *entries.begin() < *best)) {
      best = &*entries.begin();
    }
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
  return best == nullptr ? nullptr : best->id;
}

namespace {
// Removes and returns the entries of `timers` due at `now_ms`, oldest first.
std::vector<std::pair<int64_t, std::string>> TakeDueFrom(
    std::multimap<int64_t, std::string>& timers, int64_t now_ms) {
  std::vector<std::pair<int64_t, std::string>> due;
  while (!timers.empty() && timers.begin()->first <= now_ms) {
    due.emplace_back(timers.begin()->first, std::move(timers.begin()->second));
    timers.erase(timers.begin());
  }
  return due;
}
}  // namespace

std::vector<std::pair<int64_t, std::string>> ReadyIndex::TakeDue(int64_t now_ms) {
  return TakeDueFrom(expiry_, now_ms);
}

void ReadyIndex::AddQueueDeadline(int64_t at_ms, const std::string& id) {
  auto it = where_.find(id);
  if (it == where_.end()) return;
  if (it->second.deadline != deadlines_.end()) deadlines_.erase(it->second.deadline);
  it->second.deadline = deadlines_.emplace(at_ms, id);
}

std::vector<std::pair<int64_t, std::string>> ReadyIndex::TakeDueDeadlines(int64_t now_ms) {
  for (auto d = deadlines_.begin(); d != deadlines_.end() && d->first <= now_ms; ++d) {
    if (auto it = where_.find(d->second); it != where_.end())
      it->second.deadline = deadlines_.end();
  }
  return TakeDueFrom(deadlines_, now_ms);
}

void ReadyIndex::Publish() {
  std::map<TenantType, Rank> summary;
  for (const auto& [tenant_type, entries] : ready_) {
    const Entry& best = *entries.begin();
    summary[tenant_type] = {best.neg_priority, where_.at(*best.id).queued_at_ms};
  }
  std::lock_guard lock(summary_mu_);
  summary_.swap(summary);
}

ReadyIndex::Rank ReadyIndex::Front(const std::string& tenant,
                                   const std::vector<std::string>& types) const {
  std::lock_guard lock(summary_mu_);
  Rank best = kNone;
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
