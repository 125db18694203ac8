// runlogd: the runlog server. Parses one typed config (app::Config), hands
// it to the Application (infra/app), which starts every service in
// dependency order, waits for SIGINT or SIGTERM and stops them in reverse. A
// stop signal during recovery or catch-up exits 0 at once. A bad config or
// an unreachable dependency exits 2 with one line.

#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "events/kafka_log.h"
#include "infra/app/application.h"
#include "services/account_plans.h"
#include "services/prices.h"

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

// A thread that waits for the first stop signal (blocked in every thread, so
// only sigwait sees it) and records it.
class StopSignal {
 public:
  explicit StopSignal(sigset_t signals)
      : thread_([this, signals] {
          int signal = 0;
          sigwait(&signals, &signal);
          std::lock_guard lock(mu_);
          signal_ = signal;
          cv_.notify_all();
        }) {
    thread_.detach();  // it may still wait when main returns
  }
  bool requested() const {
    std::lock_guard lock(mu_);
    return signal_ != 0;
  }
  int signal() const {
    std::lock_guard lock(mu_);
    return signal_;
  }
  void Wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return signal_ != 0; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int signal_ = 0;  // guarded by mu_
  std::thread thread_;
};

}  // namespace

// The node id kept in DATA/node-id, made on first start: stable across restarts.
runlog::Result<std::string> NodeIdIn(const std::string& data_dir) {
  const std::string path = data_dir + "/node-id";
  {
    std::ifstream in(path);
    std::string id;
    if (in >> id && !id.empty()) return id;
  }
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  std::random_device random;
  char id[32];
  std::snprintf(id, sizeof id, "node-%08x", random());
  std::ofstream out(path);
  out << id << "\n";
  if (!out) return runlog::Fail(runlog::codes::kUnavailable, "cannot write " + path);
  return std::string(id);
}

