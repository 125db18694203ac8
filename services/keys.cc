#include "services/keys.h"

#include <array>
#include <future>

#include "events/canonical_json.h"
#include "events/sha256.h"
#include "events/types.h"
#include "infra/base/json.h"
#include "services/task_service.h"

namespace runlog::services {
namespace {

std::string ScopesJson(const std::vector<std::string>& scopes) {
  std::string out = "[";
  for (size_t i = 0; i < scopes.size(); ++i) {
    if (i > 0) out += ",";
    events::AppendCanonicalString(scopes[i], &out);
  }
  return out + "]";
}

}  // namespace

KeyStore::KeyStore(TaskService& writers, infra::Clock& clock, infra::IdGenerator& ids)
    : writers_(writers), clock_(clock), ids_(ids) {}

void KeyStore::Insert(const std::string& hash, KeyRecord record) {
  if (HasScope(record, "admin")) has_admin_ = true;
  key_plans_.try_emplace(record.tenant_id, record.plan);
  by_hash_[hash] = std::move(record);
}

void KeyStore::Recover(const events::Event& e) {
  if (e.type == "account.plan_set") {
    auto body = events::Decode(e);
    if (!body) return;
    std::lock_guard lock(mu_);
    account_plans_[e.tenant_id] = std::get<events::AccountPlanSet>(*body).plan;
    uint64_t& sequence = plan_sequences_[e.tenant_id];
    sequence = std::max(sequence, e.sequence);
    return;
  }
  if (e.type != "key.registered") return;
  auto body = events::Decode(e);
  if (!body) return;
  const auto& key = std::get<events::KeyRegistered>(*body);
  KeyRecord record{e.aggregate_id, e.tenant_id, {}, key.plan};
  json::Document scopes;
  if (json::Parse(key.scopes, &scopes) && scopes.IsArray()) {
    for (const auto& s : scopes.GetArray()) {
      if (s.IsString()) record.scopes.push_back(s.GetString());
    }
  }
  std::lock_guard lock(mu_);
  Insert(key.key_hash, std::move(record));
}

namespace {

// The SHA-256 of a presented key, remembered for the last few keys each
// thread saw: hashing every request's key cost about 4% of an HTTP thread.
// The store is still asked for the hash every time, so what it holds
// decides, and a presented key is compared in constant time: the time taken
// says nothing about a remembered key's bytes. The reference is valid until
// the thread's next call.
const std::string& PresentedKeyHash(const std::string& presented_key) {
  struct Recent {
    std::string key, hash;
  };
  thread_local std::array<Recent, 8> recent;
  thread_local size_t next = 0;
  for (const Recent& r : recent) {
    if (r.key.size() != presented_key.size() || r.hash.empty()) continue;
    unsigned char diff = 0;
    for (size_t i = 0; i < presented_key.size(); ++i) diff |= r.key[i] ^ presented_key[i];
    if (diff == 0) return r.hash;
  }
  Recent& slot = recent[next++ % recent.size()];
  slot.key = presented_key;
  slot.hash = events::Sha256Hex(presented_key);
  return slot.hash;
}

}  // namespace

std::optional<KeyRecord> KeyStore::Lookup(const std::string& presented_key) const {
  const std::string& hash = PresentedKeyHash(presented_key);
  std::lock_guard lock(mu_);
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  KeyRecord record = it->second;
  if (auto plan = account_plans_.find(AccountOf(record.tenant_id)); plan != account_plans_.end()) {
    record.plan = plan->second;  // the account's plan, set by an admin
  }
  return record;
}

void KeyStore::SetPlan(const std::string& tenant_id, const std::string& plan,
                       const std::string& set_by, std::function<void(Status)> done) {
  if (!PlanExists(plan)) {
    return done(Fail(codes::kValidationError, "no plan named " + plan, R"({"field":"plan"})"));
  }
  events::Event e;
  {
    std::lock_guard lock(mu_);
    bool known = false;
    for (const auto& [hash, key] : by_hash_) known |= AccountOf(key.tenant_id) == tenant_id;
    if (!known) return done(Fail(codes::kNotFound, "no account " + tenant_id));
    e.sequence = ++plan_sequences_[tenant_id];
  }
  e.type = "account.plan_set";
  e.event_id = ids_.Next("evt_");
  e.aggregate_id = "account:" + tenant_id;
  e.tenant_id = tenant_id;
  e.timestamp_ms = clock_.NowMillis();
  e.payload = events::Encode(events::AccountPlanSet{plan, set_by});
  writers_.Record(std::move(e), [this, tenant_id, plan, done](Status s) {
    if (s) {
      std::lock_guard lock(mu_);
      account_plans_[tenant_id] = plan;
    }
    done(s);
  });
}

bool KeyStore::HasScope(const KeyRecord& key, const std::string& scope) {
  for (const std::string& s : key.scopes) {
    if (s == scope || s == "admin") return true;
  }
  return false;
}

void KeyStore::Append(const std::string& plaintext, KeyRecord record, RegisterCallback done) {
  const std::string hash = events::Sha256Hex(plaintext);
  events::Event e;
  e.type = "key.registered";
  e.event_id = ids_.Next("evt_");
  e.aggregate_id = record.key_id;
  e.tenant_id = record.tenant_id;
  e.sequence = 1;
  e.timestamp_ms = clock_.NowMillis();
  e.payload = events::Encode(events::KeyRegistered{hash, ScopesJson(record.scopes), record.plan});
  writers_.Record(std::move(e), [this, hash, plaintext, record, done](Status s) mutable {
    if (!s) return done(std::unexpected(s.error()));
    {
      std::lock_guard lock(mu_);
      Insert(hash, record);
    }
    done(std::make_pair(plaintext, std::move(record)));
  });
}

void KeyStore::Register(std::string tenant_id, std::vector<std::string> scopes, std::string plan,
                        RegisterCallback done, bool test) {
  if (tenant_id.empty()) tenant_id = ids_.Next("acct_");
  if (test) tenant_id = TestTenantOf(AccountOf(tenant_id));
  KeyRecord record{ids_.Next("key_"), std::move(tenant_id), std::move(scopes), std::move(plan)};
  Append(ids_.Next(test ? "rl_test_" : "rl_live_"), std::move(record), std::move(done));
}

std::string KeyStore::PlanOfTenant(const std::string& tenant) const {
  std::lock_guard lock(mu_);
  if (auto it = account_plans_.find(AccountOf(tenant)); it != account_plans_.end()) {
    return it->second;
  }
  auto it = key_plans_.find(tenant);
  return it == key_plans_.end() ? "" : it->second;
}

Result<std::string> KeyStore::EnsureAdmin(const std::string& configured) {
  {
    std::lock_guard lock(mu_);
    if (configured.empty() ? has_admin_ : by_hash_.contains(events::Sha256Hex(configured))) {
      return std::string();
    }
  }
  const std::string plaintext = configured.empty() ? ids_.Next("rl_live_") : configured;
  std::promise<Status> promise;
  Append(plaintext, KeyRecord{ids_.Next("key_"), "acct_admin", {"admin"}, "internal"},
         [&](Result<std::pair<std::string, KeyRecord>> r) {
           promise.set_value(r ? Status{} : Status(std::unexpected(r.error())));
         });
  if (auto s = promise.get_future().get(); !s) return std::unexpected(s.error());
  return configured.empty() ? plaintext : std::string();
}

bool KeyStore::Admit(const KeyRecord& key, int64_t* used, int64_t* retry_after_seconds) {
  const Plan& plan = PlanNamed(key.plan);
  const int64_t now = clock_.NowMillis();
  const int64_t minute = now / 60'000;
  std::lock_guard lock(mu_);
  Window& w = windows_[key.tenant_id];
  if (w.minute != minute) w = Window{minute, 0};
  *used = ++w.count;
  *retry_after_seconds = (60'000 - now % 60'000 + 999) / 1000;
  return plan.requests_per_minute == 0 || w.count <= plan.requests_per_minute;
}

}  // namespace runlog::services
