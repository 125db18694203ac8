#include "services/manifests.h"

#include "events/canonical_json.h"
#include "events/payload.h"
#include "events/types.h"
#include "services/plans.h"
#include "services/task_service.h"

namespace runlog::services {

bool ValidTypeName(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != ':' &&
        c != '-') {
      return false;
    }
  }
  return true;
}

namespace {

std::string Key(const std::string& a, const std::string& b) { return a + '\0' + b; }

// True if `v` holds a "$ref" anywhere: a schema may refer to itself, and
// RapidJSON's validator would then recurse without end.
bool HasRef(const json::Value& v) {
  if (v.IsObject()) {
    for (const auto& m : v.GetObject()) {
      if (std::string_view(m.name.GetString(), m.name.GetStringLength()) == "$ref" ||
          HasRef(m.value)) {
        return true;
      }
    }
  } else if (v.IsArray()) {
    for (const auto& e : v.GetArray()) {
      if (HasRef(e)) return true;
    }
  }
  return false;
}

std::unexpected<Error> Shape(const std::string& field, const std::string& message) {
  return Fail(codes::kValidationError, field + " " + message,
              events::Payload().Str("field", field).Build());
}

}  // namespace

ManifestStore::ManifestStore(TaskService& writers, infra::Clock& clock, infra::IdGenerator& ids,
                             const ToolRegistry& tools)
    : writers_(writers), clock_(clock), ids_(ids), tools_(tools) {}

Result<std::string> ManifestStore::Check(const json::Value& body) const {
  if (!body.IsObject()) return Shape("body", "must be a JSON object");
  const json::Value* types = json::Find(body, "task_types");
  if (types == nullptr || !types->IsObject() || types->MemberCount() == 0 ||
      types->MemberCount() > 100) {
    return Shape("task_types", "must be an object of 1-100 task types");
  }
  for (const auto& m : types->GetObject()) {
    const std::string type(m.name.GetString(), m.name.GetStringLength());
    const std::string field = "task_types." + type;
    if (!ValidTypeName(type)) {
      return Shape(field, "is not a task type name (1-128 of letters, digits, _ . : -)");
    }
    if (!m.value.IsObject()) return Shape(field, "must be an object");
    const json::Value* schema = json::FindSet(m.value, "input_schema");
    if (schema != nullptr && !schema->IsObject()) {
      return Shape(field + ".input_schema", "must be a JSON Schema (an object)");
    }
    if (schema != nullptr && HasRef(*schema)) {
      return Shape(field + ".input_schema", "may not use $ref (write the schema out)");
    }
    const json::Value* planner = json::FindSet(m.value, "planner");
    if (planner != nullptr && !planner->IsBool())
      return Shape(field + ".planner", "must be a bool");
    const json::Value* plan = json::FindSet(m.value, "plan");
    if (plan != nullptr && planner != nullptr && planner->GetBool()) {
      return Shape(field, "has a plan template and a planner; give one");
    }
    if (plan == nullptr) continue;
    if (const json::Value* limits = json::FindSet(*plan, "limits");
        limits != nullptr && !limits->IsObject()) {
      return Shape(field + ".plan.limits", "must be an object");
    }
    auto checked = services::CheckPlan(*plan, 100, tools_);
    if (!checked) return Shape(field + ".plan", checked.error().message);
    if (!checked->failures.empty()) {
      return Fail(codes::kInvalidManifest,
                  "the plan template of " + type + " fails plan validation; see details.failures",
                  events::Payload()
                      .Str("field", field + ".plan")
                      .Raw("failures", checked->failures)
                      .Build());
    }
  }
  // Artifact types: {"<type>": {"schema": <JSON Schema>}}.
  if (const json::Value* artifacts = json::FindSet(body, "artifact_types")) {
    if (!artifacts->IsObject() || artifacts->MemberCount() > 100) {
      return Shape("artifact_types", "must be an object of up to 100 artifact types");
    }
    for (const auto& m : artifacts->GetObject()) {
      const std::string type(m.name.GetString(), m.name.GetStringLength());
      const std::string field = "artifact_types." + type;
      if (!ValidTypeName(type)) {
        return Shape(field, "is not a type name (1-128 of letters, digits, _ . : -)");
      }
      if (!m.value.IsObject()) return Shape(field, "must be an object");
      const json::Value* schema = json::FindSet(m.value, "schema");
      if (schema != nullptr && !schema->IsObject()) {
        return Shape(field + ".schema", "must be a JSON Schema (an object)");
      }
      if (schema != nullptr && HasRef(*schema)) {
        return Shape(field + ".schema", "may not use $ref (write the schema out)");
      }
      const json::Value* approval = json::FindSet(m.value, "requires_approval");
      if (approval != nullptr && !approval->IsBool()) {
        return Shape(field + ".requires_approval", "must be a bool");
      }
      const json::Value* days = json::FindSet(m.value, "approval_expires_days");
      if (days != nullptr && (!days->IsInt64() || days->GetInt64() < 1 || days->GetInt64() > 365)) {
        return Shape(field + ".approval_expires_days", "must be an integer from 1 to 365");
      }
    }
  }
  std::string text;
  if (auto s = events::WriteCanonical(body, &text); !s) return Shape("body", s.error().message);
  return text;
}

