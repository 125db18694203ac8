#include "services/hooks.h"

#include "events/payload.h"
#include "events/types.h"
#include "infra/base/error_codes.h"
#include "infra/base/json.h"
#include "services/task_service.h"

namespace runlog::services {
namespace {

std::string KeyOf(const std::string& tenant, const std::string& id) { return tenant + '\0' + id; }

}  // namespace

std::string StringListJson(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const std::string& item : items) {
    if (out.size() > 1) out += ',';
    events::AppendCanonicalString(item, &out);
  }
  return out + "]";
}

namespace {

// LIMIT_EXCEEDED once `tenant` has `max` of `records`.
template <class Record>
Status Room(const std::map<std::string, Record>& records, const std::string& tenant, size_t max,
            const std::string& what) {
  size_t mine = 0;
  for (auto it = records.lower_bound(KeyOf(tenant, ""));
       it != records.end() && it->second.tenant_id == tenant; ++it) {
    ++mine;
  }
  if (mine < max) return {};
  return Fail(codes::kLimitExceeded, "a tenant has at most " + std::to_string(max) + " " + what,
              R"({"limit":")" + what + R"(","max":)" + std::to_string(max) + "}");
}

}  // namespace

HookStore::HookStore(TaskService& writers, infra::Clock& clock, infra::IdGenerator& ids,
                     const SecretBox& box)
    : writers_(writers), clock_(clock), ids_(ids), box_(box) {}

events::Event HookStore::NewRecord(const std::string& tenant, std::string aggregate) {
  events::Event e;
  e.event_id = ids_.Next("evt_");
  e.aggregate_id = std::move(aggregate);
  e.tenant_id = tenant;
  e.sequence = 0;
  e.timestamp_ms = clock_.NowMillis();
  return e;
}

void HookStore::Append(events::Event e, std::function<void(Status)> done) {
  auto applied = std::make_shared<events::Event>(e);
  writers_.Record(std::move(e), [this, applied, done = std::move(done)](Status s) {
    if (s) {
      std::lock_guard lock(mu_);
      Apply(*applied);
    }
    done(s);
  });
}

void HookStore::Recover(const events::Event& e) {
  if (!e.type.starts_with("webhook.") && !e.type.starts_with("trigger.")) return;
  std::lock_guard lock(mu_);
  Apply(e);
}

void HookStore::Apply(const events::Event& e) {
  auto body = events::Decode(e);
  if (!body) return;
  if (const auto* w = std::get_if<events::WebhookRegistered>(&*body)) {
    WebhookRecord r{e.tenant_id, w->webhook_id, w->url, {}, "", w->created_by, e.timestamp_ms, ""};
    json::Document list;
    if (json::Parse(w->events, &list) && list.IsArray()) {
      for (const auto& name : list.GetArray()) {
        if (name.IsString()) r.events.emplace_back(name.GetString());
      }
    }
    auto secret = box_.Unseal(w->secret_sealed);
    r.secret = secret ? *secret : "";  // a lost key: the webhook cannot sign (docs/webhooks.md)
    webhooks_[KeyOf(e.tenant_id, w->webhook_id)] = std::move(r);
  } else if (const auto* gone = std::get_if<events::WebhookRemoved>(&*body)) {
    auto it = webhooks_.find(KeyOf(e.tenant_id, gone->webhook_id));
    if (it == webhooks_.end()) return;
    if (gone->reason == "deleted") {
      webhooks_.erase(it);
    } else {
      it->second.disabled = gone->reason;
    }
  } else if (const auto* t = std::get_if<events::TriggerCreated>(&*body)) {
    TriggerRecord r{e.tenant_id, t->trigger_id, t->kind,       t->spec,
                    "",          "active",      t->created_by, e.timestamp_ms};
    if (!t->secret_sealed.empty()) {
      auto secret = box_.Unseal(t->secret_sealed);
      r.secret = secret ? *secret : "";
    }
    triggers_[KeyOf(e.tenant_id, t->trigger_id)] = std::move(r);
  } else if (const auto* s = std::get_if<events::TriggerStateSet>(&*body)) {
    auto it = triggers_.find(KeyOf(e.tenant_id, s->trigger_id));
    if (it == triggers_.end()) return;
    if (s->state == "deleted") {
      triggers_.erase(it);
    } else {
      it->second.state = s->state;
    }
  }
}

void HookStore::AddWebhook(WebhookRecord record, std::function<void(Result<WebhookRecord>)> done) {
  {
    std::lock_guard lock(mu_);
    if (auto room = Room(webhooks_, record.tenant_id, kMaxWebhooks, "webhooks"); !room) {
      return done(std::unexpected(room.error()));
    }
  }
  record.webhook_id = ids_.Next("wh_");
  events::Event e =
      NewRecord(record.tenant_id, WebhookAggregate(record.tenant_id, record.webhook_id));
  e.type = "webhook.registered";
  e.payload = events::Encode(
      events::WebhookRegistered{record.webhook_id, record.url, StringListJson(record.events),
                                box_.Seal(record.secret), record.created_by});
  record.created_at_ms = e.timestamp_ms;
  Append(std::move(e), [record = std::move(record), done](Status s) mutable {
    if (!s) return done(std::unexpected(s.error()));
    done(std::move(record));
  });
}

