#pragma once
// The runlog HTTP API, independent of the HTTP library: a Call in, exactly one
// answer out through Reply, possibly later and from another thread (commands
// answer once durable). Routes live under /v1 and /api/v1 (docs/api.md).
// Every answer is JSON with "version" and an agent_contract, errors included.
//
// Thread contract: Handle may be called from many threads at once.

#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "api/contract.h"
#include "api/metrics.h"
#include "events/event_log.h"
#include "events/payload.h"
#include "projections/projector.h"
#include "services/content_store.h"
#include "services/hooks.h"
#include "services/keys.h"
#include "services/manifests.h"
#include "services/task_service.h"
#include "services/tools.h"

namespace runlog::api {

// Keys and manifests are services; the API parses, authenticates and renders.
using services::AccountOf;
using services::IsTestTenant;
using services::KeyRecord;
using services::KeyStore;
using services::Manifest;
using services::ManifestStore;
using services::PlanNamed;
using services::TaskTypeSpec;
using services::ValidTypeName;

struct Call {
  std::string method;  // GET, POST, …
  std::string path;    // without the query
  std::map<std::string, std::string> query;
  std::string body;
  std::string authorization;
  std::string content_type;
  std::string idempotency_key;
  std::string last_event_id;  // an event stream's resume point
  // Signature headers of a channel's message (names lowercased).
  std::map<std::string, std::string> headers;
  bool body_too_large = false;
  // Set for calls runlog makes itself (a trigger's fire): the key they act
  // as, instead of an Authorization header.
  std::optional<KeyRecord> principal;
  // Sent by another node of the cluster (X-Runlog-Forwarded): never forwarded again.
  bool forwarded = false;
  // X-Runlog-Position: where a write this client made went ("P:OFFSET,…");
  // a read waits until the views hold it.
  std::string position;
};

// An answer written over time (server-sent events) once its headers are out.
// Thread contract: one thread at a time (the stream's own).
class Stream {
 public:
  virtual ~Stream() = default;
  // Queues `data` and sends what the socket takes without blocking.
  virtual void Write(std::string_view data) = 0;
  // Sends what waits, without blocking; false once the client is gone.
  virtual bool Flush() = 0;
  // Bytes queued and not yet taken by the socket.
  virtual size_t unsent() const = 0;
  // Ends the response and the connection.
  virtual void Close() = 0;
};

class Reply {
 public:
  using Headers = std::vector<std::pair<std::string, std::string>>;
  virtual ~Reply() = default;
  // The answer as it goes on the wire. `headers`: extra response headers
  // (Retry-After, Idempotent-Replayed). Any thread, any time before sending.
  virtual std::string Serialize(int status, const std::string& content_type,
                                const std::string& body, const Headers& headers) const = 0;
  // Sends what Serialize returned; once per reply.
  virtual void SendSerialized(std::string wire) = 0;
  void Send(int status, const std::string& content_type, const std::string& body,
            const Headers& headers) {
    SendSerialized(Serialize(status, content_type, body, headers));
  }
  // Instead of Send: a 200 with `content_type` and no length, whose body is
  // written later through the stream; the connection closes when it ends.
  // Null where the transport cannot stream.
  virtual std::shared_ptr<Stream> OpenStream(const std::string&) { return nullptr; }
};

// The answer to a call runlog makes itself (a trigger's fire, a command from
// Kafka), kept as "STATUS BODY".
class CapturedReply final : public Reply {
 public:
  std::string Serialize(int status, const std::string&, const std::string& body,
                        const Headers&) const override {
    return std::to_string(status) + " " + body;
  }
  void SendSerialized(std::string wire) override { answer_.set_value(std::move(wire)); }
  std::future<std::string> Answer() { return answer_.get_future(); }