std::shared_ptr<const Manifest> ManifestStore::Build(const std::string& agent_id,
                                                     const json::Value& body, std::string text,
                                                     int64_t registered_at_ms) {
  auto manifest = std::make_shared<Manifest>();
  manifest->agent_id = agent_id;
  manifest->text = std::move(text);
  manifest->registered_at_ms = registered_at_ms;
  for (const auto& m : json::Find(body, "task_types")->GetObject()) {
    TaskTypeSpec spec;
    if (const json::Value* schema = json::FindSet(m.value, "input_schema")) {
      auto doc = std::make_shared<json::Document>();
      doc->CopyFrom(*schema, doc->GetAllocator());
      spec.input_schema = std::make_shared<rapidjson::SchemaDocument>(*doc);
      spec.input_schema_doc = std::move(doc);
    }
    if (const json::Value* plan = json::FindSet(m.value, "plan")) {
      spec.plan = events::CanonicalText(*plan);
    }
    spec.planner = json::Bool(m.value, "planner");
    manifest->task_types.emplace(std::string(m.name.GetString(), m.name.GetStringLength()),
                                 std::move(spec));
  }
  if (const json::Value* artifacts = json::FindSet(body, "artifact_types")) {
    for (const auto& m : artifacts->GetObject()) {
      ArtifactTypeSpec spec;
      if (const json::Value* schema = json::FindSet(m.value, "schema")) {
        auto doc = std::make_shared<json::Document>();
        doc->CopyFrom(*schema, doc->GetAllocator());
        spec.schema = std::make_shared<rapidjson::SchemaDocument>(*doc);
        spec.schema_doc = std::move(doc);
      }
      spec.requires_approval = json::Bool(m.value, "requires_approval");
      spec.approval_expires_days = json::Int(m.value, "approval_expires_days", 7);
      manifest->artifact_types.emplace(std::string(m.name.GetString(), m.name.GetStringLength()),
                                       std::move(spec));
    }
  }
  return manifest;
}

void ManifestStore::Insert(const std::string& tenant_id, std::shared_ptr<const Manifest> manifest) {
  std::lock_guard lock(mu_);
  for (const auto& [type, spec] : manifest->task_types) {
    by_type_[Key(tenant_id, type)] = manifest->agent_id;
  }
  for (const auto& [type, spec] : manifest->artifact_types) {
    by_artifact_type_[Key(tenant_id, type)] = manifest->agent_id;
  }
  by_agent_[Key(tenant_id, manifest->agent_id)] = std::move(manifest);
}