int main(int argc, char** argv) {
  using namespace runlog;
  CLI::App cli{"runlogd: the runlog server (all roles, embedded log by default)"};
  app::Config config;
  std::string listen = "127.0.0.1:8080";
  bool no_register = false;
  int http_threads = 2;
  cli.add_option("--listen", listen, "HOST:PORT to serve HTTP on")->capture_default_str();
  cli.add_option("--data", config.log.data_dir, "data directory")->capture_default_str();
  cli.add_option("--log", config.log.uri, "embedded, or kafka://HOST:PORT[,HOST:PORT]")
      ->capture_default_str();
  cli.add_option("--partitions", config.log.partitions, "log partitions (fixed at creation)")
      ->capture_default_str();
  cli.add_option("--kafka-topic", config.log.kafka_topic, "Kafka topic of the log")
      ->capture_default_str();
  int64_t kafka_connect_ms = config.log.kafka_connect_timeout.count();
  cli.add_option("--kafka-connect-timeout-ms", kafka_connect_ms,
                 "how long to wait for Kafka brokers at start")
      ->check(CLI::Range(int64_t{100}, int64_t{600'000}))
      ->capture_default_str();
  std::vector<std::string> kafka_config;
  cli.add_option("--kafka-config", kafka_config,
                 "KEY=VALUE librdkafka property for every Kafka client (SASL, SSL); repeatable");
  bool single_node = false;
  cli.add_flag("--single-node", single_node,
               "on Kafka, write every partition from this node alone: no group, no fencing "
               "(one runlogd per topic)");
  cli.add_option("--node-id", config.cluster.node_id,
                 "this node's id in the cluster (default: kept in DATA/node-id)");
  cli.add_option("--advertise", config.cluster.advertise,
                 "HOST:PORT the other nodes forward calls to (default: the --listen address)");
  int64_t session_ms = config.cluster.session_timeout.count();
  cli.add_option("--session-timeout-ms", session_ms, "how long a silent node keeps its partitions")
      ->check(CLI::Range(int64_t{1000}, int64_t{300'000}))
      ->capture_default_str();
  int64_t heartbeat_ms = config.cluster.heartbeat.count();
  cli.add_option("--heartbeat-ms", heartbeat_ms, "how often a node renews its ownership lease")
      ->check(CLI::Range(int64_t{100}, int64_t{60'000}))
      ->capture_default_str();
  cli.add_flag("!--no-kafka-commands", config.kafka_commands,
               "on Kafka, do not take creates and cancels from the runlog.commands topic");
  cli.add_flag("--no-register", no_register, "turn off POST /v1/keys/register");
  cli.add_option("--http-threads", http_threads, "HTTP worker threads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cli.add_option("--max-body-bytes", config.api.max_body_bytes, "largest request body")
      ->check(CLI::Range(size_t{1024}, size_t{64} << 20))
      ->capture_default_str();
  cli.add_option("--max-content-bytes", config.api.max_content_bytes,
                 "largest binary artifact or output (PUT with a Content-Type)")
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30))
      ->capture_default_str();
  cli.add_option("--executors", config.executor_slots,
                 "steps run at once by this runlogd's executors (0: none)")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  int64_t executor_lease_margin_ms = config.executor_lease_margin.count();
  cli.add_option("--executor-lease-margin-ms", executor_lease_margin_ms,
                 "added to a step's time for its lease: how soon a dead executor's task is retried")
      ->check(CLI::Range(int64_t{100}, int64_t{3'600'000}))
      ->capture_default_str();
  int64_t checkpoint_ms = config.checkpoint_every.count();
  cli.add_option("--checkpoint-every-events", config.checkpoint_every_events,
                 "a writer checkpoints its state after this many events (restarts read only "
                 "the log after a checkpoint)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40))
      ->capture_default_str();
  cli.add_option("--checkpoint-every-ms", checkpoint_ms,
                 "... or this long after its last checkpoint, if anything changed")
      ->check(CLI::Range(int64_t{10}, int64_t{86'400'000}))
      ->capture_default_str();
  cli.add_flag("!--no-snapshots", config.snapshots,
               "no writer checkpoints: every start reads the whole log");
  int64_t sign_every_ms = config.checkpoint_every_ms.count();
  cli.add_option("--sign-every-ms", sign_every_ms,
                 "sign a checkpoint of the log this often, if it grew (docs/receipts.md)")
      ->check(CLI::Range(int64_t{10}, int64_t{86'400'000}))
      ->capture_default_str();
  cli.add_option("--sign-every-records", config.checkpoint_every_records,
                 "... or once this many records were added")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1'000'000'000}))
      ->capture_default_str();
  cli.add_option("--signing-key", config.signing_key,
                 "the Ed25519 key (PEM) that signs checkpoints, created if missing "
                 "(default: DATA/signing.key; share one file across a cluster)");
  cli.add_option("--checkpoint-origin", config.checkpoint_origin,
                 "the checkpoints' origin line and key name (default: runlog/ and the key's "
                 "hash)");
  cli.add_flag("!--no-signed-checkpoints", config.checkpoints,
               "sign no checkpoints (receipts are then unavailable)");
  cli.add_option("--sandbox-helper", config.sandbox_helper,
                 "the runlog-sandbox executable (default: next to runlogd)");
  std::string plans_file;
  cli.add_option("--plans", plans_file,
                 "a JSON file of account plans and their quotas (docs/tenancy.md); default: "
                 "the built-in table");
  cli.add_option("--llm-url", config.llm.url,
                 "an OpenAI-compatible API (POST <url>/chat/completions) for the llm tools and "
                 "the built-in planner, e.g. https://api.openai.com/v1; its key is read from "
                 "RUNLOG_LLM_API_KEY");
  cli.add_option("--llm-model", config.llm.model, "the model of steps that name none")
      ->capture_default_str();
  std::string prices_file;
  cli.add_option("--prices", prices_file,
                 "a JSON file of prices: per model and million tokens, per sandbox CPU-second "
                 "(docs/tenancy.md); default: the built-in table");
  cli.add_flag("--webhook-allow-private", config.api.webhook_allow_private,
               "let webhooks post to loopback, private, link-local and metadata addresses "
               "(tests, on-premises receivers); refused by default");
  int64_t webhook_first_backoff_ms = 1000, webhook_max_backoff_ms = 3'600'000,
          webhook_give_up_ms = 24 * 3'600'000;
  cli.add_option("--webhook-first-backoff-ms", webhook_first_backoff_ms,
                 "wait before a delivery's second attempt; doubled per attempt, with jitter")
      ->capture_default_str();
  cli.add_option("--webhook-max-backoff-ms", webhook_max_backoff_ms,
                 "the longest wait between two attempts of a delivery")
      ->capture_default_str();
  cli.add_option("--webhook-give-up-ms", webhook_give_up_ms,
                 "how long a delivery is retried before it is marked failed")
      ->capture_default_str();
  try {
    cli.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return cli.exit(e);
  } catch (const CLI::ParseError& e) {
    return Die(std::string(e.what()) + " (see --help)");
  }
  config.log.kafka_connect_timeout = std::chrono::milliseconds(kafka_connect_ms);
  auto parsed = events::ParseKafkaConfig(kafka_config);
  if (!parsed) return Die(parsed.error().message);
  config.log.kafka_config = std::move(*parsed);
  config.cluster.enabled = config.log.uri.starts_with("kafka://") && !single_node;
  config.cluster.session_timeout = std::chrono::milliseconds(session_ms);
  config.cluster.heartbeat = std::chrono::milliseconds(heartbeat_ms);
  if (heartbeat_ms * 2 >= session_ms) {
    return Die("--heartbeat-ms must be under half of --session-timeout-ms");
  }
  if (config.cluster.enabled && config.cluster.node_id.empty()) {
    auto id = NodeIdIn(config.log.data_dir);
    if (!id) return Die(id.error().message);
    config.cluster.node_id = *id;
  }
  config.executor_lease_margin = std::chrono::milliseconds(executor_lease_margin_ms);
  config.checkpoint_every = std::chrono::milliseconds(checkpoint_ms);
  config.checkpoint_every_ms = std::chrono::milliseconds(sign_every_ms);
  config.api.allow_register = !no_register;
  config.webhooks->first_backoff =
      std::chrono::milliseconds(std::max<int64_t>(1, webhook_first_backoff_ms));
  config.webhooks->max_backoff =
      std::chrono::milliseconds(std::max<int64_t>(1, webhook_max_backoff_ms));
  config.webhooks->give_up_after = std::chrono::milliseconds(webhook_give_up_ms);
  if (const char* key = std::getenv("RUNLOG_LLM_API_KEY")) config.llm.api_key = key;
  auto read_file = [](const std::string& path, std::string* out) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    *out = text.str();
    return static_cast<bool>(in);
  };
  // Both tables are set before any thread reads them.
  if (std::string text; !plans_file.empty()) {
    if (!read_file(plans_file, &text)) return Die("cannot read the plans file " + plans_file);
    auto plans = services::PlansFromJson(text);
    if (!plans) return Die(plans_file + ": " + plans.error().message);
    services::SetPlanTable(std::move(*plans));
  }
  if (std::string text; !prices_file.empty()) {
    if (!read_file(prices_file, &text)) return Die("cannot read the prices file " + prices_file);
    auto prices = services::PricesFromJson(text);
    if (!prices) return Die(prices_file + ": " + prices.error().message);
    services::SetPriceTable(std::move(*prices));
  }
  auto http_options = api::ParseListen(listen);
  if (!http_options) return Die(http_options.error().message);
  http_options->threads = http_threads;
  http_options->max_body_bytes = config.api.max_body_bytes;
  http_options->max_content_bytes = config.api.max_content_bytes;
  config.http = *http_options;
  const std::string host = config.http.host;

  // Block the stop signals before any thread starts, so only the signal
  // thread sees them. It is there from the start: a stop asked for during a
  // long recovery or catch-up is heard at once, not after it.
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
  StopSignal stop(stop_signals);

  config.watch.cancelled = [&stop] { return stop.requested(); };
  config.watch.report = [](const std::string& what, uint32_t partition, uint64_t offset,
                           uint64_t end) {
    std::fprintf(stderr, "runlogd: %s partition %u: offset %llu of %llu\n", what.c_str(), partition,
                 static_cast<unsigned long long>(offset), static_cast<unsigned long long>(end));
  };
  config.watch.note = [](const std::string& line) {
    std::fprintf(stderr, "runlogd: %s\n", line.c_str());
  };
  const char* configured = std::getenv("RUNLOG_ADMIN_KEY");
  config.admin_key = configured == nullptr ? "" : configured;
  if (config.sandbox_helper.empty()) config.sandbox_helper = sandbox::DefaultHelperPath();
  config.background_nice = kBackgroundNice;

  app::Application app(std::move(config));
  if (auto s = app.Start(); !s) {
    if (s.error().code == codes::kCancelled) {
      std::fprintf(stderr, "runlogd: stopped on signal %d before serving (%s)\n", stop.signal(),
                   s.error().message.c_str());
      return 0;
    }
    return Die(s.error().message);
  }
  if (!app.admin_key_generated().empty()) {
    std::fprintf(stderr,
                 "runlogd: admin key (shown once, stored only as a hash): %s\n"
                 "runlogd: set RUNLOG_ADMIN_KEY to choose your own\n",
                 app.admin_key_generated().c_str());
  }
  std::fprintf(stderr, "runlogd: serving http://%s:%u on %s (%u partitions)\n", host.c_str(),
               app.port(), app.Describe().c_str(), app.partition_count());

  stop.Wait();
  std::fprintf(stderr, "runlogd: stopping on signal %d\n", stop.signal());
  app.Stop();
  return 0;
}