 private:
  std::promise<std::string> answer_;
};

struct ApiOptions {
  size_t max_body_bytes = 1 << 20;
  bool allow_register = true;
  int64_t default_lease_seconds = 300;
  int64_t max_lease_seconds = 3600;
  int64_t max_wait_seconds = 30;
  std::chrono::milliseconds read_your_writes_timeout{2000};
  // The largest binary artifact or output (PUT with a Content-Type).
  size_t max_content_bytes = 64 << 20;
  // Webhook destinations on private addresses (runlogd --webhook-allow-private).
  bool webhook_allow_private = false;
};

class StreamHub;     // api/streams.h
class Triggers;      // api/triggers.h
class Forwarder;     // api/forwarder.h
class Checkpointer;  // api/checkpoints.h

// A cluster of runlogd nodes on one Kafka topic (docs/kafka.md): where a
// partition's writer is, and how a call gets there. Null outside a cluster.
struct ClusterDeps {
  // The address of the node that writes `partition`, if another node does.
  std::function<std::optional<std::string>(uint32_t partition)> owner_of;
  Forwarder* forwarder = nullptr;
  // GET /v1/cluster: the nodes, their partitions, the log's ends and the views' positions.
  std::function<events::Payload()> state;
  // Why this node cannot serve yet (partitions with no writer, the admin key
  // not written yet), or "" (readyz).
  std::function<std::string()> not_ready;
  // Signs the principal of a call runlog makes itself (a trigger's fire, a
  // command from Kafka) when it is forwarded: HMAC-SHA256 under this key,
  // derived from the admin key every node shares.
  std::string principal_key;
  // The addresses of the other live nodes that write partitions.
  std::function<std::vector<std::string>()> other_nodes;
};

struct ApiDeps {
  events::EventLog* log = nullptr;
  services::TaskService* tasks = nullptr;
  projections::Views* views = nullptr;
  projections::Projector* projector = nullptr;
  KeyStore* keys = nullptr;
  Metrics* metrics = nullptr;
  infra::Clock* clock = nullptr;
  const services::ToolRegistry* tools = nullptr;  // checks given plans
  ManifestStore* manifests = nullptr;             // agents' task types
  services::ContentStore* content = nullptr;      // artifacts' bytes
  infra::IdGenerator* ids = nullptr;              // artifact and event ids
  services::HookStore* hooks = nullptr;           // webhooks and triggers
  StreamHub* streams = nullptr;                   // live progress (server-sent events)
  Triggers* triggers = nullptr;                   // channels' messages
  const ClusterDeps* cluster = nullptr;           // other nodes; null outside a cluster
  Checkpointer* checkpoints = nullptr;            // signs checkpoints; null: none here
};

class Api {
 public:
  Api(ApiDeps deps, ApiOptions options) : deps_(deps), options_(options) {}
  void Handle(Call call, std::shared_ptr<Reply> reply);
  // The triggers fire through this Api, and it hands them channels' messages.
  void SetTriggers(Triggers* triggers) { deps_.triggers = triggers; }
  // The `data` of webhook event `name` caused by `source`: the task record
  // (with its artifact ids), or for an artifact's events the artifact with
  // its task. None when the views hold neither (deleted since).
  std::optional<std::string> WebhookData(const events::Event& source, const std::string& name);

  class Exchange;  // one call in flight (api/exchange.h)

  // Every route served, for the OpenAPI spec's test: method, full path
  // ("{id}" for each variable segment), route name and key scope ("" for
  // none). /healthz, /readyz and /metrics included.
  struct RouteInfo {
    std::string method, path, name, scope;
  };
  static std::vector<RouteInfo> RouteTable();

