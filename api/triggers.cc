#include "api/triggers.h"

#include <openssl/crypto.h>
#include <rapidjson/pointer.h>

#include <deque>
#include <future>
#include <regex>

#include "api/render.h"
#include "api/webhooks.h"
#include "events/canonical_json.h"
#include "events/payload.h"
#include "events/sha256.h"
#include "events/types.h"
#include "infra/base/error_codes.h"
#include "infra/base/json.h"

namespace runlog::api {
namespace {

constexpr size_t kMaxPattern = 256;
constexpr size_t kMaxMessage = 64 << 10;
constexpr size_t kMaxMatched = 4 << 10;  // bytes of a message a pattern sees
constexpr size_t kMaxCatchUp = 1000;     // fires a schedule makes up for in one go

std::unexpected<Error> Invalid(const std::string& message, const std::string& field) {
  return Fail(codes::kValidationError, message, events::Payload().Str("field", field).Build());
}

bool ValidPattern(const json::Value& v) {
  if (!v.IsString() || v.GetStringLength() == 0 || v.GetStringLength() > kMaxPattern) return false;
  try {
    std::regex re(v.GetString());
  } catch (const std::regex_error&) {
    return false;
  }
  return true;
}

bool Matches(const std::string& pattern, const std::string& text) {
  // std::regex recurses per character: only the first kMaxMatched bytes are
  // matched, so no message can exhaust the stack.
  try {
    return std::regex_search(text.substr(0, kMaxMatched), std::regex(pattern));
  } catch (const std::exception&) {
    return false;  // a regex_error, or its stack limit on a pathological pattern
  }
}

// Replaces each {"$ref": "/pointer"} in `v` by what the pointer names in `context`.
void Resolve(json::Value& v, const json::Value& context, json::Document::AllocatorType& alloc) {
  if (v.IsObject()) {
    if (v.MemberCount() == 1 && v.HasMember("$ref") && v["$ref"].IsString()) {
      rapidjson::Pointer pointer(v["$ref"].GetString());
      const json::Value* found = pointer.IsValid() ? pointer.Get(context) : nullptr;
      if (found != nullptr) {
        v.CopyFrom(*found, alloc);
      } else {
        v.SetNull();
      }
      return;
    }
    for (auto& m : v.GetObject()) Resolve(m.value, context, alloc);
  } else if (v.IsArray()) {
    for (auto& item : v.GetArray()) Resolve(item, context, alloc);
  }
}

// A reply kept for the caller in-process: the trigger's own create.
}  // namespace

std::string FireId(const std::string& trigger_id, const std::string& occasion) {
  return "fire_" + events::Sha256Hex(trigger_id + "@" + occasion).substr(0, 26);
}

Result<std::string> CheckTriggerSpec(const json::Value& body, std::string* kind,
                                     std::string* secret) {
  json::Document spec;
  spec.SetObject();
  auto& alloc = spec.GetAllocator();
  *kind = json::String(body, "kind", json::String(body, "type"));
  const json::Value* task = json::FindSet(body, "task");
  if (task == nullptr || !task->IsObject()) {
    return Invalid("task is required: the body of the task to create, as POST /v1/tasks takes it",
                   "task");
  }
  if (const json::Value* name = json::FindSet(body, "name"); name != nullptr) {
    if (!name->IsString() || name->GetStringLength() > 200) {
      return Invalid("name must be a string of up to 200 characters", "name");
    }
    spec.AddMember("name", json::Value(*name, alloc), alloc);
  }
  if (*kind == "schedule") {
    const std::string schedule = json::String(body, "schedule", json::String(body, "cron"));
    auto cron = services::ParseCron(schedule);
    if (!cron) return std::unexpected(cron.error());
    const std::string zone = json::String(body, "timezone", "UTC");
    if (auto z = services::LoadZone(zone); !z) return std::unexpected(z.error());
    const std::string catch_up = json::String(body, "catch_up", "latest");
    if (catch_up != "all" && catch_up != "latest" && catch_up != "none") {
      return Invalid("catch_up must be all, latest or none", "catch_up");
    }
    spec.AddMember("schedule", json::Value(schedule.c_str(), alloc), alloc);
    spec.AddMember("timezone", json::Value(zone.c_str(), alloc), alloc);
    spec.AddMember("catch_up", json::Value(catch_up.c_str(), alloc), alloc);
  } else if (*kind == "event") {
    const json::Value* on = json::FindSet(body, "on");
    if (on == nullptr || !on->IsObject()) {
      return Invalid("on is required: {\"artifact_type\"} or {\"status\", \"task_type\"?}", "on");
    }
    const std::string artifact = json::String(*on, "artifact_type");
    const std::string status = json::String(*on, "status");
    if (artifact.empty() == status.empty()) {
      return Invalid("on takes artifact_type or status, one of them", "on");
    }
    if (!status.empty() && status != "succeeded" && status != "failed" && status != "cancelled") {
      return Invalid("on.status must be succeeded, failed or cancelled", "on.status");
    }
    spec.AddMember("on", json::Value(*on, alloc), alloc);
  } else if (*kind == "channel") {
    const json::Value* s = json::FindSet(body, "secret");
    if (s == nullptr || !s->IsString() || s->GetStringLength() < 16 || s->GetStringLength() > 256) {
      return Invalid("a channel needs a secret of 16 to 256 characters to verify messages",
                     "secret");
    }
    *secret = s->GetString();
    if (const json::Value* match = json::FindSet(body, "match"); match != nullptr) {
      if (!match->IsObject()) return Invalid("match must be an object", "match");
      if (const json::Value* text = json::FindSet(*match, "text");
          text != nullptr && !ValidPattern(*text)) {
        return Invalid("match.text must be a regular expression of up to 256 characters",
                       "match.text");
      }
      if (const json::Value* fields = json::FindSet(*match, "fields"); fields != nullptr) {
        if (!fields->IsObject()) return Invalid("match.fields must be an object", "match.fields");
        for (const auto& f : fields->GetObject()) {
          if (!ValidPattern(f.value)) {
            return Invalid("each of match.fields must be a regular expression",
                           std::string("match.fields.") + f.name.GetString());
          }
        }
      }
      spec.AddMember("match", json::Value(*match, alloc), alloc);
    }
  } else {
    return Invalid("kind must be schedule, event or channel", "kind");
  }
  spec.AddMember("kind", json::Value(kind->c_str(), alloc), alloc);
  spec.AddMember("task", json::Value(*task, alloc), alloc);
  std::string out;
  if (!events::WriteCanonical(spec, &out))
    return Invalid("the trigger is nested too deeply", "task");
  return out;
}

void Triggers::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Triggers::Stop() {
  stopping_.store(true);
  if (thread_.joinable()) thread_.join();
}

Result<std::string> Triggers::Fire(const services::TriggerRecord& t, const std::string& occasion,
                                   const std::string& context) {
  json::Document spec, ctx;
  if (!json::Parse(t.spec, &spec) || !spec.IsObject() || !spec.HasMember("task")) {
    return Fail(codes::kInternal, "trigger " + t.trigger_id + " has no task");
  }
  if (!json::Parse(context, &ctx)) ctx.SetObject();
  json::Value task(spec["task"], spec.GetAllocator());
  Resolve(task, ctx, spec.GetAllocator());
  const std::string fire_id = FireId(t.trigger_id, occasion);
  Call call;
  call.method = "POST";
  call.path = "/v1/tasks";
  call.body = json::Write(task);
  call.content_type = "application/json";
  // Names the trigger, so that its own tasks do not set it off again.
  call.idempotency_key = "trigger:" + t.trigger_id + ":" + fire_id;
  call.principal = services::KeyRecord{
      "trigger:" + t.trigger_id, t.tenant_id, {"write"}, options_.keys->PlanOfTenant(t.tenant_id)};
  auto reply = std::make_shared<CapturedReply>();
  auto answer = reply->Answer();
  options_.api->Handle(std::move(call), reply);
  if (answer.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    return Fail(codes::kUnavailable, "the trigger's create did not answer");
  }
  const std::string wire = answer.get();
  const int status = std::atoi(wire.c_str());
  json::Document created;
  json::Parse(std::string_view(wire).substr(wire.find(' ') + 1), &created);
  const std::string task_id = created.IsObject() ? json::String(created, "id") : "";
  if (status != 200 && status != 201) {
    // The task was refused (a quota, a bad input): the fire happened, and says why.
    const std::string code = created.IsObject() && created.HasMember("error")
                                 ? json::String(created["error"], "code")
                                 : "UNKNOWN";
    // Only a server that cannot take it now is tried again; a refusal (a
    // quota, a bad input) is the fire's outcome, recorded without a task, so
    // one tenant's spent quota never holds up the log's other records.
    if (code == codes::kIdempotencyConflict) {
      // Fired before (a crash came between its task and its record), with
      // a context that renders differently now: that fire stands.
      return std::string();
    }
    if (status >= 500) {
      return Fail(codes::kUnavailable, "the trigger's task was refused for now: " + code);
    }
  }
  events::Event e;
  e.type = "trigger.fired";
  e.event_id = "evt_" + fire_id.substr(5);
  e.aggregate_id = services::HookStore::TriggerAggregate(t.tenant_id, t.trigger_id);
  e.tenant_id = t.tenant_id;
  e.timestamp_ms = options_.clock->NowMillis();
  e.payload = events::Encode(events::TriggerFired{t.trigger_id, fire_id, occasion, task_id});
  std::promise<Status> recorded;
  options_.writers->Record(std::move(e), [&](Status s) { recorded.set_value(s); });
  if (auto s = recorded.get_future().get(); !s) return std::unexpected(s.error());
  return task_id;
}

void Triggers::Loop() {
  while (!stopping_.load()) {
    Tick();
    std::this_thread::sleep_for(options_.tick);
  }
}

void Triggers::Tick() {
  const int64_t now = options_.clock->NowMillis();
  std::map<std::string, Schedule> kept;  // this tick's triggers: deleted ones drop out
  for (const services::TriggerRecord& t : options_.hooks->TriggersOfKind("schedule")) {
    if (stopping_.load()) return;
    if (t.state != "active") {
      // Paused: the times it passes are not missed, they are skipped.
      std::lock_guard lock(mu_);
      cursor_[t.tenant_id + '\0' + t.trigger_id] = now;
      continue;
    }
    if (options_.owns && !options_.owns(options_.writers->PartitionOf(
                             services::HookStore::TriggerAggregate(t.tenant_id, t.trigger_id)))) {
      continue;  // its partition's writer fires it, catching up from the views when it moves
    }
    const std::string key = t.tenant_id + '\0' + t.trigger_id;
    // Parsed once per trigger, not at every tick.
    auto parsed = schedules_.find(key);
    if (parsed == schedules_.end() || parsed->second.spec != t.spec) {
      json::Document spec;
      if (!json::Parse(t.spec, &spec) || !spec.IsObject()) continue;
      auto cron = services::ParseCron(json::String(spec, "schedule"));
      auto zone = services::LoadZone(json::String(spec, "timezone", "UTC"));
      if (!cron || !zone) continue;
      parsed = schedules_
                   .insert_or_assign(key, Schedule{t.spec, *cron, *zone,
                                                   json::String(spec, "catch_up", "latest")})
                   .first;
    }
    const Schedule& schedule = kept.insert_or_assign(key, std::move(parsed->second)).first->second;
    const services::Cron* cron = &schedule.cron;
    const absl::TimeZone* zone = &schedule.zone;
    const std::string& policy = schedule.policy;
    int64_t from;
    {
      std::lock_guard lock(mu_);
      auto it = cursor_.find(key);
      if (it == cursor_.end()) {
        // Where it left off: the latest time it fired for, else its creation.
        auto last = options_.views->LastScheduledFire(t.tenant_id, t.trigger_id);
        if (!last) continue;
        it = cursor_.emplace(key, std::max(*last, t.created_at_ms)).first;
      }
      from = it->second;
    }
    std::deque<int64_t> due;  // the latest kMaxCatchUp of them
    for (auto at = services::NextFire(*cron, *zone, from); at && *at <= now;
         at = services::NextFire(*cron, *zone, *at)) {
      due.push_back(*at);
      if (due.size() > kMaxCatchUp) due.pop_front();
    }
    if (due.empty()) continue;
    std::vector<int64_t> fire;
    for (int64_t at : due) {
      const bool missed = now - at > kLateMs;
      if (!missed || policy == "all") fire.push_back(at);
    }
    if (policy == "latest" && (fire.empty() || fire.back() != due.back())) {
      fire = {due.back()};  // of the missed ones, the latest
    }
    int64_t reached = from;
    bool failed = false;
    for (int64_t at : fire) {
      const std::string context = events::Payload()
                                      .Raw("trigger", events::Payload()
                                                          .Str("trigger_id", t.trigger_id)
                                                          .Int("scheduled_at_ms", at)
                                                          .Raw("scheduled_at", IsoTimeJson(at))
                                                          .Build())
                                      .Build();
      if (!Fire(t, std::to_string(at), context)) {
        failed = true;  // again next tick, from here
        break;
      }
      reached = at;
    }
    if (!failed) reached = due.back();  // the missed ones a policy passed over, too
    std::lock_guard lock(mu_);
    cursor_[key] = reached;
  }
  schedules_ = std::move(kept);
}

bool Triggers::OnRecord(const events::LogRecord& r) {
  const events::Event& e = r.event;
  const bool artifact = e.type == "task.artifact_created";
  const bool ended =
      e.type == "task.succeeded" || e.type == "task.failed" || e.type == "task.cancelled";
  if (!artifact && !ended) return true;
  std::vector<services::TriggerRecord> matching;
  for (services::TriggerRecord& t : options_.hooks->TriggersOfKind("event")) {
    if (t.tenant_id == e.tenant_id && t.state == "active" && e.timestamp_ms >= t.created_at_ms) {
      matching.push_back(std::move(t));
    }
  }
  if (matching.empty()) return true;
  auto task = options_.views->GetTask(e.aggregate_id, e.tenant_id);
  if (!task || !*task) return true;
  // Its own tasks do not set a trigger off again (no loops).
  std::string artifact_json = "null", artifact_type;
  if (artifact) {
    auto body = events::Decode(e);
    if (!body) return true;
    const auto& a = std::get<events::TaskArtifactCreated>(*body);
    artifact_type = a.type;
    auto bytes = options_.content->Get(a.digest);
    artifact_json =
        events::Payload()
            .Str("artifact_id", a.artifact_id)
            .Str("type", a.type)
            .Str("task_id", e.aggregate_id)
            .Raw("data", bytes && a.content_type == "application/json" ? *bytes : "null")
            .Build();
  }
  const std::string status(events::StatusName((*task)->status));
  const std::string context = events::Payload()
                                  .Raw("task", RenderTask(**task))
                                  .Raw("artifact", artifact_json)
                                  .Str("event_id", e.event_id)
                                  .Build();
  for (const services::TriggerRecord& t : matching) {
    if ((*task)->idempotency_key.starts_with("trigger:" + t.trigger_id + ":")) continue;
    json::Document spec;
    if (!json::Parse(t.spec, &spec) || !spec.IsObject() || !spec.HasMember("on")) continue;
    const json::Value& on = spec["on"];
    if (artifact) {
      if (json::String(on, "artifact_type") != artifact_type) continue;
    } else {
      if (json::String(on, "status") != status) continue;
      const std::string type = json::String(on, "task_type");
      if (!type.empty() && type != (*task)->type) continue;
    }
    if (!Fire(t, e.event_id, context)) return false;
  }
  return true;
}

Result<Triggers::Inbound> Triggers::OnMessage(const std::string& trigger_id,
                                              const std::string& body,
                                              const std::map<std::string, std::string>& headers) {
  std::optional<services::TriggerRecord> t;
  for (services::TriggerRecord& c : options_.hooks->TriggersOfKind("channel")) {
    if (c.trigger_id == trigger_id) t = std::move(c);
  }
  if (!t) return Fail(codes::kTriggerNotFound, "no channel " + trigger_id);
  auto header = [&](const std::string& name) {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  };
  // Standard Webhooks headers, or X-Runlog-Signature: sha256=<hex HMAC of the body>.
  bool verified = false;
  if (!header("webhook-signature").empty()) {
    const std::string id = header("webhook-id"), ts = header("webhook-timestamp");
    const int64_t age = options_.clock->NowMillis() / 1000 - std::atoll(ts.c_str());
    if (!id.empty() && !ts.empty() && age < 300 && age > -300) {
      for (const auto& [name, value] :
           SignatureHeaders(t->secret, id, std::atoll(ts.c_str()), body)) {
        if (name != "webhook-signature") continue;
        // Each of the space-separated signatures, compared in constant time.
        const std::string given = header("webhook-signature");
        for (size_t at = 0; at <= given.size();) {
          const size_t end = std::min(given.find(' ', at), given.size());
          verified |= end - at == value.size() &&
                      CRYPTO_memcmp(given.data() + at, value.data(), value.size()) == 0;
          at = end + 1;
        }
      }
    }
  } else if (const std::string sig = header("x-runlog-signature"); sig.starts_with("sha256=")) {
    for (const auto& [name, value] : SignatureHeaders(t->secret, "", 0, body)) {
      if (name == "X-Ariftly-Signature" && value.size() == sig.size() - 7) {
        verified = CRYPTO_memcmp(value.data(), sig.data() + 7, value.size()) == 0;
      }
    }
  }
  if (!verified || t->secret.empty()) {
    return Fail(codes::kBadSignature,
                "the message's signature does not verify with the channel's secret: sign it with "
                "X-Runlog-Signature: sha256=<hex HMAC-SHA256 of the body> or the Standard "
                "Webhooks headers");
  }
  if (t->state != "active") return Inbound{};
  if (body.size() > kMaxMessage) {
    return Fail(codes::kPayloadTooLarge, "a channel message is at most 64 KiB");
  }
  json::Document message;
  if (!json::ParseUntrusted<rapidjson::kParseIterativeFlag>(body, &message) ||
      !message.IsObject()) {
    message.SetObject();
    message.AddMember("text", json::Value(body.c_str(), message.GetAllocator()),
                      message.GetAllocator());
  }
  json::Document spec;
  json::Parse(t->spec, &spec);
  if (spec.IsObject() && spec.HasMember("match") && spec["match"].IsObject()) {
    const json::Value& match = spec["match"];
    if (const json::Value* text = json::FindSet(match, "text"); text != nullptr) {
      if (!Matches(text->GetString(), json::String(message, "text"))) return Inbound{};
    }
    if (const json::Value* fields = json::FindSet(match, "fields"); fields != nullptr) {
      for (const auto& f : fields->GetObject()) {
        rapidjson::Pointer pointer(f.name.GetString());
        const json::Value* v = pointer.IsValid() ? pointer.Get(message) : nullptr;
        if (v == nullptr) v = json::FindSet(message, f.name.GetString());
        if (v == nullptr || !v->IsString() || !Matches(f.value.GetString(), v->GetString())) {
          return Inbound{};
        }
      }
    }
  }
  const std::string occasion = events::Sha256Hex(body);
  json::Document context;
  context.SetObject();
  context.AddMember("message", json::Value(message, context.GetAllocator()),
                    context.GetAllocator());
  auto task = Fire(*t, occasion, json::Write(context));
  if (!task) return std::unexpected(task.error());
  return Inbound{true, *task, FireId(t->trigger_id, occasion)};
}

}  // namespace runlog::api
