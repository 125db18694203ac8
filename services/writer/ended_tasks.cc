#include "services/writer/ended_tasks.h"

#include <algorithm>

#include "events/payload.h"
#include "infra/base/json.h"

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

void EndedTasks::ForgetOld(int64_t now_ms, std::vector<std::string>* forgotten) {
  auto forget = [&](std::deque<std::pair<int64_t, std::string>>& order, int64_t retention) {
    while (!order.empty() && order.front().first < now_ms - retention) {
      auto it = ended_.find(order.front().second);
      if (it != ended_.end() && it->second.ended_at_ms == order.front().first) {
        ended_.erase(it);
        if (forgotten != nullptr) forgotten->push_back(std::move(order.front().second));
      }
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

int64_t EndedTasks::MemoryBytes() const {
  // A node of the map and of an order deque each, with the strings they own.
  int64_t bytes = 0;
  for (const auto& [id, e] : ended_) {
    bytes += static_cast<int64_t>(sizeof(Ended) + 64 + 2 * id.capacity() + e.tenant_id.capacity() +
                                  e.error_code.capacity());
    if (e.keyed) bytes += events::TaskMemoryBytes(*e.keyed);
  }
  return bytes;
}

std::string EndedTasks::Export(const std::string& id) const {
  auto it = ended_.find(id);
  if (it == ended_.end()) return "";
  const Ended& e = it->second;
  events::Payload p;
  p.Int("ended_at_ms", e.ended_at_ms)
      .Str("error_code", e.error_code)
      .Str("id", id)
      .Str("status", events::StatusName(e.status))
      .Str("tenant_id", e.tenant_id);
  if (e.keyed) p.Raw("task", events::TaskToJson(*e.keyed));
  return p.Build();
}

void EndedTasks::SortAfterImport() {
  std::sort(keyed_order_.begin(), keyed_order_.end());
  std::sort(stub_order_.begin(), stub_order_.end());
}

Status EndedTasks::Import(std::string_view entry, int64_t now_ms) {
  json::Document doc;
  events::TaskStatus status;
  if (!json::Parse(entry, &doc) || !doc.IsObject() ||
      !events::ParseStatus(json::String(doc, "status"), &status) || !IsTerminal(status)) {
    return Fail(codes::kInvalidArgument, "not an ended task's entry");
  }
  const std::string id = json::String(doc, "id");
  Ended ended{json::String(doc, "tenant_id"), status, json::String(doc, "error_code"),
              json::Int(doc, "ended_at_ms"), nullptr};
  const json::Value* task = json::Find(doc, "task");
  if (ended.ended_at_ms < now_ms - (task != nullptr ? kKeyedRetentionMs : kStubRetentionMs)) {
    return {};  // past its retention: as a read of the whole log would, forget it
  }
  if (task != nullptr) {
    auto t = events::TaskFromJson(json::Write(*task));
    if (!t) return std::unexpected(t.error());
    ended.keyed = std::make_unique<const events::Task>(std::move(*t));
  }
  (ended.keyed ? keyed_order_ : stub_order_).emplace_back(ended.ended_at_ms, id);
  ended_[id] = std::move(ended);
  return {};
}

}  // namespace runlog::services
