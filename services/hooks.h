#pragma once
// Webhooks and triggers as registered: each a record on the log
// (`webhook.registered` / `webhook.removed`, `trigger.created` /
// `trigger.state_set`, docs/events.md) appended through its partition's
// writer and replayed at start, like keys and manifests. Their secrets go on
// the log sealed (services/secret_box.h) and are held here unsealed, for the
// dispatcher and the channels; no answer ever shows them.
//
// Bounded: at most kMaxWebhooks webhooks and kMaxTriggers triggers a tenant.
// Thread contract: all methods are thread-safe (one mutex over the maps).

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "events/event.h"
#include "infra/base/clock.h"
#include "infra/base/ids.h"
#include "infra/base/result.h"
#include "services/secret_box.h"

namespace runlog::services {

class TaskService;

// A canonical JSON array of strings (a webhook's events as the log and the API show them).
std::string StringListJson(const std::vector<std::string>& items);

struct WebhookRecord {
  std::string tenant_id, webhook_id, url;
  std::vector<std::string> events;
  std::string secret;  // unsealed
  std::string created_by;
  int64_t created_at_ms = 0;
  std::string disabled;  // "" while active; "gone" once its receiver answered 410
};

struct TriggerRecord {
  std::string tenant_id, trigger_id, kind;  // kind: schedule, event or channel
  std::string spec;                         // canonical JSON, without the secret
  std::string secret;                       // a channel's, unsealed
  std::string state = "active";             // active or paused
  std::string created_by;
  int64_t created_at_ms = 0;
};

class HookStore {
 public:
  static constexpr size_t kMaxWebhooks = 50;
  static constexpr size_t kMaxTriggers = 200;

  HookStore(TaskService& writers, infra::Clock& clock, infra::IdGenerator& ids,
            const SecretBox& box);

  // Applies a webhook or trigger record during recovery (others are ignored).
  void Recover(const events::Event& event);

  // LIMIT_EXCEEDED past kMaxWebhooks; answers once durable.
  void AddWebhook(WebhookRecord record, std::function<void(Result<WebhookRecord>)> done);
  // reason: "deleted" (by `by`) or "gone". NOT_FOUND for an unknown id.
  void RemoveWebhook(const std::string& tenant_id, const std::string& webhook_id,
                     const std::string& reason, const std::string& by,
                     std::function<void(Status)> done);
  std::optional<WebhookRecord> Webhook(const std::string& tenant_id, const std::string& id) const;
  std::vector<WebhookRecord> Webhooks(const std::string& tenant_id) const;
  // The active webhooks of the tenant that receive `event`.
  std::vector<WebhookRecord> Subscribers(const std::string& tenant_id,
                                         const std::string& event) const;

  void AddTrigger(TriggerRecord record, std::function<void(Result<TriggerRecord>)> done);
  // state: active, paused or deleted. NOT_FOUND for an unknown id.
  void SetTriggerState(const std::string& tenant_id, const std::string& trigger_id,
                       const std::string& state, const std::string& by,
                       std::function<void(Result<TriggerRecord>)> done);
  std::optional<TriggerRecord> Trigger(const std::string& tenant_id, const std::string& id) const;
  std::vector<TriggerRecord> Triggers(const std::string& tenant_id) const;
  // Every tenant's triggers of `kind` (the scheduler's and the dispatcher's view).
  std::vector<TriggerRecord> TriggersOfKind(const std::string& kind) const;

  // The aggregate of a webhook's or a trigger's records.
  static std::string WebhookAggregate(const std::string& tenant, const std::string& id) {
    return "webhook:" + tenant + "/" + id;
  }
  static std::string TriggerAggregate(const std::string& tenant, const std::string& id) {
    return "trigger:" + tenant + "/" + id;
  }

 private:
  events::Event NewRecord(const std::string& tenant, std::string aggregate);
  // Appends `e` through its writer and applies it here once durable.
  void Append(events::Event e, std::function<void(Status)> done);
  void Apply(const events::Event& event);  // requires mu_

  TaskService& writers_;
  infra::Clock& clock_;
  infra::IdGenerator& ids_;
  const SecretBox& box_;
  mutable std::mutex mu_;
  // tenant \0 id -> record; guarded by mu_.
  std::map<std::string, WebhookRecord> webhooks_;
  std::map<std::string, TriggerRecord> triggers_;
};

}  // namespace runlog::services
