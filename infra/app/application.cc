#include "infra/app/application.h"

#include <sys/statvfs.h>

#include "events/kafka_log.h"
#include "events/sha256.h"
#include "infra/base/thread_priority.h"

namespace runlog::app {

Application::Application(Config config)
    : config_(std::move(config)),
      clock_(config_.clock != nullptr ? config_.clock : &system_clock_) {}

Application::~Application() { Stop(); }

Status Application::Start() {
  auto failed = [this](const std::string& what, const Error& e) -> Status {
    Stop();
    if (e.code == codes::kCancelled) return std::unexpected(e);
    return Fail(e.code, what + e.message);
  };
  const bool cluster = config_.cluster.enabled;
  if (cluster) {
    if (!config_.log.uri.starts_with("kafka://")) {
      return failed("", Error{codes::kInvalidArgument, "cluster mode needs --log kafka://…"});
    }
    config_.log.kafka_transactional = true;
    config_.log.node_id = config_.cluster.node_id;
  }
  stopping_.store(false);
  auto log = events::OpenEventLog(config_.log);
  if (!log) return failed("", log.error());
  log_ = std::move(*log);
  if (cluster && config_.admin_key.empty()) {
    return failed("", Error{codes::kInvalidArgument,
                            "cluster mode needs the admin key every node shares in "
                            "RUNLOG_ADMIN_KEY (or --single-node)"});
  }
  if (!config_.sandbox_helper.empty()) {
    sandbox_ = std::make_unique<sandbox::Sandbox>(sandbox::Options{config_.sandbox_helper});
  }
  if (!config_.llm.url.empty()) llm_ = std::make_unique<services::LlmClient>(config_.llm);
  // Code steps run in the sandbox, model calls through llm_; plans of built-in tools on the
  // executors.
  tools_ = std::make_unique<services::ToolRegistry>(sandbox_.get(), llm_.get());
  if (config_.snapshots) {
    auto snapshots = services::SnapshotStore::Open(config_.log.data_dir);
    if (!snapshots) return failed("", snapshots.error());
    snapshots_ = std::move(*snapshots);
  }
  auto content = services::ContentStore::Open(config_.log.data_dir);
  if (!content) return failed("", content.error());
  content_ = std::move(*content);
  tasks_ = std::make_unique<services::TaskService>(services::TaskService::Options{
      log_.get(), clock_, &ids_, [this](double seconds) { metrics_.AppendLatency(seconds); },
      tools_.get(), snapshots_.get(), config_.checkpoint_every_events, config_.checkpoint_every,
      cluster});
  // Keys and manifests append through the writers too: one writer a partition.
  keys_ = std::make_unique<services::KeyStore>(*tasks_, *clock_, ids_);
  manifests_ = std::make_unique<services::ManifestStore>(*tasks_, *clock_, ids_, *tools_);
  auto box = services::SecretBox::Open(config_.log.data_dir);
  if (!box) return failed("", box.error());
  secrets_ = std::move(*box);
  hooks_ = std::make_unique<services::HookStore>(*tasks_, *clock_, ids_, *secrets_);
  tasks_->SetPlanResolver(
      [this](const std::string& tenant) { return keys_->PlanOfTenant(tenant); });
  // In a cluster, keys, manifests and hooks other nodes write reach this one
  // through the views' feed, from where recovery leaves off.
  feed_from_.assign(log_->partition_count(), 0);
  for (uint32_t p = 0; cluster && p < feed_from_.size(); ++p) {
    auto end = log_->EndOffset(p);
    if (!end) return failed("", end.error());
    feed_from_[p] = *end;
  }
  if (auto s = tasks_->Recover(
          [this](const events::Event& e) {
            keys_->Recover(e);
            manifests_->Recover(e);
            hooks_->Recover(e);
          },
          config_.watch);
      !s) {
    return failed("cannot recover from the log: ", s.error());
  }
  auto views = projections::Views::Open(config_.log.data_dir);
  if (!views) return failed("", views.error());
  views_ = std::move(*views);
  projector_ = std::make_unique<projections::Projector>(
      *log_, *views_, [this, cluster](const events::Event& e, const events::Task& t) {
        metrics_.TaskEvent(e.type, static_cast<double>(e.timestamp_ms - t.queued_at_ms) / 1000.0);
        // A tenant's usage, counted once in a cluster: by the partition's owner.
        if ((e.type == "task.succeeded" || e.type == "task.failed" || e.type == "task.cancelled") &&
            (!cluster || tasks_->owns(tasks_->PartitionOf(t.id)))) {
          metrics_.TenantUsage(t.tenant_id, std::string(events::StatusName(t.status)),
                               t.tokens_used, t.cost_nanos);
        }
      });
  if (cluster) {
    projector_->SetRecordListener([this](const events::LogRecord& r) {
      const std::string& type = r.event.type;
      // Work another node's partition got wakes a claim parked here, which
      // then claims there (Api::ClusterClaim).
      if ((type == "task.queued" || type == "task.lease_expired" || type == "task.handed_off") &&
          !tasks_->owns(r.partition)) {
        tasks_->WakeParked(r.event.tenant_id, 1);
      }
      if (r.offset < feed_from_[r.partition]) return;
      keys_->Recover(r.event);
      manifests_->Recover(r.event);
      hooks_->Recover(r.event);
    });
  }
  if (auto s = projector_->CatchUp(config_.watch); !s) {
    return failed("cannot build views: ", s.error());
  }
  projector_->Start();
  tasks_->Start();
  started_ = true;
  if (!cluster) {
    auto admin = keys_->EnsureAdmin(config_.admin_key);
    if (!admin) return failed("cannot store the admin key: ", admin.error());
    generated_admin_key_ = *admin;
  }

  executor_ = std::make_unique<services::Executor>(services::Executor::Options{
      tasks_.get(), tools_.get(), clock_, config_.executor_slots, config_.executor_lease_margin,
      "executor", nullptr, content_.get(), &ids_});
  tasks_->SetCancelListener([this](const std::string& id) { executor_->OnCancelled(id); });
  if (config_.executor_slots > 0) executor_->Start();
  metrics_.SetScrapeSource([this] {
    api::Metrics::Gauges g;
    if (tasks_ == nullptr || executor_ == nullptr) return g;  // stopping
    for (uint32_t p = 0; p < tasks_->partition_count(); ++p) {
      g.writers_failed += tasks_->writer_failed(p);
    }
    g.executor_busy = executor_->busy();
    g.executor_slots = config_.executor_slots;
    struct statvfs fs {};
    if (::statvfs(config_.log.data_dir.c_str(), &fs) == 0) {
      g.data_free_bytes = static_cast<int64_t>(fs.f_bavail) * static_cast<int64_t>(fs.f_frsize);
      g.data_total_bytes = static_cast<int64_t>(fs.f_blocks) * static_cast<int64_t>(fs.f_frsize);
    }
    return g;
  });

  if (config_.checkpoints) {
    const std::string key_path =
        config_.signing_key.empty() ? config_.log.data_dir + "/signing.key" : config_.signing_key;
    auto signer = events::NoteSigner::LoadOrCreate(key_path, config_.checkpoint_origin);
    if (!signer) return failed("cannot load the signing key: ", signer.error());
    signer_ = std::move(*signer);
    // Beside the data, for `runlog audit` (a verifier pins its own copy).
    if (std::FILE* pub = std::fopen((config_.log.data_dir + "/signing.pub").c_str(), "w")) {
      std::fprintf(pub, "%s\n", signer_->key().VerifierString().c_str());
      std::fclose(pub);
    }
    checkpointer_ = std::make_unique<api::Checkpointer>(api::Checkpointer::Options{
        tasks_.get(), log_.get(), views_.get(), projector_.get(), signer_.get(), &ids_, clock_,
        log_->partition_count(), config_.checkpoint_every_ms, config_.checkpoint_every_records,
        cluster ? std::function<bool(uint32_t)>([this](uint32_t p) { return tasks_->owns(p); })
                : nullptr});
  }
  streams_ = std::make_unique<api::StreamHub>(*log_, *views_);
  api_ = std::make_unique<api::Api>(
      api::ApiDeps{log_.get(), tasks_.get(), views_.get(), projector_.get(), keys_.get(), &metrics_,
                   clock_, tools_.get(), manifests_.get(), content_.get(), &ids_, hooks_.get(),
                   streams_.get(), nullptr, cluster ? &cluster_deps_ : nullptr,
                   checkpointer_.get()},
      config_.api);
  if (checkpointer_) checkpointer_->Start();
  triggers_ = std::make_unique<api::Triggers>(api::Triggers::Options{
      api_.get(), hooks_.get(), keys_.get(), tasks_.get(), views_.get(), content_.get(), clock_,
      std::chrono::milliseconds(200),
      cluster ? std::function<bool(uint32_t)>([this](uint32_t p) { return tasks_->owns(p); })
              : nullptr});
  api_->SetTriggers(triggers_.get());
  triggers_->Start();
  retention_ = std::make_unique<api::Retention>(
      api::Retention::Options{views_.get(), tasks_.get(), content_.get(), keys_.get(), clock_,
                              &ids_, config_.retention_every});
  retention_->Start();
  if (config_.webhooks) {
    api::Dispatcher::Options d = *config_.webhooks;
    d.log = log_.get();
    d.projector = projector_.get();
    d.hooks = hooks_.get();
    d.writers = tasks_.get();
    d.clock = clock_;
    d.data_dir = config_.log.data_dir;
    d.allow_private = config_.api.webhook_allow_private;
    d.data_of = [this](const events::Event& source, const std::string& name) {
      return api_->WebhookData(source, name);
    };
    d.on_record = [this](const events::LogRecord& r, uint32_t) { return triggers_->OnRecord(r); };
    d.on_attempt = [this](const std::string& outcome, double seconds) {
      metrics_.WebhookAttempt(outcome, seconds);
    };
    if (cluster) d.owns = [this](uint32_t p) { return tasks_->owns(p); };
    dispatcher_ = std::make_unique<api::Dispatcher>(std::move(d));
    if (auto s = dispatcher_->Start(); !s) return failed("cannot start the webhooks: ", s.error());
  }
  // The RocksDBs are open and the projector and the dispatcher run: their threads exist now.
  if (config_.background_nice != 0) {
    infra::NiceThreadsNamed({"rl-project", "rl-dispatch", "rocksdb:"}, config_.background_nice);
  }
  if (cluster) {
    cluster_deps_.principal_key =
        events::Sha256Hex(std::string("runlog cluster principal") + '\0' + config_.admin_key);
    forwarder_ = std::make_unique<api::Forwarder>(cluster_deps_.principal_key);
    cluster_deps_.forwarder = forwarder_.get();
    cluster_deps_.owner_of = [this](uint32_t p) -> std::optional<std::string> {
      return cluster_ ? cluster_->OwnerAddress(p) : std::nullopt;
    };
    cluster_deps_.state = [this] { return ClusterState(); };
    cluster_deps_.not_ready = [this]() -> std::string {
      uint32_t n = 0;
      for (uint32_t p = 0; p < log_->partition_count(); ++p) {
        n += !tasks_->owns(p) && !(cluster_ && cluster_->OwnerAddress(p));
      }
      if (n > 0) {
        return std::to_string(n) + " partitions have no writer yet (the cluster is assigning them)";
      }
      if (!admin_known_.load()) return "the admin key is not on the log yet";
      return "";
    };
    cluster_deps_.other_nodes = [this] {
      std::vector<std::string> out;
      if (!cluster_) return out;
      for (const auto& n : cluster_->Nodes()) {
        if (n.id != config_.cluster.node_id && !n.left && !n.partitions.empty() &&
            std::chrono::milliseconds(n.age_ms) < config_.cluster.session_timeout) {
          out.push_back(n.advertise);
        }
      }
      return out;
    };
  }
  http_ = std::make_unique<api::HttpServer>(config_.http, *api_);
  if (auto s = http_->Start(); !s) return failed("", s.error());
  if (cluster) {
    if (auto s = StartCluster(); !s) return failed("cannot join the cluster: ", s.error());
  }
  if (config_.kafka_commands && config_.log.uri.starts_with("kafka://")) {
    commands_ = std::make_unique<api::KafkaCommands>(api::KafkaCommands::Options{
        api_.get(), keys_.get(), config_.log.uri.substr(std::string("kafka://").size()),
        config_.log.kafka_topic, "runlog.commands", "runlog.replies", "runlog.commands.dlq",
        config_.log.kafka_config, std::chrono::seconds(30), config_.cluster.session_timeout});
    if (auto s = commands_->Start(); !s) {
      std::fprintf(stderr, "runlogd: no commands from Kafka: %s\n", s.error().message.c_str());
      commands_.reset();
    }
  }
  return {};
}

Status Application::StartCluster() {
  auto* kafka = dynamic_cast<events::KafkaLog*>(log_.get());
  if (kafka == nullptr) return Fail(codes::kInvalidArgument, "cluster mode needs the Kafka log");
  if (config_.cluster.advertise.empty()) {
    config_.cluster.advertise = config_.http.host + ":" + std::to_string(http_->port());
  }
  events::KafkaCluster::Options o;
  o.brokers = config_.log.uri.substr(std::string("kafka://").size());
  o.topic = config_.log.kafka_topic;
  o.nodes_topic = config_.cluster.nodes_topic;
  o.kafka_config = config_.log.kafka_config;
  o.node_id = config_.cluster.node_id;
  o.advertise = config_.cluster.advertise;
  o.session_timeout = config_.cluster.session_timeout;
  o.heartbeat = config_.cluster.heartbeat;
  o.on_assigned = [this, kafka](uint32_t p, uint64_t handed) -> Status {
    // The previous writer is fenced first (init_transactions), then the
    // partition is read to its end.
    if (auto s = kafka->OpenWriter(p); !s) return s;
    if (auto s = tasks_->Acquire(p, config_.watch); !s) {
      kafka->CloseWriter(p);
      return s;
    }
    // Webhooks go on from where the previous owner's dispatch got to.
    if (dispatcher_) dispatcher_->TakeOver(p, handed);
    return {};
  };
  o.on_revoked = [this, kafka](uint32_t p) {
    tasks_->Release(p);
    kafka->CloseWriter(p);
  };
  o.writer_failed = [this](uint32_t p) { return tasks_->writer_failed(p); };
  o.position = [this](uint32_t p) { return dispatcher_ ? dispatcher_->cursor(p) : 0; };
  o.on_move = [this](const std::string& what, uint32_t p) {
    const int64_t owned = cluster_ ? static_cast<int64_t>(cluster_->Owned().size()) : 0;
    metrics_.PartitionMove(what, p, owned);
    const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    std::fprintf(stderr, "runlogd: node %s %s partition %u (owns %lld) at %lld ms\n",
                 config_.cluster.node_id.c_str(), what.c_str(), p, static_cast<long long>(owned),
                 static_cast<long long>(now_ms));
  };
  cluster_ = std::make_unique<events::KafkaCluster>(std::move(o));
  kafka->SetWriteGate([this](uint32_t p) { return cluster_->LeaseHolds(p); });
  if (auto s = cluster_->Start(); !s) return s;
  std::fprintf(stderr, "runlogd: node %s joined the cluster on %s, advertising %s\n",
               config_.cluster.node_id.c_str(), log_->Describe().c_str(),
               config_.cluster.advertise.c_str());
  // The shared admin key is written by whichever node owns the partition it
  // lands on; every node tries until some node's write reached its keys.
  admin_thread_ = std::thread([this] {
    while (!stopping_.load()) {
      auto admin = keys_->EnsureAdmin(config_.admin_key);
      if (admin) {
        admin_known_.store(true);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
  });
  return {};
}

events::Payload Application::ClusterState() {
  std::string nodes = "[";
  for (const auto& n : cluster_->Nodes()) {
    if (nodes.size() > 1) nodes += ",";
    std::string parts = "[";
    for (uint32_t p : n.partitions) parts += (parts.size() > 1 ? "," : "") + std::to_string(p);
    events::Payload one;
    one.Str("node_id", n.id)
        .Str("advertise", n.advertise)
        .Raw("partitions", parts + "]")
        .Int("last_seen_ms_ago", n.age_ms)
        .Bool("left", n.left)
        .Bool("self", n.id == config_.cluster.node_id);
    nodes += one.Build();
  }
  std::string partitions = "[";
  for (uint32_t p = 0; p < log_->partition_count(); ++p) {
    events::Payload one;
    one.Int("partition", p);
    const bool mine = tasks_->owns(p);
    auto owner = cluster_->OwnerAddress(p);
    one.Str("owner", mine ? config_.cluster.advertise : owner.value_or(""));
    one.Bool("owned_here", mine);
    if (auto end = log_->EndOffset(p)) one.Int("log_end", static_cast<int64_t>(*end));
    one.Int("views_position", static_cast<int64_t>(projector_->applied(p)));
    partitions += (partitions.size() > 1 ? "," : "") + one.Build();
  }
  events::Payload out;
  out.Str("mode", "cluster")
      .Str("node_id", config_.cluster.node_id)
      .Int("lease_ms", cluster_->lease().count())
      .Raw("nodes", nodes + "]")
      .Raw("partitions", partitions + "]");
  return out;
}

void Application::Stop() {
  stopping_.store(true);
  if (admin_thread_.joinable()) admin_thread_.join();
  if (commands_) commands_->Stop();  // a message in hand is answered first
  // Partitions go to the other nodes first; calls for them are forwarded
  // there while this node drains.
  if (cluster_) cluster_->Stop();
  if (http_) {
    http_->BeginDrain();  // new requests get 503
  }
  if (tasks_ && started_) tasks_->StopParking();  // parked long polls are answered now
  if (streams_) streams_->Stop();                 // event streams end; clients resume later
  if (http_) http_->Stop();                       // waits for the answers in flight
  if (executor_) executor_->Stop();               // a long step is left to its lease
  if (dispatcher_) dispatcher_->Stop();           // deliveries in flight are sent again later
  if (triggers_) triggers_->Stop();               // fires missed now follow their catch_up
  if (retention_) retention_->Stop();
  if (checkpointer_) checkpointer_->Stop();  // signs what the log holds, if it grew
  if (tasks_) tasks_->Stop();
  if (projector_) projector_->Stop();
  started_ = false;
  http_.reset();
  commands_.reset();
  forwarder_.reset();
  cluster_.reset();
  dispatcher_.reset();
  checkpointer_.reset();
  signer_.reset();
  triggers_.reset();
  retention_.reset();
  api_.reset();
  streams_.reset();
  executor_.reset();
  projector_.reset();
  views_.reset();
  hooks_.reset();
  secrets_.reset();
  manifests_.reset();
  keys_.reset();
  tasks_.reset();  // its last checkpoint is written as it stops
  snapshots_.reset();
  tools_.reset();
  llm_.reset();
  content_.reset();
  sandbox_.reset();
  log_.reset();  // waits for appends in flight
}

}  // namespace runlog::app
