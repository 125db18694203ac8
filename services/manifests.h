#pragma once
// Agent manifests: what an agent declares about each task type it serves —
// a JSON Schema for the task's input, and where the type's plan comes from (a
// plan template, or a planner agent). Kept like keys: an `agent.registered`
// event on the log (aggregate: the tenant and agent id) replayed at start, so
// the log stays the only truth. docs/agents.md has the shape.
//
// Thread contract: all methods are thread-safe (one mutex over the map).

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "events/event.h"
#include "infra/base/clock.h"
#include "infra/base/ids.h"
#include "infra/base/json.h"
#include "infra/base/result.h"
#include "services/tools.h"

namespace runlog::services {

class TaskService;

// A task type's name: 1-128 of letters, digits and _ . : -
bool ValidTypeName(std::string_view name);

// One task type of a manifest.
struct TaskTypeSpec {
  std::shared_ptr<const json::Document> input_schema_doc;  // null: any input object
  std::shared_ptr<const rapidjson::SchemaDocument> input_schema;
  std::string plan;  // canonical {"steps":[...], "limits"?} as registered, or empty
  bool planner = false;
};

// One artifact type of a manifest: the JSON Schema its data must match.
struct ArtifactTypeSpec {
  std::shared_ptr<const json::Document> schema_doc;  // null: any data
  std::shared_ptr<const rapidjson::SchemaDocument> schema;
  bool requires_approval = false;
  int64_t approval_expires_days = 7;  // a pending approval expires after this
};

struct Manifest {
  std::string agent_id;
  std::string text;  // canonical manifest, as registered
  int64_t registered_at_ms = 0;
  std::unordered_map<std::string, TaskTypeSpec> task_types;
  std::unordered_map<std::string, ArtifactTypeSpec> artifact_types;
};

class ManifestStore {
 public:
  ManifestStore(TaskService& writers, infra::Clock& clock, infra::IdGenerator& ids,
                const ToolRegistry& tools);

  // Applies an `agent.registered` event during recovery (other events are ignored).
  void Recover(const events::Event& event);

  // Checks a manifest body: VALIDATION_ERROR (with details.field) for a wrong
  // shape, INVALID_MANIFEST (details.failures) for a plan template that fails
  // plan validation. Answers the canonical manifest.
  [[nodiscard]] Result<std::string> Check(const json::Value& body) const;

  // Stores a manifest Check() answered (replacing the agent's earlier one) once durable.
  using RegisterCallback = std::function<void(Result<std::shared_ptr<const Manifest>>)>;
  void Register(const std::string& tenant_id, const std::string& agent_id, std::string manifest,
                RegisterCallback done);

  std::shared_ptr<const Manifest> Find(const std::string& tenant_id,
                                       const std::string& agent_id) const;
  // The spec of `type`: of `agent_id`'s manifest if given, else of the
  // tenant's latest manifest that declares the type. Null if none;
  // UNKNOWN_TASK_TYPE when the named agent's manifest lacks the type.
  // Artifact type `type`: of `agent_id`'s manifest if it declares it, else
  // of the tenant's latest manifest that does; none if none.
  std::optional<ArtifactTypeSpec> ArtifactType(const std::string& tenant_id,
                                               const std::string& agent_id,
                                               const std::string& type) const;
  [[nodiscard]] Result<const TaskTypeSpec*> Spec(const std::string& tenant_id,
                                                 const std::string& agent_id,
                                                 const std::string& type,
                                                 std::shared_ptr<const Manifest>* keep) const;

 private:
  // The manifest of a checked `body`, whose canonical text is `text`.
  static std::shared_ptr<const Manifest> Build(const std::string& agent_id, const json::Value& body,
                                               std::string text, int64_t registered_at_ms);
  void Insert(const std::string& tenant_id, std::shared_ptr<const Manifest> manifest);

  TaskService& writers_;
  infra::Clock& clock_;
  infra::IdGenerator& ids_;
  const ToolRegistry& tools_;
  mutable std::mutex mu_;
  // "tenant\0agent" -> manifest; "tenant\0type" -> agent of the latest manifest with it.
  std::unordered_map<std::string, std::shared_ptr<const Manifest>> by_agent_;  // guarded by mu_
  std::unordered_map<std::string, std::string> by_type_;                       // guarded by mu_
  std::unordered_map<std::string, std::string> by_artifact_type_;  // the same, for artifact types
};

}  // namespace runlog::services
