#include "services/writer/ended_tasks.h"

namespace runlog::services {

void EndedTasks::Add(events::Task&& t, int64_t now_ms) {
  const bool keyed = !t.idempotency_key.empty();
  Ended ended{t.tenant_id, t.status, t.error_code, t.execution_finished_at_ms, nullptr};
  // Recovery retires tasks that ended long ago: those are not kept at all.
  if (ended.ended_at_ms < now_ms - (keyed ? kKeyedRetentionMs : kStubRetentionMs)) return;
  const std::string id = t.id;
  if (keyed) ended.keyed = std::make_unique<const events::Task>(std::move(t));
  (keyed ? keyed_order_ : stub_order_).emplace_back(ended.ended_at_ms, id);
  ended_[id] = std::move(ended);
}

void EndedTasks::ForgetOld(int64_t now_ms) {
  auto forget = [&](std::deque<std::pair<int64_t, std::string>>& order, int64_t retention) {
    while (!order.empty() && order.front().first < now_ms - retention) {
      auto it = ended_.find(order.front().second);
      if (it != ended_.end() && it->second.ended_at_ms == order.front().first) ended_.erase(it);
      order.pop_front();
    }
  };
  forget(keyed_order_, kKeyedRetentionMs);
  forget(stub_order_, kStubRetentionMs);
}

std::optional<events::Task> EndedTasks::Stub(const std::string& id,
                                             const std::string& tenant) const {
  auto it = ended_.find(id);
  if (it == ended_.end() || it->second.tenant_id != tenant) return std::nullopt;
  events::Task t;
  t.id = id;
  t.tenant_id = it->second.tenant_id;
  t.status = it->second.status;
  t.error_code = it->second.error_code;
  return t;
}

bool EndedTasks::Find(const std::string& id, const events::Task** keyed) const {
  auto it = ended_.find(id);
  if (it == ended_.end()) return false;
  *keyed = it->second.keyed.get();
  return true;
}

}  // namespace runlog::services
