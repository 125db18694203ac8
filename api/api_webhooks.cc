// Webhooks: POST/GET/DELETE /v1/webhooks, their deliveries and redelivery
// (docs/webhooks.md). The dispatcher (api/webhooks.h) does the sending.
#include <openssl/rand.h>

#include <algorithm>

#include "api/exchange.h"
#include "api/render.h"
#include "api/webhooks.h"
#include "events/types.h"

namespace runlog::api {
namespace {

events::Payload RenderWebhook(const services::WebhookRecord& w) {
  events::Payload p;
  p.Str("webhook_id", w.webhook_id)
      .Str("id", w.webhook_id)
      .Str("url", RedactUrl(w.url))
      .Raw("events", services::StringListJson(w.events))
      .Str("status", w.disabled.empty() ? "active" : "disabled")
      .Raw("created_at", IsoTimeJson(w.created_at_ms));
  if (!w.disabled.empty()) p.Str("disabled_reason", w.disabled);
  return p;
}

ContractContext WebhookContract(const std::string& id) {
  ContractContext contract;
  contract.actions = {Act("list_deliveries", true, "GET", "/v1/webhooks/" + id + "/deliveries"),
                      Act("list_webhooks", false, "GET", "/v1/webhooks")};
  return contract;
}

std::string NewSecret() {
  unsigned char bytes[24];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("RAND_bytes failed");
  return "whsec_" +
         services::Base64(std::string_view(reinterpret_cast<char*>(bytes), sizeof bytes));
}

}  // namespace

void Api::CreateWebhook(std::shared_ptr<Exchange> x) {
  if (!ParseBody(*x, options_.max_body_bytes, true, nullptr)) return;
  const json::Value& b = x->body;
  const json::Value* url = json::FindSet(b, "url");
  if (url == nullptr || !url->IsString()) {
    return x->Error(codes::kValidationError, "url is required: the receiver's http(s) URL",
                    R"({"field":"url"})");
  }
  if (auto s = CheckWebhookUrl(url->GetString(), options_.webhook_allow_private); !s) {
    return x->ErrorFrom(s.error());
  }
  services::WebhookRecord w;
  w.tenant_id = x->key->tenant_id;
  w.url = url->GetString();
  w.created_by = x->key->key_id;
  const json::Value* events = json::FindSet(b, "events");
  if (events == nullptr) {
    w.events = {"task.complete", "task.failed"};
  } else if (!events->IsArray() || events->Empty() || events->Size() > 20) {
    return x->Error(codes::kValidationError, "events must be a list of 1 to 20 event names",
                    R"({"field":"events"})");
  } else {
    for (const json::Value& name : events->GetArray()) {
      const auto& known = WebhookEventNames();
      if (!name.IsString() ||
          (std::string_view(name.GetString()) != "*" &&
           std::find(known.begin(), known.end(), name.GetString()) == known.end())) {
        std::string list;
        for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
        return x->Error(codes::kValidationError, "unknown event; use " + list + " or *",
                        R"({"field":"events"})");
      }
      if (std::find(w.events.begin(), w.events.end(), name.GetString()) == w.events.end()) {
        w.events.emplace_back(name.GetString());
      }
    }
  }
  const json::Value* secret = json::FindSet(b, "secret");
  bool generated = false;
  if (secret == nullptr) {
    w.secret = NewSecret();
    generated = true;
  } else if (!secret->IsString() || secret->GetStringLength() < 8 ||
             secret->GetStringLength() > 256) {
    return x->Error(codes::kValidationError, "secret must be a string of 8 to 256 characters",
                    R"({"field":"secret"})");
  } else {
    w.secret = secret->GetString();
  }
  x->DropBody();
  deps_.hooks->AddWebhook(std::move(w), [x, generated](Result<services::WebhookRecord> r) {
    if (!r) return x->ErrorFrom(r.error());
    events::Payload body = RenderWebhook(*r);
    // A secret runlog made is shown this once; one the caller sent never is.
    if (generated) body.Str("secret", r->secret);
    x->Send(201, std::move(body), WebhookContract(r->webhook_id));
  });
}

void Api::ListWebhooks(Exchange& x) {
  std::string items = "[";
  for (const services::WebhookRecord& w : deps_.hooks->Webhooks(x.key->tenant_id)) {
    if (items.size() > 1) items += ',';
    items += RenderWebhook(w).Build();
  }
  items += ']';
  ContractContext contract;
  contract.actions = {Act("create_webhook", false, "POST", "/v1/webhooks")};
  x.Send(200, events::Payload().Raw("webhooks", items), contract);
}

void Api::GetWebhook(Exchange& x, const std::string& id) {
  auto w = deps_.hooks->Webhook(x.key->tenant_id, id);
  if (!w) return x.Error(codes::kWebhookNotFound, "no webhook " + id);
  x.Send(200, RenderWebhook(*w), WebhookContract(id));
}

void Api::DeleteWebhook(std::shared_ptr<Exchange> x, const std::string& id) {
  deps_.hooks->RemoveWebhook(x->key->tenant_id, id, "deleted", x->key->key_id, [x, id](Status s) {
    if (!s && s.error().code == codes::kNotFound) {
      return x->Error(codes::kWebhookNotFound, "no webhook " + id);
    }
    if (!s) return x->ErrorFrom(s.error());
    ContractContext contract;
    contract.actions = {Act("list_webhooks", true, "GET", "/v1/webhooks")};
    x->Send(200, events::Payload().Str("webhook_id", id).Bool("deleted", true), contract);
  });
}

void Api::ListDeliveries(Exchange& x, const std::string& id) {
  size_t limit = 100;
  if (auto it = x.call.query.find("limit"); it != x.call.query.end()) {
    char* end = nullptr;
    const long v = std::strtol(it->second.c_str(), &end, 10);
    if (it->second.empty() || *end != '\0' || v < 1 || v > 1000) {
      return x.Error(codes::kValidationError, "limit must be 1-1000", R"({"field":"limit"})");
    }
    limit = static_cast<size_t>(v);
  }
  if (!deps_.hooks->Webhook(x.key->tenant_id, id)) {
    return x.Error(codes::kWebhookNotFound, "no webhook " + id);
  }
  AfterOwnWrites(x, std::nullopt, "", [this, id, limit](Exchange& x) {
    auto rows = deps_.views->ListDeliveries(x.key->tenant_id, id);
    if (!rows) return x.ErrorFrom(rows.error());
    // Newest first.
    std::vector<std::pair<int64_t, std::string*>> order;
    for (std::string& row : *rows) {
      json::Document d;
      order.emplace_back(json::Parse(row, &d) ? json::Int(d, "updated_at_ms") : 0, &row);
    }
    std::stable_sort(order.begin(), order.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    std::string items = "[";
    for (size_t i = 0; i < order.size() && i < limit; ++i) {
      if (items.size() > 1) items += ',';
      items += *order[i].second;
    }
    items += ']';
    x.Send(200, events::Payload().Raw("deliveries", items), WebhookContract(id));
  });
}

void Api::Redeliver(std::shared_ptr<Exchange> x, const std::string& delivery_id) {
  // /webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver
  const std::string path = x->call.path;
  const size_t from = std::string("/webhooks/").size();
  const std::string webhook_id = path.substr(from, path.find('/', from) - from);
  if (!deps_.hooks->Webhook(x->key->tenant_id, webhook_id)) {
    return x->Error(codes::kWebhookNotFound, "no webhook " + webhook_id);
  }
  AfterOwnWrites(*x, std::nullopt, "", [this, webhook_id, delivery_id](Exchange& x) {
    auto row = deps_.views->GetDelivery(x.key->tenant_id, webhook_id, delivery_id);
    if (!row) return x.ErrorFrom(row.error());
    json::Document d;
    if (!*row || !json::Parse(**row, &d)) {
      return x.Error(codes::kDeliveryNotFound, "no delivery " + delivery_id);
    }
    events::Event e;
    e.type = "webhook.redeliver_requested";
    e.event_id = deps_.ids->Next("evt_");
    e.aggregate_id = services::HookStore::WebhookAggregate(x.key->tenant_id, webhook_id);
    e.tenant_id = x.key->tenant_id;
    e.timestamp_ms = deps_.clock->NowMillis();
    e.payload = events::Encode(events::WebhookRedeliverRequested{
        delivery_id, webhook_id, json::String(d, "event"), json::Int(d, "source_partition"),
        json::Int(d, "source_offset"), x.key->key_id});
    deps_.tasks->Record(
        std::move(e), [x = x.shared_from_this(), webhook_id, delivery_id](Status s) {
          if (!s) return x->ErrorFrom(s.error());
          x->Send(202, events::Payload().Str("delivery_id", delivery_id).Bool("queued", true),
                  WebhookContract(webhook_id));
        });
  });
}

}  // namespace runlog::api
