// runlogd: the runlog server, and its composition root. Parses one typed
// config, builds the services in dependency order (log, keys, task writers
// recovered from the log, views caught up, HTTP), waits for SIGINT or SIGTERM
// and stops them in reverse, draining HTTP first so nothing acknowledged is
// lost. A bad config or an unreachable dependency exits 2 with one line.

#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "api/api.h"
#include "api/http_server.h"
#include "api/keys.h"
#include "api/metrics.h"
#include "events/event_log.h"
#include "infra/thread_priority.h"
#include "projections/projector.h"
#include "sandbox/sandbox.h"
#include "services/executor.h"
#include "services/task_service.h"

// jemalloc's options when it is linked (decision 0008; ignored otherwise):
// transparent huge pages for its extents, so RocksDB's memtable arenas fault
// in 2 MB at a time, not 4 KB (page faults are dear on paravirtualised VMs).
// The environment's MALLOC_CONF is applied after this and wins.
extern "C" {
// NOLINTNEXTLINE: the name jemalloc looks for
const char* malloc_conf = "thp:always,metadata_thp:auto";
}

namespace {

// The nice value of the projector and of RocksDB's background threads (0 is
// the request threads'): at +5 each gets about a third of a request thread's
// share of a busy core, and all of an idle one.
constexpr int kBackgroundNice = 5;

int Die(const std::string& message) {
  std::fprintf(stderr, "runlogd: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace runlog;
  CLI::App app{"runlogd: the runlog server (all roles, embedded log by default)"};
  std::string listen = "127.0.0.1:8080";
  events::LogOptions log_options;
  api::ApiOptions api_options;
  bool no_register = false;
  int http_threads = 2;
  app.add_option("--listen", listen, "HOST:PORT to serve HTTP on")->capture_default_str();
  app.add_option("--data", log_options.data_dir, "data directory")->capture_default_str();
  app.add_option("--log", log_options.uri, "embedded, or kafka://HOST:PORT[,HOST:PORT]")
      ->capture_default_str();
  app.add_option("--partitions", log_options.partitions, "log partitions (fixed at creation)")
      ->capture_default_str();
  app.add_option("--kafka-topic", log_options.kafka_topic, "Kafka topic of the log")
      ->capture_default_str();
  int64_t kafka_connect_ms = log_options.kafka_connect_timeout.count();
  app.add_option("--kafka-connect-timeout-ms", kafka_connect_ms,
                 "how long to wait for Kafka brokers at start")
      ->check(CLI::Range(int64_t{100}, int64_t{600'000}))
      ->capture_default_str();
  app.add_flag("--no-register", no_register, "turn off POST /v1/keys/register");
  app.add_option("--http-threads", http_threads, "HTTP worker threads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--max-body-bytes", api_options.max_body_bytes, "largest request body")
      ->check(CLI::Range(size_t{1024}, size_t{64} << 20))
      ->capture_default_str();
  int executor_slots = 2;
  app.add_option("--executors", executor_slots,
                 "steps run at once by this runlogd's executors (0: none)")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  int64_t executor_lease_margin_ms = 30'000;
  app.add_option("--executor-lease-margin-ms", executor_lease_margin_ms,
                 "added to a step's time for its lease: how soon a dead executor's task is retried")
      ->check(CLI::Range(int64_t{100}, int64_t{3'600'000}))
      ->capture_default_str();
  std::string sandbox_helper;
  app.add_option("--sandbox-helper", sandbox_helper,
                 "the runlog-sandbox executable (default: next to runlogd)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return Die(std::string(e.what()) + " (see --help)");
  }
  log_options.kafka_connect_timeout = std::chrono::milliseconds(kafka_connect_ms);
  api_options.allow_register = !no_register;
  auto http_options = api::ParseListen(listen);
  if (!http_options) return Die(http_options.error().message);
  http_options->threads = http_threads;
  http_options->max_body_bytes = api_options.max_body_bytes;

  // Block the stop signals before any thread starts, so only sigwait sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  // Every connection holds two descriptors (Pistache's and the dup answers are
  // written to, decision 0012) and RocksDB keeps its files open: take the
  // whole hard limit, as servers commonly do, instead of a soft 1024.
  if (rlimit files{}; ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }

  infra::SystemClock clock;
  infra::RandomIds ids;
  api::Metrics metrics;
  auto log = events::OpenEventLog(log_options);
  if (!log) return Die(log.error().message);

  api::KeyStore keys(**log, clock, ids);
  // Code steps run in the sandbox; plans of built-in tools on the executors.
  sandbox::Sandbox sandbox(
      {sandbox_helper.empty() ? sandbox::DefaultHelperPath() : sandbox_helper});
  services::ToolRegistry tools(&sandbox);
  services::TaskService tasks({log->get(), &clock, &ids,
                               [&metrics](double seconds) { metrics.AppendLatency(seconds); },
                               &tools});
  api::ManifestStore manifests(**log, clock, ids, tools);
  if (auto s = tasks.Recover([&](const events::Event& e) {
        keys.Recover(e);
        manifests.Recover(e);
      });
      !s) {
    return Die("cannot recover from the log: " + s.error().message);
  }
  auto views = projections::Views::Open(log_options.data_dir);
  if (!views) return Die(views.error().message);
  projections::Projector projector(
      **log, **views, [&metrics](const events::Event& e, const events::Task& t) {
        metrics.TaskEvent(e.type, static_cast<double>(e.timestamp_ms - t.queued_at_ms) / 1000.0);
      });
  if (auto s = projector.CatchUp(); !s) return Die("cannot build views: " + s.error().message);
  projector.Start();
  tasks.Start();
  // Both RocksDBs are open and the projector runs: their threads exist now.
  infra::NiceThreadsNamed({"rl-project", "rocksdb:"}, kBackgroundNice);

  const char* configured = std::getenv("RUNLOG_ADMIN_KEY");
  auto admin = keys.EnsureAdmin(configured == nullptr ? "" : configured);
  if (!admin) return Die("cannot store the admin key: " + admin.error().message);
  if (!admin->empty()) {
    std::fprintf(stderr,
                 "runlogd: admin key (shown once, stored only as a hash): %s\n"
                 "runlogd: set RUNLOG_ADMIN_KEY to choose your own\n",
                 admin->c_str());
  }

  services::Executor executor({&tasks, &tools, &clock, executor_slots,
                               std::chrono::milliseconds(executor_lease_margin_ms)});
  tasks.SetCancelListener([&executor](const std::string& id) { executor.OnCancelled(id); });
  if (executor_slots > 0) executor.Start();

  api::Api api(
      {log->get(), &tasks, views->get(), &projector, &keys, &metrics, &clock, &tools, &manifests},
      api_options);
  api::HttpServer http(*http_options, api);
  if (auto s = http.Start(); !s) return Die(s.error().message);
  std::fprintf(stderr, "runlogd: serving http://%s:%u on %s (%u partitions)\n",
               http_options->host.c_str(), http.port(), (*log)->Describe().c_str(),
               (*log)->partition_count());

  int signal = 0;
  sigwait(&stop_signals, &signal);
  std::fprintf(stderr, "runlogd: stopping on signal %d\n", signal);
  http.BeginDrain();    // new requests get 503
  tasks.StopParking();  // parked long polls are answered now
  http.Stop();          // waits for the answers in flight
  executor.Stop();      // a long step is left to its lease
  tasks.Stop();
  projector.Stop();
  views->reset();
  log->reset();  // waits for appends in flight
  return 0;
}
