// runlogd: the runlog server. The composition root: parses one typed config,
// opens the log, starts the services in dependency order, waits for SIGINT or
// SIGTERM and stops them in reverse. A bad config or an unreachable dependency
// exits with one line on stderr and code 2.

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "api/http_server.h"
#include "events/event_log.h"

namespace {

int Die(const std::string& message) {
  std::fprintf(stderr, "runlogd: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"runlogd: the runlog server (all roles, embedded log by default)"};
  std::string listen = "127.0.0.1:8080";
  runlog::events::LogOptions log_options;
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return Die(std::string(e.what()) + " (see --help)");
  }

  log_options.kafka_connect_timeout = std::chrono::milliseconds(kafka_connect_ms);
  auto http_options = runlog::api::ParseListen(listen);
  if (!http_options) return Die(http_options.error().message);

  // Block the stop signals before any thread starts, so only sigwait sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto log = runlog::events::OpenEventLog(log_options);
  if (!log) return Die(log.error().message);
  runlog::api::HttpServer http(*http_options, **log);
  if (auto s = http.Start(); !s) return Die(s.error().message);
  std::fprintf(stderr, "runlogd: serving http://%s:%u on %s (%u partitions)\n",
               http_options->host.c_str(), http.port(), (*log)->Describe().c_str(),
               (*log)->partition_count());

  int signal = 0;
  sigwait(&stop_signals, &signal);
  std::fprintf(stderr, "runlogd: stopping on signal %d\n", signal);
  http.Stop();
  log->reset();  // waits for appends in flight
  return 0;
}
