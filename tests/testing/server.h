#pragma once
// The whole runlogd stack in-process for API tests: a real embedded log on
// disk, writers, views, projector and the Pistache server on a free loopback
// port, with an injected clock so leases can expire on demand.

#include <future>
#include <memory>

#include "api/api.h"
#include "api/http_server.h"
#include "api/keys.h"
#include "api/metrics.h"
#include "projections/projector.h"
#include "sandbox/sandbox.h"
#include "services/executor.h"
#include "services/task_service.h"
#include "tests/testing/temp_dir.h"

namespace runlog::testing {

inline constexpr char kAdminKey[] = "rl_test_admin_key";

class TestServer {
 public:
  explicit TestServer(const std::string& data_dir, infra::Clock& clock) : clock_(clock) {
    events::LogOptions options;
    options.data_dir = data_dir;
    options.partitions = 4;
    log_ = std::move(events::OpenEventLog(options).value());
    keys_ = std::make_unique<api::KeyStore>(*log_, clock_, ids_);
#ifdef SANDBOX_HELPER_PATH
    sandbox_ = std::make_unique<sandbox::Sandbox>(sandbox::Options{SANDBOX_HELPER_PATH});
#endif
    tools_ = std::make_unique<services::ToolRegistry>(sandbox_.get());
    tasks_ = std::make_unique<services::TaskService>(
        services::TaskService::Options{log_.get(), &clock_, &ids_, nullptr, tools_.get()});
    manifests_ = std::make_unique<api::ManifestStore>(*log_, clock_, ids_, *tools_);
    auto recovered = tasks_->Recover([this](const events::Event& e) {
      keys_->Recover(e);
      manifests_->Recover(e);
    });
    if (!recovered) throw std::runtime_error(recovered.error().ToString());
    views_ = std::move(projections::Views::Open(data_dir).value());
    projector_ = std::make_unique<projections::Projector>(*log_, *views_);
    if (!projector_->CatchUp()) throw std::runtime_error("catch up failed");
    projector_->Start();
    tasks_->Start();
    if (!keys_->EnsureAdmin(kAdminKey)) throw std::runtime_error("admin key");
    executor_ = std::make_unique<services::Executor>(
        services::Executor::Options{tasks_.get(), tools_.get(), &clock_, 2});
    tasks_->SetCancelListener([this](const std::string& id) { executor_->OnCancelled(id); });
    executor_->Start();
    api_ = std::make_unique<api::Api>(
        api::ApiDeps{log_.get(), tasks_.get(), views_.get(), projector_.get(), keys_.get(),
                     &metrics_, &clock_, tools_.get(), manifests_.get()},
        api::ApiOptions{});
    api::HttpOptions http;
    http.port = 0;
    http_ = std::make_unique<api::HttpServer>(http, *api_);
    if (!http_->Start()) throw std::runtime_error("http start");
  }
  ~TestServer() {
    http_->BeginDrain();
    tasks_->StopParking();
    http_->Stop();
    executor_->Stop();
    tasks_->Stop();
    projector_->Stop();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(http_->port()); }
  api::KeyStore& keys() { return *keys_; }
  events::EventLog& log() { return *log_; }
  api::HttpServer& http() { return *http_; }
  services::TaskService& tasks() { return *tasks_; }

  // A key with only the given scopes, for tests of scope checks.
  std::string KeyWithScopes(const std::string& tenant, std::vector<std::string> scopes,
                            const std::string& plan = "internal") {
    std::promise<std::string> key;
    keys_->Register(tenant, std::move(scopes), plan,
                    [&](auto r) { key.set_value(r ? r->first : std::string()); });
    return key.get_future().get();
  }

 private:
  infra::Clock& clock_;
  infra::RandomIds ids_;
  api::Metrics metrics_;
  std::unique_ptr<events::EventLog> log_;
  std::unique_ptr<api::KeyStore> keys_;
  std::unique_ptr<sandbox::Sandbox> sandbox_;
  std::unique_ptr<services::ToolRegistry> tools_;
  std::unique_ptr<api::ManifestStore> manifests_;
  std::unique_ptr<services::TaskService> tasks_;
  std::unique_ptr<projections::Views> views_;
  std::unique_ptr<projections::Projector> projector_;
  std::unique_ptr<services::Executor> executor_;
  std::unique_ptr<api::Api> api_;
  std::unique_ptr<api::HttpServer> http_;
};

}  // namespace runlog::testing