void HookStore::RemoveWebhook(const std::string& tenant_id, const std::string& webhook_id,
                              const std::string& reason, const std::string& by,
                              std::function<void(Status)> done) {
  if (!Webhook(tenant_id, webhook_id)) {
    return done(Fail(codes::kNotFound, "no webhook " + webhook_id));
  }
  events::Event e = NewRecord(tenant_id, WebhookAggregate(tenant_id, webhook_id));
  e.type = "webhook.removed";
  e.payload = events::Encode(events::WebhookRemoved{webhook_id, reason, by});
  Append(std::move(e), std::move(done));
}

std::optional<WebhookRecord> HookStore::Webhook(const std::string& tenant_id,
                                                const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = webhooks_.find(KeyOf(tenant_id, id));
  if (it == webhooks_.end()) return std::nullopt;
  return it->second;
}

std::vector<WebhookRecord> HookStore::Webhooks(const std::string& tenant_id) const {
  std::lock_guard lock(mu_);
  std::vector<WebhookRecord> out;
  for (auto it = webhooks_.lower_bound(KeyOf(tenant_id, ""));
       it != webhooks_.end() && it->second.tenant_id == tenant_id; ++it) {
    out.push_back(it->second);
  }
  return out;
}

std::vector<WebhookRecord> HookStore::Subscribers(const std::string& tenant_id,
                                                  const std::string& event) const {
  std::lock_guard lock(mu_);
  std::vector<WebhookRecord> out;
  for (auto it = webhooks_.lower_bound(KeyOf(tenant_id, ""));
       it != webhooks_.end() && it->second.tenant_id == tenant_id; ++it) {
    if (!it->second.disabled.empty()) continue;
    for (const std::string& name : it->second.events) {
      if (name == event || name == "*") {
        out.push_back(it->second);
        break;
      }
    }
  }
  return out;
}

void HookStore::AddTrigger(TriggerRecord record, std::function<void(Result<TriggerRecord>)> done) {
  {
    std::lock_guard lock(mu_);
    if (auto room = Room(triggers_, record.tenant_id, kMaxTriggers, "triggers"); !room) {
      return done(std::unexpected(room.error()));
    }
  }
  record.trigger_id = ids_.Next("trg_");
  events::Event e =
      NewRecord(record.tenant_id, TriggerAggregate(record.tenant_id, record.trigger_id));
  e.type = "trigger.created";
  e.payload = events::Encode(events::TriggerCreated{
      record.trigger_id, record.kind, record.spec,
      record.secret.empty() ? "" : box_.Seal(record.secret), record.created_by});
  record.created_at_ms = e.timestamp_ms;
  Append(std::move(e), [record = std::move(record), done](Status s) mutable {
    if (!s) return done(std::unexpected(s.error()));
    done(std::move(record));
  });
}

void HookStore::SetTriggerState(const std::string& tenant_id, const std::string& trigger_id,
                                const std::string& state, const std::string& by,
                                std::function<void(Result<TriggerRecord>)> done) {
  auto found = Trigger(tenant_id, trigger_id);
  if (!found) return done(Fail(codes::kNotFound, "no trigger " + trigger_id));
  events::Event e = NewRecord(tenant_id, TriggerAggregate(tenant_id, trigger_id));
  e.type = "trigger.state_set";
  e.payload = events::Encode(events::TriggerStateSet{trigger_id, state, by});
  found->state = state;
  Append(std::move(e), [found = std::move(*found), done](Status s) mutable {
    if (!s) return done(std::unexpected(s.error()));
    done(std::move(found));
  });
}

std::optional<TriggerRecord> HookStore::Trigger(const std::string& tenant_id,
                                                const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = triggers_.find(KeyOf(tenant_id, id));
  if (it == triggers_.end()) return std::nullopt;
  return it->second;
}

std::vector<TriggerRecord> HookStore::Triggers(const std::string& tenant_id) const {
  std::lock_guard lock(mu_);
  std::vector<TriggerRecord> out;
  for (auto it = triggers_.lower_bound(KeyOf(tenant_id, ""));
       it != triggers_.end() && it->second.tenant_id == tenant_id; ++it) {
    out.push_back(it->second);
  }
  return out;
}

std::vector<TriggerRecord> HookStore::TriggersOfKind(const std::string& kind) const {
  std::lock_guard lock(mu_);
  std::vector<TriggerRecord> out;
  for (const auto& [key, t] : triggers_) {
    if (t.kind == kind) out.push_back(t);
  }
  return out;
}

}  // namespace runlog::services
