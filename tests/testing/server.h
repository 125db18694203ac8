#pragma once
// The whole runlogd stack in-process for API tests: a real embedded log on
// disk, writers, views, projector and the Pistache server on a free loopback
// port, with an injected clock so leases can expire on demand.

#include <functional>
#include <future>
#include <memory>
#include <stdexcept>

#include "infra/app/application.h"
#include "tests/testing/temp_dir.h"

namespace runlog::testing {

inline constexpr char kAdminKey[] = "rl_test_admin_key";

// The whole runlogd stack in-process, started by the same Application as
// runlogd, on a free loopback port with an injected clock.
class TestServer {
 public:
  // `adjust` changes the configuration before the stack starts.
  explicit TestServer(const std::string& data_dir, infra::Clock& clock,
                      const std::function<void(app::Config&)>& adjust = {})
      : app_(ConfigFor(data_dir, clock, adjust)) {
    if (auto s = app_.Start(); !s) throw std::runtime_error(s.error().ToString());
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(app_.port()); }
  services::KeyStore& keys() { return app_.keys(); }
  events::EventLog& log() { return app_.log(); }
  api::HttpServer& http() { return app_.http(); }
  services::TaskService& tasks() { return app_.tasks(); }

  // A key with only the given scopes, for tests of scope checks.
  std::string KeyWithScopes(const std::string& tenant, std::vector<std::string> scopes,
                            const std::string& plan = "internal") {
    std::promise<std::string> key;
    keys().Register(tenant, std::move(scopes), plan,
                    [&](auto r) { key.set_value(r ? r->first : std::string()); });
    return key.get_future().get();
  }

 private:
  static app::Config ConfigFor(const std::string& data_dir, infra::Clock& clock,
                               const std::function<void(app::Config&)>& adjust) {
    app::Config config;
    config.log.data_dir = data_dir;
    config.log.partitions = 4;
    config.http.port = 0;
#ifdef SANDBOX_HELPER_PATH
    config.sandbox_helper = SANDBOX_HELPER_PATH;
#endif
    config.admin_key = kAdminKey;
    config.clock = &clock;
    if (adjust) adjust(config);
    return config;
  }

  app::Application app_;
};

}  // namespace runlog::testing
