#include "infra/app/application.h"

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
  auto log = events::OpenEventLog(config_.log);
  if (!log) return failed("", log.error());
  log_ = std::move(*log);
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
      tools_.get(), snapshots_.get(), config_.checkpoint_every_events, config_.checkpoint_every});
  // Keys and manifests append through the writers too: one writer a partition.
  keys_ = std::make_unique<services::KeyStore>(*tasks_, *clock_, ids_);
  manifests_ = std::make_unique<services::ManifestStore>(*tasks_, *clock_, ids_, *tools_);
  auto box = services::SecretBox::Open(config_.log.data_dir);
  if (!box) return failed("", box.error());
  secrets_ = std::move(*box);
  hooks_ = std::make_unique<services::HookStore>(*tasks_, *clock_, ids_, *secrets_);
  tasks_->SetPlanResolver(
      [this](const std::string& tenant) { return keys_->PlanOfTenant(tenant); });
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
      *log_, *views_, [this](const events::Event& e, const events::Task& t) {
        metrics_.TaskEvent(e.type, static_cast<double>(e.timestamp_ms - t.queued_at_ms) / 1000.0);
      });
  if (auto s = projector_->CatchUp(config_.watch); !s) {
    return failed("cannot build views: ", s.error());
  }
  projector_->Start();
  tasks_->Start();
  started_ = true;
  auto admin = keys_->EnsureAdmin(config_.admin_key);
  if (!admin) return failed("cannot store the admin key: ", admin.error());
  generated_admin_key_ = *admin;

  executor_ = std::make_unique<services::Executor>(services::Executor::Options{
      tasks_.get(), tools_.get(), clock_, config_.executor_slots, config_.executor_lease_margin,
      "executor", nullptr, content_.get(), &ids_});
  tasks_->SetCancelListener([this](const std::string& id) { executor_->OnCancelled(id); });
  if (config_.executor_slots > 0) executor_->Start();

  streams_ = std::make_unique<api::StreamHub>(*log_, *views_);
  api_ = std::make_unique<api::Api>(
      api::ApiDeps{log_.get(), tasks_.get(), views_.get(), projector_.get(), keys_.get(), &metrics_,
                   clock_, tools_.get(), manifests_.get(), content_.get(), &ids_, hooks_.get(),
                   streams_.get()},
      config_.api);
  triggers_ = std::make_unique<api::Triggers>(api::Triggers::Options{
      api_.get(), hooks_.get(), keys_.get(), tasks_.get(), views_.get(), content_.get(), clock_});
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
    dispatcher_ = std::make_unique<api::Dispatcher>(std::move(d));
    if (auto s = dispatcher_->Start(); !s) return failed("cannot start the webhooks: ", s.error());
  }
  // The RocksDBs are open and the projector and the dispatcher run: their threads exist now.
  if (config_.background_nice != 0) {
    infra::NiceThreadsNamed({"rl-project", "rl-dispatch", "rocksdb:"}, config_.background_nice);
  }
  http_ = std::make_unique<api::HttpServer>(config_.http, *api_);
  if (auto s = http_->Start(); !s) return failed("", s.error());
  return {};
}

void Application::Stop() {
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
  if (tasks_) tasks_->Stop();
  if (projector_) projector_->Stop();
  started_ = false;
  http_.reset();
  dispatcher_.reset();
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
