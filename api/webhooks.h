#pragma once
// The webhook dispatcher: a consumer of the log, like the projector and the
// executors. It tails every partition from a cursor of its own, turns each
// record that matters to a webhook (a task's end, an artifact, an approval)
// into deliveries, and posts them with libcurl's multi interface: signed
// (Standard Webhooks and X-Ariftly-Signature), retried with exponential
// backoff and jitter on 5xx, 429, timeouts and refused connections for up to
// 24 h, each attempt recorded on the log as `webhook.attempted`. A 410
// disables the endpoint (`webhook.removed`, reason gone). docs/webhooks.md.
//
// Durability: the cursor and the pending deliveries live in DATA_DIR/dispatch
// (RocksDB), written in one batch, so a kill -9 neither drops a delivery nor
// makes a new one: a delivery's id is derived from the webhook, the event
// name and the source record, and stays the same across retries and
// restarts (at least once; a receiver that dedupes by `webhook-id` sees
// each event once).
//
// Destinations on loopback, private, link-local and metadata addresses are
// refused when the connection is made (after DNS) unless allow_private.
//
// Lifecycle: Start() opens the store and runs one thread; Stop() ends it.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "events/event_log.h"
#include "infra/base/clock.h"
#include "infra/base/result.h"
#include "projections/projector.h"
#include "services/hooks.h"
#include "services/task_service.h"

namespace rocksdb {
class DB;
}

namespace runlog::api {

// The webhook events a record gives rise to ("task.complete", …); none for most.
std::vector<std::string> WebhookEventsOf(const events::Event& event);
// Every name a webhook may subscribe to.
const std::vector<std::string>& WebhookEventNames();

// http(s) URL checks at registration: VALIDATION_ERROR for a bad URL,
// DESTINATION_REFUSED for a host that is (or now resolves to) a private,
// loopback, link-local or metadata address unless `allow_private`. A host
// that does not resolve yet is accepted: each connection is checked again.
[[nodiscard]] Status CheckWebhookUrl(const std::string& url, bool allow_private);
// The URL with any user:password replaced by "***".
std::string RedactUrl(const std::string& url);

// The signature headers of one attempt: webhook-id, webhook-timestamp,
// webhook-signature ("v1,<base64 HMAC-SHA256 of id.timestamp.body>", the key
// being the base64 after "whsec_" for such a secret, else the secret's
// bytes) and X-Ariftly-Signature (hex HMAC-SHA256 of the body, keyed by the
// secret as given).
std::vector<std::pair<std::string, std::string>> SignatureHeaders(const std::string& secret,
                                                                  const std::string& id,
                                                                  int64_t timestamp_s,
                                                                  const std::string& body);

class Dispatcher {
 public:
  struct Options {
    events::EventLog* log = nullptr;
    projections::Projector* projector = nullptr;
    services::HookStore* hooks = nullptr;
    services::TaskService* writers = nullptr;  // appends the attempts
    infra::Clock* clock = nullptr;
    std::string data_dir;
    bool allow_private = false;
    std::chrono::milliseconds timeout{10'000};
    std::chrono::milliseconds first_backoff{1'000};
    std::chrono::milliseconds max_backoff{3'600'000};
    std::chrono::milliseconds give_up_after{24 * 3'600'000};
    size_t max_in_flight = 256;
    size_t max_response_bytes = 64 << 10;
    // The `data` of webhook event `name` for `source`, as the API renders it;
    // none if there is nothing to send (the task is gone).
    std::function<std::optional<std::string>(const events::Event& source, const std::string& name)>
        data_of;
    // Called with each record past the cursor, before the cursor moves past
    // it (event triggers fire here); false: not now, call again later.
    std::function<bool(const events::LogRecord&, uint32_t partition)> on_record;
    // After each attempt, for metrics: its outcome and seconds.
    std::function<void(const std::string& outcome, double seconds)> on_attempt;
    // Cluster mode: whether this node writes `partition`; only its owner
    // delivers a partition's events. Null: every partition is this node's.
    std::function<bool(uint32_t partition)> owns;
  };

  explicit Dispatcher(Options options);
  ~Dispatcher();

  [[nodiscard]] Status Start();
  void Stop();

  // Deliveries waiting for their next attempt (for tests and metrics).
  size_t pending() const { return pending_count_.load(); }
  // Cluster mode: where the dispatch of `partition` has got to, for the
  // partition's next owner (KafkaCluster commits it with the lease).
  uint64_t cursor(uint32_t partition) const {
    return std::max(published_[partition].load(), floor_[partition].load());
  }
  // Cluster mode: this node takes `partition` over from where its previous
  // owner's dispatch got to; never moves the cursor back.
  void TakeOver(uint32_t partition, uint64_t from) { floor_[partition].store(from); }

 private:
  struct Pending;
  struct Transfer;
  void Loop();
  // Reads what the log has past the cursor of `p` and records its
  // deliveries; the number of records read (0 at the end, or not yet
  // projected).
  size_t Consume(uint32_t p);
  void StartDue();
  void Finish(Transfer& t, int curl_code, long status, double seconds);
  void RecordAttempt(const Pending& d, long status, int64_t latency_ms, const std::string& error,
                     const std::string& outcome, int64_t next_ms);

  Options options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<uint64_t> cursor_;
  std::unique_ptr<std::atomic<uint64_t>[]> published_;  // cursor_, for other threads
  std::unique_ptr<std::atomic<uint64_t>[]> floor_;      // TakeOver's
  // due ms, delivery key -> the delivery; the loop's thread only.
  std::multimap<int64_t, std::string> due_;
  std::atomic<size_t> pending_count_{0};
  void* multi_ = nullptr;  // CURLM*
  std::vector<std::unique_ptr<Transfer>> transfers_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace runlog::api
