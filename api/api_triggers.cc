// Triggers: POST/GET/DELETE /v1/triggers, pause and resume, their fires,
// and channels' inbound messages (docs/triggers.md). api/triggers.h fires them.
#include "api/exchange.h"
#include "api/render.h"
#include "api/triggers.h"
#include "services/cron.h"

namespace runlog::api {
namespace {

// The trigger as its spec gave it, plus for an active schedule the next time
// it fires after `now_ms`.
events::Payload RenderTrigger(const services::TriggerRecord& t, int64_t now_ms) {
  json::Document spec;
  events::Payload p;
  const bool parsed = json::Parse(t.spec, &spec) && spec.IsObject();
  if (parsed) {
    for (const auto& m : spec.GetObject()) {
      p.Raw(m.name.GetString(), events::CanonicalText(m.value));
    }
  }
  p.Str("trigger_id", t.trigger_id)
      .Str("id", t.trigger_id)
      .Str("state", t.state)
      .Raw("created_at", IsoTimeJson(t.created_at_ms));
  if (parsed && t.kind == "schedule" && t.state == "active") {
    auto cron = services::ParseCron(json::String(spec, "schedule"));
    auto zone = services::LoadZone(json::String(spec, "timezone", "UTC"));
    if (cron && zone) {
      if (auto next = services::NextFire(*cron, *zone, now_ms)) {
        p.Raw("next_fire_at", IsoTimeJson(*next));
      }
    }
  }
  if (t.kind == "channel") p.Str("inbound_url", "/v1/channels/" + t.trigger_id + "/inbound");
  return p;
}

ContractContext TriggerContract(const std::string& id) {
  ContractContext contract;
  contract.actions = {Act("list_fires", true, "GET", "/v1/triggers/" + id + "/fires"),
                      Act("list_triggers", false, "GET", "/v1/triggers")};
  return contract;
}

}  // namespace

void Api::CreateTrigger(std::shared_ptr<Exchange> x) {
  if (!ParseBody(*x, options_.max_body_bytes, true, nullptr)) return;
  services::TriggerRecord t;
  std::string secret;
  auto spec = CheckTriggerSpec(x->body, &t.kind, &secret);
  if (!spec) return x->ErrorFrom(spec.error());
  t.tenant_id = x->key->tenant_id;
  t.spec = std::move(*spec);
  t.secret = std::move(secret);
  t.created_by = x->key->key_id;
  x->DropBody();
  deps_.hooks->AddTrigger(
      std::move(t), [x, clock = deps_.clock](Result<services::TriggerRecord> r) {
        if (!r) return x->ErrorFrom(r.error());
        x->Send(201, RenderTrigger(*r, clock->NowMillis()), TriggerContract(r->trigger_id));
      });
}

void Api::ListTriggers(Exchange& x) {
  std::string items = "[";
  for (const services::TriggerRecord& t : deps_.hooks->Triggers(x.key->tenant_id)) {
    if (items.size() > 1) items += ',';
    items += RenderTrigger(t, deps_.clock->NowMillis()).Build();
  }
  items += ']';
  ContractContext contract;
  contract.actions = {Act("create_trigger", false, "POST", "/v1/triggers")};
  x.Send(200, events::Payload().Raw("triggers", items), contract);
}

void Api::GetTrigger(Exchange& x, const std::string& id) {
  auto t = deps_.hooks->Trigger(x.key->tenant_id, id);
  if (!t) return x.Error(codes::kTriggerNotFound, "no trigger " + id);
  x.Send(200, RenderTrigger(*t, deps_.clock->NowMillis()), TriggerContract(id));
}

void Api::SetTriggerState(std::shared_ptr<Exchange> x, const std::string& id,
                          const std::string& state) {
  deps_.hooks->SetTriggerState(
      x->key->tenant_id, id, state, x->key->key_id,
      [x, id, state, clock = deps_.clock](Result<services::TriggerRecord> r) {
        if (!r && r.error().code == codes::kNotFound) {
          return x->Error(codes::kTriggerNotFound, "no trigger " + id);
        }
        if (!r) return x->ErrorFrom(r.error());
        if (state == "deleted") {
          ContractContext contract;
          contract.actions = {Act("list_triggers", true, "GET", "/v1/triggers")};
          return x->Send(200, events::Payload().Str("trigger_id", id).Bool("deleted", true),
                         contract);
        }
        x->Send(200, RenderTrigger(*r, clock->NowMillis()), TriggerContract(id));
      });
}

void Api::ListFires(Exchange& x, const std::string& id) {
  if (!deps_.hooks->Trigger(x.key->tenant_id, id)) {
    return x.Error(codes::kTriggerNotFound, "no trigger " + id);
  }
  AfterOwnWrites(x, std::nullopt, "", [this, id](Exchange& x) {
    auto rows = deps_.views->ListFires(x.key->tenant_id, id);
    if (!rows) return x.ErrorFrom(rows.error());
    std::string items = "[";
    for (const std::string& row : *rows) {
      if (items.size() > 1) items += ',';
      items += row;
    }
    items += ']';
    x.Send(200, events::Payload().Raw("fires", items), TriggerContract(id));
  });
}

void Api::ChannelInbound(Exchange& x, const std::string& id) {
  if (deps_.triggers == nullptr) return x.Error(codes::kUnavailable, "triggers are off here");
  if (x.call.body_too_large) {
    return x.Error(codes::kPayloadTooLarge, "a channel message is at most 64 KiB");
  }
  auto fired = deps_.triggers->OnMessage(id, x.call.body, x.call.headers);
  if (!fired) return x.ErrorFrom(fired.error());
  ContractContext contract;
  events::Payload body;
  body.Bool("fired", fired->fired);
  if (fired->fired) {
    body.Str("task_id", fired->task_id).Str("fire_id", fired->fire_id);
    contract.actions = {Act("get_task", true, "GET", "/v1/tasks/" + fired->task_id)};
  }
  x.Send(fired->fired ? 202 : 200, std::move(body), contract);
}

}  // namespace runlog::api