void ManifestStore::Recover(const events::Event& e) {
  if (e.type != "agent.registered") return;
  auto body = events::Decode(e);
  if (!body) return;
  const auto& agent = std::get<events::AgentRegistered>(*body);
  json::Document manifest;
  if (!json::Parse(agent.manifest, &manifest)) return;
  // A manifest that no longer checks (a tool since removed) is skipped, not fatal.
  if (auto text = Check(manifest)) {
    Insert(e.tenant_id, Build(agent.agent_id, manifest, std::move(*text), e.timestamp_ms));
  }
}

void ManifestStore::Register(const std::string& tenant_id, const std::string& agent_id,
                             std::string manifest, RegisterCallback done) {
  const int64_t now = clock_.NowMillis();
  json::Document body;
  if (!json::Parse(manifest, &body)) {
    return done(Fail(runlog::codes::kInvalidArgument, "the manifest is not JSON"));
  }
  std::shared_ptr<const Manifest> built = Build(agent_id, body, manifest, now);
  events::Event e;
  e.type = "agent.registered";
  e.event_id = ids_.Next("evt_");
  e.aggregate_id = "agent:" + tenant_id + "/" + agent_id;
  e.tenant_id = tenant_id;
  e.sequence = 1;
  e.timestamp_ms = now;
  e.payload = events::Encode(events::AgentRegistered{agent_id, manifest});
  writers_.Record(std::move(e),
                  [this, tenant_id, manifest = std::move(built), done](Status s) mutable {
                    if (!s) return done(std::unexpected(s.error()));
                    Insert(tenant_id, manifest);
                    done(std::move(manifest));
                  });
}

std::shared_ptr<const Manifest> ManifestStore::Find(const std::string& tenant_id,
                                                    const std::string& agent_id) const {
  std::lock_guard lock(mu_);
  auto it = by_agent_.find(Key(tenant_id, agent_id));
  return it == by_agent_.end() ? nullptr : it->second;
}

Result<const TaskTypeSpec*> ManifestStore::Spec(const std::string& tenant_id,
                                                const std::string& agent_id,
                                                const std::string& type,
                                                std::shared_ptr<const Manifest>* keep) const {
  std::lock_guard lock(mu_);
  std::string agent = agent_id;
  if (agent.empty()) {
    auto t = by_type_.find(Key(tenant_id, type));
    if (t == by_type_.end()) return nullptr;
    agent = t->second;
  }
  auto it = by_agent_.find(Key(tenant_id, agent));
  if (it == by_agent_.end()) return nullptr;  // an agent without a manifest takes any type
  auto spec = it->second->task_types.find(type);
  if (spec == it->second->task_types.end()) {
    std::string known;
    for (const auto& [name, s] : it->second->task_types)
      known += (known.empty() ? "" : ", ") + name;
    return Fail(codes::kUnknownTaskType,
                "agent " + agent + " has no task type " + type + "; its types: " + known,
                events::Payload().Str("field", "type").Str("agent_id", agent).Build());
  }
  *keep = it->second;
  return &spec->second;
}

std::optional<ArtifactTypeSpec> ManifestStore::ArtifactType(const std::string& tenant_id,
                                                            const std::string& agent_id,
                                                            const std::string& type) const {
  std::lock_guard lock(mu_);
  auto declared = [&](const std::string& agent) -> std::optional<ArtifactTypeSpec> {
    auto it = by_agent_.find(Key(tenant_id, agent));
    if (it == by_agent_.end()) return std::nullopt;
    auto spec = it->second->artifact_types.find(type);
    if (spec == it->second->artifact_types.end()) return std::nullopt;
    return spec->second;
  };
  if (!agent_id.empty()) {
    if (auto spec = declared(agent_id)) return spec;
  }
  auto latest = by_artifact_type_.find(Key(tenant_id, type));
  if (latest == by_artifact_type_.end()) return std::nullopt;
  return declared(latest->second);
}

}  // namespace runlog::services