 private:
  // One row of the route table: method and path under /v1 ("{id}" matches
  // one segment), the route's name (metrics), the key scope it needs ("" for
  // none) and what answers it.
  struct RouteEntry {
    const char* method;
    std::vector<std::string_view> path;
    const char* name;
    const char* scope;
    void (*answer)(Api& api, std::shared_ptr<Exchange> x, const std::string& id);
  };
  static const std::vector<RouteEntry>& Routes();
  void Route(Exchange& x);
  // The dashboard's files under /ui/ (api/ui.h); "/" and "/ui" redirect there.
  void ServeUi(Exchange& x, const std::string& path);
  void CreateTask(std::shared_ptr<Exchange> x);
  void ClaimTask(std::shared_ptr<Exchange> x);
  // Cluster mode (docs/kafka.md, "Claims"): this node's partitions, then the
  // other nodes' without waiting, then a wait here that work appearing on
  // another node cuts short; again until `deadline`. `first`: no wait here yet.
  void ClusterClaim(std::shared_ptr<Exchange> x, services::ClaimTask c,
                    std::chrono::steady_clock::time_point deadline, int64_t wait, bool first);
  void RemoteClaims(std::shared_ptr<Exchange> x, services::ClaimTask c,
                    std::chrono::steady_clock::time_point deadline, int64_t wait,
                    std::shared_ptr<std::vector<std::string>> nodes, size_t next);
  void AnswerNoTask(Exchange& x, int64_t wait);
  void LeaseCommand(std::shared_ptr<Exchange> x, const std::string& id, const std::string& verb);
  void CancelTask(std::shared_ptr<Exchange> x, const std::string& id);
  void ReplayTask(std::shared_ptr<Exchange> x, const std::string& id);
  // /v1/checkpoints/… and receipts (api/api_checkpoints.cc).
  void GetCheckpointKey(Exchange& x);
  void GetLatestCheckpoint(Exchange& x);
  void GetConsistency(Exchange& x);
  void GetReceipt(Exchange& x, const std::string& id);
  void ReadReceipt(Exchange& x, const std::string& id);
  void RegisterAgent(std::shared_ptr<Exchange> x, const std::string& agent_id);
  void GetAgent(Exchange& x, const std::string& agent_id);
  static events::Payload RenderAgent(const Manifest& manifest);
  // Runs `read` once the views have applied every write already acknowledged
  // on `partition` (on every partition if none), so that a client reads its
  // own writes; answers VIEW_LAGGING after read_your_writes_timeout. Never
  // blocks the HTTP thread: when the views must catch up first, `read` runs
  // later on the projector's thread.
  void AfterOwnWrites(Exchange& x, std::optional<uint32_t> partition, const std::string& id,
                      std::function<void(Exchange&)> read);
  // Artifacts (api/api_artifacts.cc). CheckArtifact validates one {type,
  // data} (an output's {content} if not `typed`) and gives its bytes, its data
  // against its type's schema in `tenant`'s manifests, if one declares it;
  // StoreArtifacts checks them all and puts their bytes in the content store
  // with one synced write; StoreArtifactList does it for a complete's `artifacts`.
  Result<services::NewArtifact> CheckArtifact(const std::string& tenant, const json::Value& spec,
                                              const std::string& field, bool typed,
                                              std::string* bytes);
  Result<std::vector<services::NewArtifact>> StoreArtifacts(
      const std::string& tenant, const std::vector<const json::Value*>& specs,
      const std::string& field, bool typed);
  Result<std::vector<services::NewArtifact>> StoreArtifactList(const std::string& tenant,
                                                               const json::Value* list);
  void AddArtifact(std::shared_ptr<Exchange> x, const std::string& task_id);
  void CreateOutput(std::shared_ptr<Exchange> x);
  // Binary content: PUT /v1/tasks/{id}/artifacts/{type} and PUT /v1/outputs
  // with the bytes as the body and their Content-Type; GET …/{id}/content.
  Result<services::NewArtifact> StoreContent(Exchange& x, const std::string& type, bool typed);
  void PutArtifactContent(std::shared_ptr<Exchange> x, const std::string& type);
  void PutOutputContent(std::shared_ptr<Exchange> x);
  void GetArtifactContent(Exchange& x, const std::string& id);
  void GetArtifact(Exchange& x, const std::string& id);
  void ListArtifacts(Exchange& x);
  void DeleteArtifact(Exchange& x, const std::string& id);
  // POST /v1/artifacts/{id}/approve or /reject: `decision` is approved or rejected.
  void DecideApproval(std::shared_ptr<Exchange> x, const std::string& id,
                      const std::string& decision);
  // Webhooks (api/api_webhooks.cc).
  void CreateWebhook(std::shared_ptr<Exchange> x);
  void ListWebhooks(Exchange& x);
  void GetWebhook(Exchange& x, const std::string& id);
  void DeleteWebhook(std::shared_ptr<Exchange> x, const std::string& id);
  void ListDeliveries(Exchange& x, const std::string& id);
  void Redeliver(std::shared_ptr<Exchange> x, const std::string& delivery_id);
  // Triggers (api/api_triggers.cc); `state`: active, paused or deleted.
  void CreateTrigger(std::shared_ptr<Exchange> x);
  void ListTriggers(Exchange& x);
  void GetTrigger(Exchange& x, const std::string& id);
  void SetTriggerState(std::shared_ptr<Exchange> x, const std::string& id,
                       const std::string& state);
  void ListFires(Exchange& x, const std::string& id);
  void ChannelInbound(Exchange& x, const std::string& id);
  // Server-sent events (api/streams.h): one task's, or the tenant's (`task_id` empty).
  void StreamEvents(Exchange& x, const std::string& task_id);
  void GetTask(Exchange& x, const std::string& id, bool trace);
  void ReadTask(Exchange& x, const std::string& id, bool trace);
  void ListTasks(Exchange& x);
  // `filters`: the query's filters as a query string ("status=…&"), for the next page.
  void ListPage(Exchange& x, const projections::ListQuery& q, const std::string& filters);
  void ReplayRead(std::shared_ptr<Exchange> x, const std::string& id);
  void RegisterKey(std::shared_ptr<Exchange> x);
  void SetAccountPlan(std::shared_ptr<Exchange> x, const std::string& account_id);
  // A complete refused because the task ended: 200 (Idempotent-Replayed) if
  // it ended succeeded under the same lease with the same result, else `refusal`.
  void RepeatedComplete(std::shared_ptr<Exchange> x, const services::LeaseRef& ref,
                        const std::string& result, const Error& refusal);
  // GET /v1/usage: the usage view, by day, type or agent.
  void Usage(Exchange& x);
  // GET /v1/tasks/usage: the account's month, in Artexion's shape.
  void AccountUsage(Exchange& x);
  void Readyz(Exchange& x);
  void ClusterState(Exchange& x);
  // Answers a command of `kind` ("create", "claim", "heartbeat", …) once it
  // is durable: with what AnswerPrepare rendered for it, if anything.
  void AnswerCommand(std::shared_ptr<Exchange> x, Result<services::CommandResult> r,
                     const std::string& kind);
  // The services::PrepareCallback of a command of `kind`: renders its answer early.
  services::PrepareCallback AnswerPrepare(std::shared_ptr<Exchange> x, std::string kind);
  // The answer to a command that succeeded: sent now, or only prepared.
  void AnswerSuccess(Exchange& x, const events::Task& t, bool replayed, const std::string& kind,
                     bool prepare_only);

  ApiDeps deps_;
  ApiOptions options_;
  struct Deleting {
    std::mutex mu;
    std::set<std::string> ids;  // artifacts whose deletion is in flight
  };
  std::unique_ptr<Deleting> deleting_ = std::make_unique<Deleting>();
};

}  // namespace runlog::api
