// Artifacts and outputs: a task's typed, immutable results, made by the
// worker holding its lease (POST /v1/tasks/{id}/artifacts, or `artifacts`
// in complete); outputs, artifacts without a task (POST /v1/outputs); read,
// listed and deleted by the tenant. The bytes go to the content store before
// the event that names their digest is appended (docs/api.md, "Artifacts").

#include "api/api.h"
#include "api/exchange.h"
#include "api/render.h"
#include "events/canonical_json.h"
#include "infra/base/json.h"
#include "services/content_store.h"

namespace runlog::api {
namespace {

constexpr size_t kMaxArtifactsPerCall = 100;

// The approval status a reader sees: a pending one past its time is expired.
std::string ApprovalStatus(const projections::Artifact& a, int64_t now_ms) {
  if (a.approval_status == "pending" && now_ms >= a.approval_expires_at_ms) return "expired";
  return a.approval_status;
}

events::Payload RenderArtifact(const projections::Artifact& a, const std::string* data,
                               int64_t now_ms) {
  events::Payload p;
  p.Str("artifact_id", a.id)
      .Str("id", a.id)
      .Str("type", a.type)
      .Str("content_type", a.content_type)
      .Int("size", a.size)
      .Str("digest", "sha256:" + a.digest)
      .Raw("created_at", IsoTimeJson(a.created_at_ms));
  if (a.task_id.empty()) {
    p.Raw("task_id", "");
  } else {
    p.Str("task_id", a.task_id);
  }
  // JSON data inline; other content through its own URL.
  if (data != nullptr) p.Raw("data", a.content_type == "application/json" ? *data : "null");
  p.Str("content_url", "/v1/artifacts/" + a.id + "/content");
  if (!a.approval_status.empty()) {
    p.Str("approval_status", ApprovalStatus(a, now_ms))
        .Raw("approval_expires_at", IsoTimeJson(a.approval_expires_at_ms));
    if (!a.decided_by.empty()) {
      p.Str("decided_by", a.decided_by)
          .Str("comment", a.comment)
          .Raw("decided_at", IsoTimeJson(a.decided_at_ms));
    }
  }
  return p;
}

// An artifact just added to `task_id`, as its view will show it.
events::Payload RenderNew(const services::NewArtifact& a, const std::string& task_id,
                          int64_t now_ms) {
  projections::Artifact view{a.artifact_id,  task_id, a.type, a.digest,
                             a.content_type, a.size,  now_ms};
  if (a.approval_expires_at_ms != 0) {
    view.approval_status = "pending";
    view.approval_expires_at_ms = a.approval_expires_at_ms;
  }
  return RenderArtifact(view, nullptr, now_ms);
}

// A record about an artifact that is not a task event: an output's creation
// (its aggregate the output), a decision, a deletion (on the artifact's task).
events::Event ArtifactRecord(infra::IdGenerator& ids, int64_t now_ms, const std::string& tenant,
                             const std::string& aggregate_id, uint64_t sequence,
                             const events::EventBody& body) {
  events::Event e;
  e.type = std::string(events::TypeOf(body));
  e.event_id = ids.Next("evt_");
  e.aggregate_id = aggregate_id;
  e.tenant_id = tenant;
  e.sequence = sequence;
  e.timestamp_ms = now_ms;
  e.payload = events::Encode(body);
  return e;
}

ContractContext ArtifactContract(const std::string& id) {
  ContractContext contract;
  contract.actions = {Act("get_artifact", true, "GET", "/v1/artifacts/" + id),
                      Act("list_artifacts", false, "GET", "/v1/artifacts")};
  return contract;
}

}  // namespace

std::optional<std::string> Api::WebhookData(const events::Event& source, const std::string&) {
  const std::string& tenant = source.tenant_id;
  std::string artifact_id;
  if (source.type == "task.artifact_created" || source.type == "artifact.approval_decided") {
    auto body = events::Decode(source);
    if (!body) return std::nullopt;
    if (const auto* a = std::get_if<events::TaskArtifactCreated>(&*body)) {
      artifact_id = a->artifact_id;
    }
    if (const auto* d = std::get_if<events::ArtifactApprovalDecided>(&*body)) {
      artifact_id = d->artifact_id;
    }
  }
  std::optional<events::Task> task;
  if (events::IsTaskEvent(source) || source.type == "artifact.approval_decided") {
    auto found = deps_.views->GetTask(source.aggregate_id, tenant);
    if (found && *found) task = std::move(**found);
  }
  if (artifact_id.empty()) {
    if (!task) return std::nullopt;
    return RenderTask(*task);
  }
  auto found = deps_.views->GetArtifact(tenant, artifact_id);
  if (!found || !*found) return std::nullopt;
  events::Payload p = RenderArtifact(**found, nullptr, deps_.clock->NowMillis());
  if (task) p.Raw("task", RenderTask(*task));
  return p.Build();
}

Result<services::NewArtifact> Api::CheckArtifact(const std::string& tenant, const json::Value& spec,
                                                 const std::string& field, bool typed,
                                                 std::string* bytes) {
  services::NewArtifact a;
  if (!spec.IsObject()) {
    return Fail(codes::kValidationError, field + " must be an object {type, data}",
                events::Payload().Str("field", field).Build());
  }
  a.type = json::String(spec, "type", typed ? "" : "output");
  if (typed && (a.type.empty() || a.type.size() > 128 || !ValidTypeName(a.type))) {
    return Fail(codes::kValidationError,
                field + ".type must be a type name of 1-128 letters, digits and _ . : -",
                events::Payload().Str("field", field + ".type").Build());
  }
  const char* member = typed ? "data" : "content";
  const json::Value* data = json::FindSet(spec, member);
  if (data == nullptr) {
    return Fail(codes::kValidationError, field + "." + member + " is required (any JSON value)",
                events::Payload().Str("field", field + "." + member).Build());
  }
  // An artifact type an agent's manifest declares: its data must match its
  // schema, and it may wait for a person's approval.
  const auto declared = typed && deps_.manifests != nullptr
                            ? deps_.manifests->ArtifactType(tenant, "", a.type)
                            : std::nullopt;
  if (declared && declared->requires_approval) {
    a.approval_expires_at_ms =
        deps_.clock->NowMillis() + declared->approval_expires_days * 86'400'000;
  }
  if (declared && declared->schema != nullptr) {
    if (auto problems = services::CheckSchema(*declared->schema, *data); !problems.empty()) {
      const std::string where = field + "." + member + problems[0].path;
      return Fail(codes::kSchemaMismatch,
                  where + " does not match the schema of artifact type " + a.type + ": " +
                      problems[0].message,
                  events::Payload().Str("field", where).Build());
    }
  }
  *bytes = events::CanonicalText(*data);
  a.artifact_id = deps_.ids->NextSortable(typed ? "art_" : "out_");
  a.content_type = "application/json";
  a.size = static_cast<int64_t>(bytes->size());
  return a;
}

Result<std::vector<services::NewArtifact>> Api::StoreArtifacts(
    const std::string& tenant, const std::vector<const json::Value*>& specs,
    const std::string& field, bool typed) {
  std::vector<services::NewArtifact> out;
  std::vector<std::string> contents(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string where =
        specs.size() == 1 && field != "artifacts" ? field : field + "[" + std::to_string(i) + "]";
    auto a = CheckArtifact(tenant, *specs[i], where, typed, &contents[i]);
    if (!a) return std::unexpected(a.error());
    out.push_back(std::move(*a));
  }
  if (out.empty()) return out;
  auto digests = deps_.content->PutAll(contents);  // one synced write for all
  if (!digests) return std::unexpected(digests.error());
  for (size_t i = 0; i < out.size(); ++i) out[i].digest = std::move((*digests)[i]);
  return out;
}

Result<std::vector<services::NewArtifact>> Api::StoreArtifactList(const std::string& tenant,
                                                                  const json::Value* list) {
  if (list == nullptr) return std::vector<services::NewArtifact>();
  if (!list->IsArray() || list->Size() > kMaxArtifactsPerCall) {
    return Fail(codes::kValidationError,
                "artifacts must be an array of up to " + std::to_string(kMaxArtifactsPerCall) +
                    " {type, data}",
                R"({"field":"artifacts"})");
  }
  std::vector<const json::Value*> specs;
  for (const json::Value& spec : list->GetArray()) specs.push_back(&spec);
  return StoreArtifacts(tenant, specs, "artifacts", true);
}

void Api::AddArtifact(std::shared_ptr<Exchange> x, const std::string& task_id) {
  if (!ParseBody(*x, options_.max_body_bytes, true, nullptr)) return;
  auto stored = StoreArtifacts(x->key->tenant_id, {&x->body}, "body", true);
  if (!stored) return x->ErrorFrom(stored.error(), task_id);
  services::AddArtifacts c{{x->key->tenant_id, x->key->key_id, x->key->plan},
                           {task_id, json::String(x->body, "lease_id"),
                            json::String(x->body, "worker_id", x->key->key_id)},
                           *stored};
  x->DropBody();
  const int64_t now = deps_.clock->NowMillis();
  deps_.tasks->Submit(std::move(c), [this, x, task_id, a = stored->front(),
                                     now](Result<services::CommandResult> r) {
    if (!r) {
      deps_.content->Release(a.digest);  // no artifact names it after all
      return x->ErrorFrom(r.error(), task_id);
    }
    x->Send(201, RenderNew(a, task_id, now), ArtifactContract(a.artifact_id));
  });
}

Result<services::NewArtifact> Api::StoreContent(Exchange& x, const std::string& type, bool typed) {
  if (x.call.body_too_large) {
    return Fail(codes::kPayloadTooLarge,
                "content is at most " + std::to_string(options_.max_content_bytes) + " bytes");
  }
  if (typed && (type.empty() || type.size() > 128 || !ValidTypeName(type))) {
    return Fail(codes::kValidationError,
                "the artifact type must be a type name of 1-128 letters, digits and _ . : -",
                R"({"field":"type"})");
  }
  services::NewArtifact a;
  a.type = typed ? type : "output";
  a.content_type = x.call.content_type.empty() ? "application/octet-stream" : x.call.content_type;
  if (a.content_type.size() > 255 || a.content_type.find_first_of("\r\n") != std::string::npos) {
    return Fail(codes::kValidationError, "Content-Type is not valid",
                R"({"field":"Content-Type"})");
  }
  const auto declared = typed && deps_.manifests != nullptr
                            ? deps_.manifests->ArtifactType(x.key->tenant_id, "", a.type)
                            : std::nullopt;
  if (declared && declared->schema != nullptr) {
    return Fail(codes::kSchemaMismatch,
                "artifact type " + a.type +
                    " declares a JSON Schema: send it as {type, data} to POST, not as content",
                R"({"field":"body"})");
  }
  if (declared && declared->requires_approval) {
    a.approval_expires_at_ms =
        deps_.clock->NowMillis() + declared->approval_expires_days * 86'400'000;
  }
  if (a.content_type.starts_with("application/json")) {
    // JSON content is served inline as `data`: it must be JSON, and is kept canonical.
    json::Document parsed;
    std::string canonical;
    if (!json::ParseUntrusted<rapidjson::kParseIterativeFlag | rapidjson::kParseFullPrecisionFlag>(
            x.call.body, &parsed) ||
        !events::WriteCanonical(parsed, &canonical)) {
      return Fail(codes::kInvalidJson, "the content says application/json but is not JSON",
                  R"({"field":"body"})");
    }
    a.content_type = "application/json";
    x.call.body = std::move(canonical);
  }
  auto digest = deps_.content->Put(x.call.body);
  if (!digest) return std::unexpected(digest.error());
  a.digest = std::move(*digest);
  a.size = static_cast<int64_t>(x.call.body.size());
  a.artifact_id = deps_.ids->NextSortable(typed ? "art_" : "out_");
  std::string().swap(x.call.body);
  return a;
}

void Api::PutArtifactContent(std::shared_ptr<Exchange> x, const std::string& type) {
  // /tasks/{task_id}/artifacts/{type}
  const std::string& path = x->call.path;
  const size_t from = std::string("/tasks/").size();
  const std::string task_id = path.substr(from, path.find('/', from) - from);
  auto stored = StoreContent(*x, type, true);
  if (!stored) return x->ErrorFrom(stored.error(), task_id);
  auto query = [&](const char* name, const std::string& fallback) {
    auto it = x->call.query.find(name);
    return it == x->call.query.end() ? fallback : it->second;
  };
  services::AddArtifacts c{{x->key->tenant_id, x->key->key_id, x->key->plan},
                           {task_id, query("lease_id", ""), query("worker_id", x->key->key_id)},
                           {*stored}};
  const int64_t now = deps_.clock->NowMillis();
  deps_.tasks->Submit(std::move(c),
                      [this, x, task_id, a = *stored, now](Result<services::CommandResult> r) {
                        if (!r) {
                          deps_.content->Release(a.digest);  // no artifact names it after all
                          return x->ErrorFrom(r.error(), task_id);
                        }
                        x->Send(201, RenderNew(a, task_id, now), ArtifactContract(a.artifact_id));
                      });
}

void Api::PutOutputContent(std::shared_ptr<Exchange> x) {
  auto stored = StoreContent(*x, "", false);
  if (!stored) return x->ErrorFrom(stored.error());
  events::Event e = ArtifactRecord(
      *deps_.ids, deps_.clock->NowMillis(), x->key->tenant_id, stored->artifact_id, 1,
      events::OutputCreated{stored->digest, stored->content_type, stored->size, x->key->key_id});
  deps_.tasks->Record(std::move(e), [this, x, a = *stored](Status s) {
    if (!s) {
      deps_.content->Release(a.digest);
      return x->ErrorFrom(s.error());
    }
    x->Send(201, events::Payload().Str("output_id", a.artifact_id).Str("id", a.artifact_id),
            ArtifactContract(a.artifact_id));
  });
}

void Api::GetArtifactContent(Exchange& x, const std::string& id) {
  AfterOwnWrites(x, std::nullopt, "", [this, id](Exchange& x) {
    auto found = deps_.views->GetArtifact(x.key->tenant_id, id);
    if (!found) return x.ErrorFrom(found.error());
    if (!*found) return x.Error(codes::kArtifactNotFound, "no artifact " + id);
    auto bytes = deps_.content->Get((*found)->digest);
    if (!bytes) return x.ErrorFrom(bytes.error());
    x.Finish(200, (*found)->content_type, *bytes,
             {{"X-Content-SHA256", (*found)->digest}, {"Cache-Control", "private, immutable"}});
  });
}

void Api::CreateOutput(std::shared_ptr<Exchange> x) {
  if (!ParseBody(*x, options_.max_body_bytes, true, nullptr)) return;
  auto outputs = StoreArtifacts(x->key->tenant_id, {&x->body}, "body", false);
  if (!outputs) return x->ErrorFrom(outputs.error());
  x->DropBody();
  const services::NewArtifact* stored = &outputs->front();
  events::Event e = ArtifactRecord(
      *deps_.ids, deps_.clock->NowMillis(), x->key->tenant_id, stored->artifact_id, 1,
      events::OutputCreated{stored->digest, stored->content_type, stored->size, x->key->key_id});
  deps_.tasks->Record(std::move(e), [x, id = stored->artifact_id](Status s) {
    if (!s) return x->ErrorFrom(s.error());
    x->Send(201, events::Payload().Str("output_id", id).Str("id", id), ArtifactContract(id));
  });
}

void Api::GetArtifact(Exchange& x, const std::string& id) {
  AfterOwnWrites(x, std::nullopt, "", [this, id](Exchange& x) {
    auto found = deps_.views->GetArtifact(x.key->tenant_id, id);
    if (!found) return x.ErrorFrom(found.error());
    if (!*found) return x.Error(codes::kArtifactNotFound, "no artifact " + id);
    // Only JSON is shown inline; other content is read from its content_url.
    std::string bytes = "null";
    if ((*found)->content_type == "application/json") {
      auto got = deps_.content->Get((*found)->digest);
      if (!got) return x.ErrorFrom(got.error());
      bytes = std::move(*got);
    }
    x.Send(200, RenderArtifact(**found, &bytes, deps_.clock->NowMillis()), ArtifactContract(id));
  });
}

void Api::ListArtifacts(Exchange& x) {
  auto query = [&](const char* name) {
    auto it = x.call.query.find(name);
    return it == x.call.query.end() ? std::string() : it->second;
  };
  const std::string approval = query("approval_status");
  if (!approval.empty() && approval != "pending" && approval != "approved" &&
      approval != "rejected" && approval != "expired") {
    return x.Error(codes::kValidationError,
                   "approval_status must be pending, approved, rejected or expired",
                   R"({"field":"approval_status"})");
  }
  AfterOwnWrites(x, std::nullopt, "",
                 [this, task_id = query("task_id"), type = query("type"), approval](Exchange& x) {
                   const int64_t now = deps_.clock->NowMillis();
                   auto list = deps_.views->ListArtifacts(
                       x.key->tenant_id, task_id, type, 500, [&](const projections::Artifact& a) {
                         return approval.empty() || ApprovalStatus(a, now) == approval;
                       });
                   if (!list) return x.ErrorFrom(list.error());
                   std::string items = "[";
                   for (const projections::Artifact& a : *list) {
                     if (items.size() > 1) items += ",";
                     items += RenderArtifact(a, nullptr, now).Build();
                   }
                   items += "]";
                   ContractContext contract;
                   contract.actions = {Act("list_tasks", false, "GET", "/v1/tasks")};
                   x.Send(200, events::Payload().Raw("artifacts", items), contract);
                 });
}

void Api::DecideApproval(std::shared_ptr<Exchange> x, const std::string& id,
                         const std::string& decision) {
  if (!ParseBody(*x, options_.max_body_bytes, false, nullptr)) return;
  const json::Value* comment = json::FindSet(x->body, "comment");
  if (comment != nullptr && (!comment->IsString() || comment->GetStringLength() > 4096)) {
    return x->Error(codes::kValidationError, "comment must be a string of up to 4096 characters",
                    R"({"field":"comment"})");
  }
  std::string text = comment != nullptr ? comment->GetString() : "";
  AfterOwnWrites(*x, std::nullopt, "", [this, id, decision, text](Exchange& x) {
    auto found = deps_.views->GetArtifact(x.key->tenant_id, id);
    if (!found) return x.ErrorFrom(found.error());
    if (!*found) return x.Error(codes::kArtifactNotFound, "no artifact " + id);
    const int64_t now = deps_.clock->NowMillis();
    if (const std::string status = ApprovalStatus(**found, now); status != "pending") {
      return x.Error(codes::kApprovalNotPending,
                     "artifact " + id + (status.empty() ? " needs no approval" : " is " + status),
                     events::Payload().Str("approval_status", status).Build());
    }
    // On the artifact's task (or output): the views apply it after the artifact.
    events::Event e = ArtifactRecord(
        *deps_.ids, now, x.key->tenant_id, (*found)->task_id.empty() ? id : (*found)->task_id, 0,
        events::ArtifactApprovalDecided{id, decision, text, x.key->key_id});
    projections::Artifact decided = **found;
    decided.approval_status = decision;
    decided.decided_by = x.key->key_id;
    decided.comment = text;
    decided.decided_at_ms = now;
    auto record = [this, x = x.shared_from_this(), decided, now,
                   e = std::make_shared<events::Event>(std::move(e))]() {
      deps_.tasks->Record(std::move(*e), [x, decided, now](Status s) {
        if (!s) return x->ErrorFrom(s.error());
        x->Send(200, RenderArtifact(decided, nullptr, now), ArtifactContract(decided.id));
      });
    };
    // The artifact of a plan's approval step: the decision finishes the step
    // first (the task's state is the truth of the wait), then is recorded.
    std::optional<services::FinishStep> finish;
    if (!decided.task_id.empty()) {
      auto task = deps_.views->GetTask(decided.task_id, x.key->tenant_id);
      if (task && *task && (*task)->status == events::TaskStatus::kRunning) {
        const events::Task& t = **task;
        for (size_t i = t.steps.size(); i > 0; --i) {
          const events::StepRecord& step = t.steps[i - 1];
          if (step.status != "running") continue;
          if (step.tool == "approval" && step.started_at_ms <= decided.created_at_ms) {
            finish = services::FinishStep{{x.key->tenant_id, ""},
                                          {t.id, t.lease.lease_id, t.lease.worker_id},
                                          static_cast<int64_t>(i)};
            finish->ok = decision == "approved";
            finish->output = events::Payload()
                                 .Str("decision", decision)
                                 .Str("artifact_id", id)
                                 .Str("comment", text)
                                 .Str("decided_by", x.key->key_id)
                                 .Build();
            if (!finish->ok) {
              finish->error_code = codes::kApprovalRejected;
              finish->error_message =
                  "artifact " + id + " was rejected" + (text.empty() ? std::string() : ": " + text);
            }
            finish->duration_ms = now - step.started_at_ms;
          }
          break;
        }
      }
    }
    if (!finish) return record();
    deps_.tasks->Submit(
        std::move(*finish), [x = x.shared_from_this(), record](Result<services::CommandResult> r) {
          if (!r) {
            return x->Error(codes::kApprovalNotPending,
                            "the approval step no longer waits: " + r.error().message,
                            R"({"approval_status":"expired"})");
          }
          record();
        });
  });
}

void Api::DeleteArtifact(Exchange& x, const std::string& id) {
  AfterOwnWrites(x, std::nullopt, "", [this, id](Exchange& x) {
    auto found = deps_.views->GetArtifact(x.key->tenant_id, id);
    if (!found) return x.ErrorFrom(found.error());
    if (!*found) return x.Error(codes::kArtifactNotFound, "no artifact " + id);
    // On the artifact's task (or output): the views apply it after the artifact.
    events::Event e = ArtifactRecord(*deps_.ids, deps_.clock->NowMillis(), x.key->tenant_id,
                                     (*found)->task_id.empty() ? id : (*found)->task_id, 0,
                                     events::ArtifactDeleted{id, x.key->key_id});
    {
      // Two deletions of one artifact at once would release its bytes twice.
      std::lock_guard lock(deleting_->mu);
      if (!deleting_->ids.insert(id).second) {
        return x.Error(codes::kArtifactNotFound, "artifact " + id + " is being deleted");
      }
    }
    deps_.tasks->Record(
        std::move(e), [this, x = x.shared_from_this(), id, digest = (*found)->digest](Status s) {
          if (s) deps_.content->Release(digest);  // its bytes go, unless another artifact has them
          {
            std::lock_guard lock(deleting_->mu);
            deleting_->ids.erase(id);
          }
          if (!s) return x->ErrorFrom(s.error());
          ContractContext contract;
          contract.actions = {Act("list_artifacts", true, "GET", "/v1/artifacts")};
          x->Send(200, events::Payload().Str("artifact_id", id).Bool("deleted", true), contract);
        });
  });
}

}  // namespace runlog::api
