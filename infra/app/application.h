#pragma once
// Application: the one composition root, used by runlogd and by the tests'
// in-process server alike, so the order things start and stop in is the
// order that is tested. Start() builds every service in dependency order —
// the log; the writers recovered from it (keys and manifests with them);
// the views caught up; the projector; the executors; the API and HTTP — and
// Stop() takes them down in reverse, draining HTTP first so that nothing
// acknowledged is lost.
//
// Lifecycle: construct, Start() once, Stop() (the destructor calls it). A
// Start that failed has already stopped what it started. Start polls
// Config::watch.cancelled while it recovers and catches up, and returns
// CANCELLED once it is set: a stop asked for before serving, not a failure.
// Thread contract: Start and Stop on one thread; the accessors are valid
// from a successful Start until Stop.

#include <memory>
#include <string>

#include "api/api.h"
#include "api/checkpoints.h"
#include "api/forwarder.h"
#include "api/http_server.h"
#include "api/kafka_commands.h"
#include "api/metrics.h"
#include "api/retention.h"
#include "api/streams.h"
#include "api/triggers.h"
#include "api/webhooks.h"
#include "events/event_log.h"
#include "events/kafka_cluster.h"
#include "events/read_watch.h"
#include "infra/base/clock.h"
#include "infra/base/ids.h"
#include "projections/projector.h"
#include "sandbox/sandbox.h"
#include "services/content_store.h"
#include "services/executor.h"
#include "services/hooks.h"
#include "services/keys.h"
#include "services/llm.h"
#include "services/manifests.h"
#include "services/task_service.h"

namespace runlog::app {

struct Config {
  events::LogOptions log;
  api::ApiOptions api;
  api::HttpOptions http;
  int executor_slots = 2;
  std::chrono::milliseconds executor_lease_margin{30'000};
  // The runlog-sandbox executable; empty: no sandbox, code steps fail.
  std::string sandbox_helper;
  // The model endpoint of the `llm` tools and the built-in planner; an empty url: none.
  services::LlmOptions llm;
  // The admin key to make sure of; empty: one is generated if none exists
  // (admin_key_generated() then returns it, once).
  std::string admin_key;
  // Writer checkpoints (services::SnapshotStore in DATA_DIR/writers): after
  // this many events or this long, and at a stop. Off: recovery reads the
  // whole log.
  bool snapshots = true;
  uint64_t checkpoint_every_events = 50'000;
  std::chrono::milliseconds checkpoint_every{10'000};
  // The nice value of the projector and of RocksDB's background threads; 0 leaves them be.
  int background_nice = 0;
  // Progress and cancellation of the recovery and catch-up in Start.
  events::ReadWatch watch;
  // The webhook dispatcher's timing (its other fields are set by Start); none:
  // webhooks are registered but not sent, and event triggers do not fire.
  std::optional<api::Dispatcher::Options> webhooks = api::Dispatcher::Options{};
  // How often expired artifacts are swept (the plans' retention_days).
  std::chrono::milliseconds retention_every{60'000};
  // Injected time (tests); null: the system clock.
  infra::Clock* clock = nullptr;
  // Cluster mode on Kafka (docs/kafka.md, "A cluster"): this node writes the
  // partitions the group gives it and forwards the rest. Off: it writes all.
  struct Cluster {
    bool enabled = false;
    std::string node_id;    // on its records and in GET /v1/cluster
    std::string advertise;  // HOST:PORT the others forward to; empty: the HTTP address
    std::chrono::milliseconds session_timeout{6000};
    std::chrono::milliseconds heartbeat{1000};
    std::string nodes_topic = "runlog.nodes";
  } cluster;
  // On Kafka: take creates and cancels from the runlog.commands topic
  // (api/kafka_commands.h), if it exists.
  bool kafka_commands = true;
  // Signed checkpoints and receipts (docs/receipts.md): the Ed25519 key's
  // file, created (mode 0600) if missing (empty: DATA_DIR/signing.key; its
  // verifier key is written beside it as signing.pub), the checkpoints'
  // origin (empty: derived from the key), and how often one is signed.
  bool checkpoints = true;
  std::string signing_key;
  std::string checkpoint_origin;
  std::chrono::milliseconds checkpoint_every_ms{10'000};
  uint64_t checkpoint_every_records = 10'000;
};

class Application {
 public:
  explicit Application(Config config);
  ~Application();

  [[nodiscard]] Status Start();
  void Stop();

  // The admin key Start generated, if it generated one (shown once).
  const std::string& admin_key_generated() const { return generated_admin_key_; }
  uint16_t port() const { return http_->port(); }
  std::string Describe() const { return log_->Describe(); }
  uint32_t partition_count() const { return log_->partition_count(); }
  events::EventLog& log() { return *log_; }
  services::KeyStore& keys() { return *keys_; }
  api::HttpServer& http() { return *http_; }
  api::Api& api() { return *api_; }
  services::TaskService& tasks() { return *tasks_; }
  projections::Projector& projector() { return *projector_; }

 private:
  Config config_;
  infra::SystemClock system_clock_;
  infra::Clock* clock_;
  infra::RandomIds ids_;
  api::Metrics metrics_;
  std::string generated_admin_key_;
  bool started_ = false;
  // In dependency order; Stop() releases them in reverse.
  std::unique_ptr<events::EventLog> log_;
  std::unique_ptr<sandbox::Sandbox> sandbox_;
  std::unique_ptr<services::LlmClient> llm_;
  std::unique_ptr<services::ToolRegistry> tools_;
  std::unique_ptr<services::SnapshotStore> snapshots_;
  std::unique_ptr<services::ContentStore> content_;
  std::unique_ptr<services::TaskService> tasks_;
  std::unique_ptr<services::KeyStore> keys_;
  std::unique_ptr<services::ManifestStore> manifests_;
  std::unique_ptr<services::SecretBox> secrets_;
  std::unique_ptr<services::HookStore> hooks_;
  std::unique_ptr<projections::Views> views_;
  std::unique_ptr<projections::Projector> projector_;
  std::unique_ptr<services::Executor> executor_;
  std::unique_ptr<api::StreamHub> streams_;
  std::unique_ptr<api::Api> api_;
  std::unique_ptr<api::Triggers> triggers_;
  std::unique_ptr<api::Retention> retention_;
  std::unique_ptr<api::Dispatcher> dispatcher_;
  std::unique_ptr<events::NoteSigner> signer_;
  std::unique_ptr<api::Checkpointer> checkpointer_;
  std::unique_ptr<api::HttpServer> http_;
  // Cluster mode.
  Status StartCluster();
  events::Payload ClusterState();
  std::vector<uint64_t> feed_from_;  // per partition: the views feed keys and hooks from here
  std::unique_ptr<api::Forwarder> forwarder_;
  api::ClusterDeps cluster_deps_;
  std::unique_ptr<events::KafkaCluster> cluster_;
  std::unique_ptr<api::KafkaCommands> commands_;
  std::thread admin_thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> admin_known_{false};  // cluster mode: the shared admin key is on the log
};

}  // namespace runlog::app
