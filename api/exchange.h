#pragma once
// One call in flight: the request, the caller once authenticated, and the
// helpers that answer it. Internal to api/.

#include <chrono>
#include <optional>

#include "api/api.h"
#include "api/forwarder.h"
#include "events/payload.h"
#include "infra/base/json.h"

namespace runlog::api {

inline constexpr char kApiVersion[] = "2026-11-23";

class Api::Exchange : public std::enable_shared_from_this<Api::Exchange> {
 public:
  Exchange(Call call, std::shared_ptr<Reply> reply, const ApiDeps& deps)
      : call(std::move(call)),
        reply_(std::move(reply)),
        deps_(deps),
        start_(std::chrono::steady_clock::now()) {}

  // Answers with `body` plus "version" and the agent_contract.
  void Send(int status, events::Payload body, ContractContext contract,
            std::vector<std::pair<std::string, std::string>> headers = {}) {
    Finish(status, "application/json", Complete(std::move(body), std::move(contract)), headers);
  }

  // Renders the answer Send would give, to be sent later by SendPrepared: the
  // caller's thread does the work, not the log's (services::PrepareCallback).
  void Prepare(int status, events::Payload body, ContractContext contract,
               std::vector<std::pair<std::string, std::string>> headers = {}) {
    prepared_status_ = status;
    prepared_ = reply_->Serialize(status, "application/json",
                                  Complete(std::move(body), std::move(contract)), headers);
  }
  bool prepared() const { return prepared_.has_value(); }
  void SendPrepared() {
    Measure(prepared_status_);
    reply_->SendSerialized(std::move(*prepared_));
    prepared_.reset();
  }

  // Answers with a stream instead (server-sent events); null if the transport cannot.
  std::shared_ptr<Stream> OpenStream(const std::string& content_type) {
    Measure(200);
    return reply_->OpenStream(content_type);
  }

  // Frees the request's body once the command is built from it, on the
  // thread that parsed it (else the answering thread frees it).
  void DropBody() {
    if (deps_.cluster != nullptr) return;  // it may yet be forwarded whole
    body = json::Document();
    std::string().swap(call.body);
  }

  // {"error":{"code","message","details"}, …}
  // A 401 says how to authenticate (WWW-Authenticate); `headers` adds others
  // (a 405's Allow).
  void Error(const std::string& code, const std::string& message, std::string details = "",
             const std::string& task_id = "", int64_t retry_after = -1,
             std::vector<std::pair<std::string, std::string>> headers = {}) {
    if (code == codes::kNotOwner && Forward(details)) return;
    ContractContext contract;
    contract.error_code = code;
    contract.retry_after_seconds = retry_after;
    contract.actions = ActionsForError(code, task_id, retry_after, call.method, CallEndpoint());
    if (retry_after >= 0) headers.emplace_back("Retry-After", std::to_string(retry_after));
    if (LookupError(code).http_status == 401) {
      headers.emplace_back("WWW-Authenticate", "Bearer realm=\"runlog\"");
    }
    events::Payload error;
    error.Str("code", code)
        .Str("message", message)
        .Raw("details", details.empty() ? "{}" : details);
    Send(LookupError(code).http_status, events::Payload().Raw("error", error.Build()), contract,
         headers);
  }

  // With the retry_after_seconds its details give, if any.
  void ErrorFrom(const runlog::Error& e, const std::string& task_id = "") {
    int64_t retry_after = -1;
    if (!e.details.empty()) {
      json::ScratchDocument scratch;
      if (json::Parse(e.details, &scratch.doc())) {
        retry_after = json::Int(scratch.doc(), "retry_after_seconds", -1);
      }
    }
    Error(e.code, e.message, e.details, task_id, retry_after);
  }

  void Finish(int status, const std::string& content_type, const std::string& body,
              const std::vector<std::pair<std::string, std::string>>& headers) {
    Measure(status);
    reply_->Send(status, content_type, body, headers);
  }

  Call call;
  std::string route = "unknown";  // metrics label
  std::optional<KeyRecord> key;   // set once authenticated
  int64_t requests_this_minute = 0;
  json::Document body;  // set by ParseBody

 private:
  // The body plus "version" and the agent_contract, as JSON.
  std::string Complete(events::Payload body, ContractContext contract) {
    contract.now_ms = deps_.clock->NowMillis();
    if (key) {
      const services::Plan& plan = PlanNamed(key->plan);
      contract.plan = key->plan;
      contract.rate_limit_per_minute = plan.requests_per_minute;
      contract.requests_this_minute = requests_this_minute;
      contract.workers_limit = plan.workers;
      contract.workers_in_use = deps_.tasks->quotas().WorkersInUse(key->tenant_id);
    }
    body.Str("version", kApiVersion).Raw("agent_contract", AgentContract(contract));
    return body.Build();
  }
  // Sends the call to the node that writes the partition `details` names,
  // and its answer back as this call's; false where it cannot go.
  bool Forward(const std::string& details) {
    const ClusterDeps* cluster = deps_.cluster;
    if (cluster == nullptr || cluster->forwarder == nullptr || call.forwarded) {
      return false;
    }
    json::ScratchDocument scratch;
    if (!json::Parse(details, &scratch.doc()) || !scratch.doc().IsObject()) return false;
    const int64_t partition = json::Int(scratch.doc(), "partition", -1);
    if (partition < 0) return false;
    auto owner = cluster->owner_of(static_cast<uint32_t>(partition));
    if (!owner) return false;
    cluster->forwarder->Forward(
        *owner, call, [self = shared_from_this()](Result<Forwarder::Answer> answer) {
          if (!answer) return self->Error(codes::kUnavailable, answer.error().message, "", "", 1);
          self->Finish(answer->status, answer->content_type, answer->body, answer->headers);
        });
    return true;
  }
  // The path of the call under /v1 (call.path has its prefix taken off).
  std::string CallEndpoint() const { return "/v1" + call.path; }
  void Measure(int status) {
    if (deps_.metrics) {
      deps_.metrics->Request(
          route, status,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    }
  }

  std::shared_ptr<Reply> reply_;
  std::optional<std::string> prepared_;  // the wire bytes Prepare rendered
  int prepared_status_ = 0;
  const ApiDeps& deps_;
  std::chrono::steady_clock::time_point start_;
};

// Parses the call's body into x.body as a JSON object; answers the error and
// returns false when it cannot. `request_hash` gets SHA-256 of its canonical form.
bool ParseBody(Api::Exchange& x, size_t max_bytes, bool required, std::string* request_hash);

}  // namespace runlog::api
