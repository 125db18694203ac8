#include "services/writer/ready_index.h"

#include <cstdlib>

namespace runlog::services {

namespace {
std::string Keyed(std::string head, const events::Task& t) {
  head.push_back('\0');
  head += t.concurrency_key;
  head.push_back('\0');
  head += std::to_string(t.max_concurrency);
  return head;
}

// Calls `fn` with each queue of `tenant` among `types` (any type if empty):
// a type's plain queue and its queues by concurrency key.
template <class Map, class Fn>
void ForQueues(const Map& queues, const std::string& tenant, const std::vector<std::string>& types,
               Fn&& fn) {
  if (types.empty()) {
    for (auto it = queues.lower_bound({tenant, ""});
         it != queues.end() && it->first.first == tenant; ++it) {
      fn(*it);
    }
    return;
  }
  for (const std::string& type : types) {
    for (auto it = queues.lower_bound({tenant, type});
         it != queues.end() && it->first.first == tenant && it->first.second.starts_with(type) &&
         (it->first.second.size() == type.size() || it->first.second[type.size()] == '\0');
         ++it) {
      fn(*it);
    }
  }
}
}  // namespace

ReadyIndex::TenantType ReadyIndex::KeyOf(const events::Task& t) {
  if (!events::WorkerRunsNext(t)) return {"", Keyed(t.tenant_id, t)};
  return {t.tenant_id, t.concurrency_key.empty() ? t.type : Keyed(t.type, t)};
}

ReadyIndex::Queue ReadyIndex::Parse(const TenantType& key) {
  Queue q;
  q.executor = key.first.empty();
  const std::string& s = key.second;
  const size_t a = s.find('\0');
  (q.executor ? q.tenant : q.type) = s.substr(0, a);
  if (!q.executor) q.tenant = key.first;
  if (a != std::string::npos) {
    const size_t b = s.find('\0', a + 1);
    q.concurrency_key = s.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
    if (b != std::string::npos) {
      q.max_concurrency = std::strtoll(s.c_str() + b + 1, nullptr, 10);
    }
  }
  return q;
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
                                    const std::vector<std::string>& types,
                                    const Blocked& blocked) const {
  const Entry* best = nullptr;
  ForQueues(ready_, tenant, types, [&](const auto& queue) {
    const std::set<Entry>& entries = queue.second;
    if (!entries.empty() && (best == nullptr || *entries.begin() < *best) &&
        !(blocked && blocked(queue.first))) {
      best = &*entries.begin();
    }
  });
  return best == nullptr ? nullptr : best->id;
}

const std::string* ReadyIndex::BestIn(const TenantType& queue) const {
  auto it = ready_.find(queue);
  return it == ready_.end() || it->second.empty() ? nullptr : it->second.begin()->id;
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
  ForQueues(summary_, tenant, types,
            [&](const auto& queue) { best = std::min(best, queue.second); });
  return best;
}

std::vector<std::pair<ReadyIndex::TenantType, ReadyIndex::Rank>> ReadyIndex::ExecutorFronts()
    const {
  std::lock_guard lock(summary_mu_);
  std::vector<std::pair<TenantType, Rank>> out;
  for (auto it = summary_.begin(); it != summary_.end() && it->first.first.empty(); ++it) {
    out.emplace_back(it->first, it->second);
  }
  return out;
}

}  // namespace runlog::services
