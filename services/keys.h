#pragma once
// API keys and tenants. A key is shown once, at creation; only its SHA-256 is
// kept, as a `key.registered` event on the log (aggregate: the key id, tenant:
// its account), appended by the writer of its partition like every record,
// so keys survive restarts and the log stays the only truth.
//
// Plans: the per-minute request limit of each tenant (docs/api.md).
// Thread contract: all methods are thread-safe (one mutex over the maps).

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "events/event.h"
#include "infra/base/clock.h"
#include "infra/base/ids.h"
#include "infra/base/result.h"
#include "services/account_plans.h"

namespace runlog::services {

class TaskService;

// Test keys (rl_test_…) of an account work in a tenant of their own, the
// account's id + "-test": same API, apart from its live tasks and not counted
// in its usage (docs/tenancy.md). Generated account ids never contain '-'.
inline std::string TestTenantOf(const std::string& account) { return account + "-test"; }
inline bool IsTestTenant(const std::string& tenant) { return tenant.ends_with("-test"); }
inline std::string AccountOf(const std::string& tenant) {
  return IsTestTenant(tenant) ? tenant.substr(0, tenant.size() - 5) : tenant;
}

struct KeyRecord {
  std::string key_id;
  std::string tenant_id;
  std::vector<std::string> scopes;  // admin, write, read, worker
  std::string plan;                 // free, basic, pro, agency, internal
};

class KeyStore {
 public:
  KeyStore(TaskService& writers, infra::Clock& clock, infra::IdGenerator& ids);

  // Applies a key event from the log during recovery.
  void Recover(const events::Event& event);

  std::optional<KeyRecord> Lookup(const std::string& presented_key) const;
  static bool HasScope(const KeyRecord& key, const std::string& scope);

  // Creates a key (and a new account when `tenant_id` is empty); answers the
  // plaintext key once it is durable.
  using RegisterCallback = std::function<void(Result<std::pair<std::string, KeyRecord>>)>;
  // A test key (`test`): rl_test_…, in the account's test tenant.
  void Register(std::string tenant_id, std::vector<std::string> scopes, std::string plan,
                RegisterCallback done, bool test = false);
  // The plan of `tenant`: its account's, else that of its first key; "" if it has no key.
  std::string PlanOfTenant(const std::string& tenant) const;
  // Makes sure an admin key exists: `configured` (RUNLOG_ADMIN_KEY) if given,
  // else a generated one. Returns the plaintext of a newly generated key, or "".
  [[nodiscard]] Result<std::string> EnsureAdmin(const std::string& configured);

  // Sets the plan of account `tenant_id` (an `account.plan_set` event): its
  // keys' plan from then on. NOT_FOUND for an account without keys,
  // INVALID_ARGUMENT for a plan not in the table.
  void SetPlan(const std::string& tenant_id, const std::string& plan, const std::string& set_by,
               std::function<void(Status)> done);

  // Counts a request of `tenant` against its plan; false when over the limit.
  // `used` and `retry_after_seconds` describe the current minute.
  bool Admit(const KeyRecord& key, int64_t* used, int64_t* retry_after_seconds);

 private:
  void Insert(const std::string& hash, KeyRecord record);  // requires mu_
  void Append(const std::string& plaintext, KeyRecord record, RegisterCallback done);

  TaskService& writers_;
  infra::Clock& clock_;
  infra::IdGenerator& ids_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, KeyRecord> by_hash_;  // guarded by mu_
  bool has_admin_ = false;                              // guarded by mu_
  // By account, guarded by mu_: the plan an admin set (once durable), and the
  // sequence of its account's last account.plan_set (taken when appending).
  std::unordered_map<std::string, std::string> account_plans_;
  std::unordered_map<std::string, uint64_t> plan_sequences_;
  std::unordered_map<std::string, std::string> key_plans_;  // by tenant: its first key's plan
  struct Window {
    int64_t minute = 0;
    int64_t count = 0;
  };
  std::unordered_map<std::string, Window> windows_;  // guarded by mu_: per tenant
};

}  // namespace runlog::services
