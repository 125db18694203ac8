#include "events/kafka_log.h"

#include <librdkafka/rdkafka.h>

#include <condition_variable>
#include <deque>

#include "events/codec.h"

namespace runlog::events {
namespace {

using Clock = std::chrono::steady_clock;

// One append's records in flight; each record's opaque points at its slot.
// Owned by the records in flight: the last report completes it and deletes it.
struct PendingAppend {
  struct Slot {
    PendingAppend* owner;
    size_t index;
  };
  PendingAppend(size_t n, std::string where, EventLog::AppendCallback callback)
      : offsets(n), slots(n), remaining(n), where(std::move(where)), done(std::move(callback)) {
    for (size_t i = 0; i < n; ++i) slots[i] = Slot{this, i};
  }
  void Finish(size_t count) {
    if (remaining.fetch_sub(count) != count) return;
    if (error.empty()) {
      done(std::move(offsets));
    } else {
      done(Fail(codes::kUnavailable, "Kafka append to " + where + " failed: " + error));
    }
    delete this;
  }
  void SetError(const std::string& e) {
    std::lock_guard lock(mu);
    if (error.empty()) error = e;
  }
  std::vector<uint64_t> offsets;
  std::vector<Slot> slots;
  std::atomic<size_t> remaining;
  const std::string where;
  EventLog::AppendCallback done;
  std::mutex mu;
  std::string error;  // the first failure; read only by the last Finish
};

bool Set(RdKafka::Conf& conf, const std::string& key, const std::string& value, std::string* err) {
  return conf.set(key, value, *err) == RdKafka::Conf::CONF_OK;
}

// The headers every record carries, for consumers that route without parsing.
RdKafka::Headers* HeadersOf(const Event& e, const std::string& node) {
  RdKafka::Headers* h = RdKafka::Headers::create();
  h->add("runlog-type", e.type);
  h->add("runlog-tenant", e.tenant_id);
  h->add("runlog-aggregate", e.aggregate_id);
  if (!node.empty()) h->add("runlog-node", node);
  return h;
}

}  // namespace

std::unique_ptr<RdKafka::Conf> KafkaClientConf(
    const std::string& brokers, const std::string& client_id,
    const std::vector<std::pair<std::string, std::string>>& extra) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  conf->set("bootstrap.servers", brokers, err);
  conf->set("client.id", client_id, err);
  conf->set("log_level", "3", err);
  for (const auto& [key, value] : extra) conf->set(key, value, err);  // checked at KafkaLog::Open
  return conf;
}

Result<std::vector<std::pair<std::string, std::string>>> ParseKafkaConfig(
    const std::vector<std::string>& arguments) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& kv : arguments) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Fail(codes::kInvalidArgument, "--kafka-config takes KEY=VALUE, not " + kv);
    }
    out.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return out;
}

Status CheckKafkaConfig(const std::vector<std::pair<std::string, std::string>>& properties) {
  std::unique_ptr<RdKafka::Conf> probe(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  for (const auto& [key, value] : properties) {
    if (!Set(*probe, key, value, &err)) {
      return Fail(codes::kInvalidArgument, "--kafka-config " + key + "=…: " + err);
    }
  }
  return {};
}

bool KafkaTopicExists(RdKafka::Handle& client, const std::string& topic) {
  std::string err;
  std::unique_ptr<RdKafka::Topic> handle(RdKafka::Topic::create(&client, topic, nullptr, err));
  RdKafka::Metadata* raw = nullptr;
  const bool asked =
      handle && client.metadata(false, handle.get(), &raw, 10'000) == RdKafka::ERR_NO_ERROR;
  std::unique_ptr<RdKafka::Metadata> md(raw);
  return asked && md && !md->topics()->empty() &&
         md->topics()->front()->err() == RdKafka::ERR_NO_ERROR;
}

std::unique_ptr<RdKafka::Conf> KafkaLog::Conf() const {
  return KafkaClientConf(brokers_, node_id_.empty() ? "runlog" : "runlog-" + node_id_,
                         extra_config_);
}

// One partition's transactional producer and the thread that commits its
// appends: all that queued while the last transaction committed go in the
// next one, so a transaction's round trips are shared like a group commit.
class KafkaLog::TxnWriter {
 public:
  TxnWriter(KafkaLog& log, uint32_t partition) : log_(log), partition_(partition) {}
  ~TxnWriter() { Close(); }

  Status Open() {
    auto conf = log_.Conf();
    std::string err;
    const std::string id = "runlog-writer-" + log_.topic_ + "-p" + std::to_string(partition_);
    if (!Set(*conf, "transactional.id", id, &err) || !Set(*conf, "acks", "all", &err) ||
        // commit_transaction flushes at once, so lingering costs nothing, and
        // a transaction's records leave as one batch: readers get a whole
        // transaction per fetch, not one record.
        !Set(*conf, "linger.ms", "1000", &err) ||
        !Set(*conf, "transaction.timeout.ms",
             std::to_string(std::max<int64_t>(1000, log_.append_timeout_.count())), &err) ||
        conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(&reports_), err) !=
            RdKafka::Conf::CONF_OK) {
      return Fail(codes::kInternal, "librdkafka refused transactional config: " + err);
    }
    producer_.reset(RdKafka::Producer::create(conf.get(), err));
    if (!producer_) return Fail(codes::kUnavailable, "cannot create Kafka producer: " + err);
    std::unique_ptr<RdKafka::Error> e(
        producer_->init_transactions(static_cast<int>(log_.append_timeout_.count())));
    if (e) {
      producer_.reset();
      return Fail(codes::kUnavailable, "init_transactions for " + id + ": " + e->str());
    }
    thread_ = std::thread([this] { Run(); });
    return {};
  }

  Status Enqueue(std::span<const Event> events, AppendCallback done) {
    Batch b;
    b.done = std::move(done);
    for (const Event& e : events) {
      b.values.push_back(EncodeEventJson(e));
      b.keys.push_back(e.aggregate_id);
      b.timestamps.push_back(e.timestamp_ms);
      b.headers.push_back(HeadersOf(e, log_.node_id_));
    }
    std::lock_guard lock(mu_);
    if (closing_) {
      for (auto* h : b.headers) delete h;
      return Fail(codes::kNotOwner, "partition " + std::to_string(partition_) +
                                        " is no longer written by this node; retry");
    }
    queue_.push_back(std::move(b));
    cv_.notify_one();
    return {};
  }

  // Commits what is queued, answers it, and closes the producer.
  void Close() {
    {
      std::lock_guard lock(mu_);
      if (closing_ && !thread_.joinable()) return;
      closing_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
    producer_.reset();
  }

 private:
  struct Batch {
    std::vector<std::string> values, keys;
    std::vector<int64_t> timestamps;
    std::vector<RdKafka::Headers*> headers;  // owned until produced
    AppendCallback done;
    std::vector<int64_t> offsets;
  };
  struct Reports final : RdKafka::DeliveryReportCb {
    void dr_cb(RdKafka::Message& m) override {
      auto* slot = static_cast<int64_t*>(m.msg_opaque());
      *slot = m.err() == RdKafka::ERR_NO_ERROR ? m.offset() : -2;
    }
  };

  void Run() {
    for (;;) {
      std::deque<Batch> batches;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return closing_ || !queue_.empty(); });
        if (queue_.empty()) return;
        batches.swap(queue_);
      }
      Commit(batches);
    }
  }

  void Answer(std::deque<Batch>& batches, const std::string& code, const std::string& why) {
    for (Batch& b : batches) {
      for (auto*& h : b.headers) {
        delete h;
        h = nullptr;
      }
      if (code.empty()) {
        std::vector<uint64_t> offsets(b.offsets.begin(), b.offsets.end());
        b.done(std::move(offsets));
      } else {
        b.done(Fail(code, "Kafka append to " + log_.topic_ + "/" + std::to_string(partition_) +
                              ": " + why));
      }
    }
  }

  void Commit(std::deque<Batch>& batches) {
    const auto gate_open = [&] { return !log_.gate_ || log_.gate_(partition_); };
    if (dead_)
      return Answer(batches, codes::kNotOwner, "this node's producer was fenced: " + dead_why_);
    if (!gate_open()) {
      return Answer(batches, codes::kNotOwner, "this node no longer owns the partition; retry");
    }
    const int timeout = static_cast<int>(log_.append_timeout_.count());
    auto failed = [&](RdKafka::Error* raw, const std::string& what) {
      std::unique_ptr<RdKafka::Error> e(raw);
      if (e->is_fatal()) {
        dead_ = true;  // fenced, most likely: this producer can do nothing more
        dead_why_ = e->str();
      } else if (e->txn_requires_abort()) {
        std::unique_ptr<RdKafka::Error> ignored(producer_->abort_transaction(timeout));
      }
      Answer(batches, codes::kNotOwner, what + ": " + e->str() + "; the outcome is unknown, retry");
    };
    // The chain continues from the partition's last committed record: read
    // once the writer opens, and again after any transaction whose outcome
    // is unknown.
    if (head_.empty()) {
      auto found = ChainHead(log_, partition_);
      if (!found) {
        return Answer(batches, codes::kUnavailable,
                      "cannot read the partition's last record: " + found.error().message);
      }
      head_ = std::move(*found);
    }
    std::string head = head_;
    head_.clear();  // until this transaction is known to have committed
    if (auto* e = producer_->begin_transaction()) return failed(e, "begin_transaction");
    for (Batch& b : batches) {
      b.offsets.assign(b.values.size(), -1);
      for (size_t i = 0; i < b.values.size(); ++i) {
        SetPrev(b.values[i], head);
        head = RecordHash(b.values[i]);
        RdKafka::ErrorCode rc;
        while ((rc = producer_->produce(
                    log_.topic_, static_cast<int32_t>(partition_), RdKafka::Producer::RK_MSG_COPY,
                    b.values[i].data(), b.values[i].size(), b.keys[i].data(), b.keys[i].size(),
                    b.timestamps[i], b.headers[i], &b.offsets[i])) == RdKafka::ERR__QUEUE_FULL) {
          producer_->poll(1);
        }
        if (rc != RdKafka::ERR_NO_ERROR) {
          std::unique_ptr<RdKafka::Error> ignored(producer_->abort_transaction(timeout));
          return Answer(batches, codes::kUnavailable,
                        std::string("produce refused: ") + RdKafka::err2str(rc));
        }
        b.headers[i] = nullptr;  // librdkafka owns them now
      }
    }
    if (auto* e = producer_->commit_transaction(timeout)) return failed(e, "commit_transaction");
    producer_->poll(0);  // serves any report flush left
    for (Batch& b : batches) {
      for (int64_t offset : b.offsets) {
        if (offset < 0) return Answer(batches, codes::kUnavailable, "a record's delivery failed");
      }
    }
    head_ = std::move(head);
    // The lease must still hold now that the records are in: if it lapsed, a
    // new owner may have written before them, and they must not be acknowledged.
    if (!gate_open()) {
      return Answer(batches, codes::kNotOwner,
                    "this node lost the partition while appending; the outcome is unknown, retry");
    }
    Answer(batches, "", "");
  }

  KafkaLog& log_;
  const uint32_t partition_;
  Reports reports_;
  std::unique_ptr<RdKafka::Producer> producer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;  // guarded by mu_
  bool closing_ = false;     // guarded by mu_
  bool dead_ = false;        // the commit thread's
  std::string dead_why_;
  std::string head_;  // the chain's head; empty: read it from the log (the commit thread's)
  std::thread thread_;
};

// Serves delivery reports and client events on the poll thread.
class KafkaLog::DeliveryHandler final : public RdKafka::DeliveryReportCb, public RdKafka::EventCb {
 public:
  explicit DeliveryHandler(std::atomic<bool>* latched) : latched_(latched) {}

  void dr_cb(RdKafka::Message& message) override {
    auto* slot = static_cast<PendingAppend::Slot*>(message.msg_opaque());
    PendingAppend* p = slot->owner;
    if (message.err() == RdKafka::ERR_NO_ERROR) {
      p->offsets[slot->index] = static_cast<uint64_t>(message.offset());
    } else {
      latched_->store(true);
      p->SetError(message.errstr());
    }
    p->Finish(1);
  }

  void event_cb(RdKafka::Event& event) override {
    if (event.type() == RdKafka::Event::EVENT_ERROR && event.fatal()) latched_->store(true);
  }

 private:
  std::atomic<bool>* latched_;
};

KafkaLog::KafkaLog(const LogOptions& options)
    : brokers_(options.uri.substr(std::string("kafka://").size())),
      topic_(options.kafka_topic),
      partitions_(options.partitions),
      append_timeout_(options.kafka_append_timeout),
      delivery_(std::make_unique<DeliveryHandler>(&latched_)),
      extra_config_(options.kafka_config),
      transactional_(options.kafka_transactional),
      node_id_(options.node_id),
      chain_(options.partitions),
      chain_mu_(new std::mutex[options.partitions]) {
  for (uint32_t p = 0; p < partitions_; ++p) readers_.push_back(std::make_unique<Reader>());
  txn_writers_.resize(partitions_);
}

std::string KafkaLog::DeletesRecords(
    const std::vector<std::pair<std::string, std::string>>& config) {
  for (const auto& [key, value] : config) {
    if (key == "cleanup.policy" && value.find("compact") != std::string::npos) {
      return "cleanup.policy=" + value + " compacts records away; set cleanup.policy=delete";
    }
    if ((key == "retention.ms" || key == "retention.bytes") && value != "-1") {
      return key + "=" + value + " deletes old records; set " + key + "=-1";
    }
  }
  return "";
}

Result<std::vector<std::pair<std::string, std::string>>> KafkaTopicConfig(
    RdKafka::Handle& client, const std::string& topic, std::chrono::milliseconds timeout) {
  rd_kafka_t* rk = client.c_ptr();
  if (rd_kafka_controllerid(rk, static_cast<int>(timeout.count())) < 0) {
    return Fail(codes::kUnavailable, "the brokers name no controller");
  }
  std::unique_ptr<rd_kafka_queue_t, void (*)(rd_kafka_queue_t*)> queue(rd_kafka_queue_new(rk),
                                                                       rd_kafka_queue_destroy);
  rd_kafka_ConfigResource_t* resource =
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  rd_kafka_AdminOptions_t* options =
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
  char err[256];
  rd_kafka_AdminOptions_set_request_timeout(options, static_cast<int>(timeout.count()), err,
                                            sizeof err);
  rd_kafka_DescribeConfigs(rk, &resource, 1, options, queue.get());
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_ConfigResource_destroy(resource);
  std::unique_ptr<rd_kafka_event_t, void (*)(rd_kafka_event_t*)> event(
      rd_kafka_queue_poll(queue.get(), static_cast<int>(timeout.count()) + 1000),
      rd_kafka_event_destroy);
  if (!event || rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Fail(codes::kUnavailable,
                event ? rd_kafka_event_error_string(event.get()) : "no answer");
  }
  std::vector<std::pair<std::string, std::string>> config;
  const auto* result = rd_kafka_event_DescribeConfigs_result(event.get());
  size_t n = 0;
  const rd_kafka_ConfigResource_t** resources =
      result ? rd_kafka_DescribeConfigs_result_resources(result, &n) : nullptr;
  for (size_t i = 0; i < n; ++i) {
    size_t m = 0;
    const rd_kafka_ConfigEntry_t** entries = rd_kafka_ConfigResource_configs(resources[i], &m);
    for (size_t j = 0; j < m; ++j) {
      const char* value = rd_kafka_ConfigEntry_value(entries[j]);
      config.emplace_back(rd_kafka_ConfigEntry_name(entries[j]), value ? value : "");
    }
  }
  if (n == 0) return Fail(codes::kUnavailable, "no config in the answer");
  return config;
}

Status KafkaLog::CheckTopicConfig(std::chrono::milliseconds timeout) {
  // Brokers that cannot describe configs (librdkafka's mock cluster among
  // them) are said, not refused.
  timeout = std::min(timeout, std::chrono::milliseconds(1500));  // real brokers answer in ms
  auto config = KafkaTopicConfig(*producer_, topic_, timeout);
  if (!config) {
    std::fprintf(stderr,
                 "runlog: cannot read the config of topic %s (%s), so it is not checked; make "
                 "sure retention.ms=-1, retention.bytes=-1, cleanup.policy=delete\n",
                 topic_.c_str(), config.error().message.c_str());
    return {};
  }
  if (std::string why = DeletesRecords(*config); !why.empty()) {
    return Fail(codes::kFailedPrecondition, "Kafka topic " + topic_ +
                                                " may delete events, and the log is the source of "
                                                "truth: " +
                                                why + " (docs/kafka.md)");
  }
  return {};
}

Result<std::unique_ptr<KafkaLog>> KafkaLog::Open(const LogOptions& options) {
  if (auto checked = CheckLogOptions(options); !checked) return std::unexpected(checked.error());
  const std::string brokers = options.uri.substr(std::string("kafka://").size());
  std::unique_ptr<KafkaLog> log(new KafkaLog(options));
  std::string err;
  auto conf = log->Conf();
  if (!Set(*conf, "enable.idempotence", "true", &err) || !Set(*conf, "acks", "all", &err) ||
      !Set(*conf, "linger.ms", "1", &err) ||
      !Set(*conf, "message.timeout.ms", std::to_string(options.kafka_append_timeout.count()),
           &err)) {
    return Fail(codes::kInternal, "librdkafka refused producer config: " + err);
  }
  if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(log->delivery_.get()), err) !=
          RdKafka::Conf::CONF_OK ||
      conf->set("event_cb", static_cast<RdKafka::EventCb*>(log->delivery_.get()), err) !=
          RdKafka::Conf::CONF_OK) {
    return Fail(codes::kInternal, "librdkafka refused callbacks: " + err);
  }
  log->producer_.reset(RdKafka::Producer::create(conf.get(), err));
  if (!log->producer_) return Fail(codes::kUnavailable, "cannot create Kafka producer: " + err);

  RdKafka::Metadata* raw_md = nullptr;
  RdKafka::ErrorCode rc = log->producer_->metadata(
      true, nullptr, &raw_md, static_cast<int>(options.kafka_connect_timeout.count()));
  std::unique_ptr<RdKafka::Metadata> md(raw_md);
  if (rc != RdKafka::ERR_NO_ERROR) {
    return Fail(codes::kUnavailable, "cannot reach Kafka brokers at " + brokers + " within " +
                                         std::to_string(options.kafka_connect_timeout.count()) +
                                         " ms: " + RdKafka::err2str(rc));
  }
  const RdKafka::TopicMetadata* topic = nullptr;
  for (const auto* t : *md->topics()) {
    if (t->topic() == options.kafka_topic) topic = t;
  }
  if (topic == nullptr || topic->err() != RdKafka::ERR_NO_ERROR) {
    return Fail(codes::kFailedPrecondition,
                "Kafka topic " + options.kafka_topic + " does not exist at " + brokers +
                    "; create it with " + std::to_string(options.partitions) +
                    " partitions (docs/kafka.md)");
  }
  if (topic->partitions()->size() != options.partitions) {
    return Fail(codes::kFailedPrecondition,
                "Kafka topic " + options.kafka_topic + " has " +
                    std::to_string(topic->partitions()->size()) + " partitions, not " +
                    std::to_string(options.partitions) + "; start with --partitions " +
                    std::to_string(topic->partitions()->size()));
  }
  if (auto s = log->CheckTopicConfig(options.kafka_connect_timeout); !s) {
    return std::unexpected(s.error());
  }
  KafkaLog* self = log.get();
  log->poller_ = std::thread([self] {
    while (!self->stopping_.load()) {
      self->producer_->poll(50);
      self->RunDeferred();
    }
  });
  return log;
}

void KafkaLog::Defer(std::function<void()> task) {
  std::lock_guard lock(deferred_mu_);
  deferred_.push_back(std::move(task));
}

void KafkaLog::RunDeferred() {
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard lock(deferred_mu_);
    tasks.swap(deferred_);
  }
  for (auto& t : tasks) t();
}

KafkaLog::~KafkaLog() {
  for (uint32_t p = 0; p < partitions_; ++p) CloseWriter(p);
  stopping_.store(true);
  if (poller_.joinable()) poller_.join();
  RunDeferred();
  if (producer_) {
    producer_->flush(static_cast<int>(append_timeout_.count()));
    // Whatever flush could not deliver is purged, which still reports it, so
    // every pending append is answered (with an error) before we go.
    producer_->purge(RdKafka::Producer::PURGE_QUEUE | RdKafka::Producer::PURGE_INFLIGHT);
    while (producer_->outq_len() > 0) producer_->poll(10);
  }
  // Readers never join a group or commit, so they are destroyed without
  // close(), which would wait on group shutdown (up to session.timeout.ms).
  for (auto& r : readers_) {
    std::lock_guard lock(r->mu);
    r->consumer.reset();
  }
}

Status KafkaLog::AppendAsync(uint32_t partition, std::span<const Event> events,
                             AppendCallback done) {
  if (auto s = ValidateAppend(partition, partitions_, events); !s) return s;
  if (stopping_.load()) return Fail(codes::kUnavailable, "log is closing");
  if (transactional_) {
    std::shared_lock lock(txn_mu_);  // encoding runs beside other partitions' appends
    TxnWriter* writer = txn_writers_[partition].get();
    if (writer == nullptr) {
      return Fail(codes::kNotOwner,
                  "this node does not write partition " + std::to_string(partition) + "; retry");
    }
    return writer->Enqueue(events, std::move(done));
  }
  if (latched_.load()) {
    return Fail(codes::kLogLatched,
                "a Kafka append failed earlier; the log refuses appends until it is reopened");
  }
  auto* pending =
      new PendingAppend(events.size(), topic_ + "/" + std::to_string(partition), std::move(done));
  // The poll thread frees queue space by serving delivery reports, so a
  // callback running on it must never wait for space.
  const bool on_poller = std::this_thread::get_id() == poller_.get_id();
  const auto give_up = std::chrono::steady_clock::now() + append_timeout_;
  // Produce order is the partition's order (the producer is idempotent), so
  // records are chained as they are produced, one appender at a time.
  std::lock_guard chain_lock(chain_mu_[partition]);
  std::string& head = chain_[partition];
  if (head.empty()) {  // the first append since Open
    auto found = ChainHead(*this, partition);
    if (!found) {
      delete pending;
      return std::unexpected(found.error());
    }
    head = std::move(*found);
  }
  for (size_t i = 0; i < events.size(); ++i) {
    std::string value = EncodeEventJson(events[i]);
    SetPrev(value, head);
    const std::string& key = events[i].aggregate_id;
    RdKafka::ErrorCode rc;
    RdKafka::Headers* headers = HeadersOf(events[i], node_id_);
    while ((rc = producer_->produce(topic_, static_cast<int32_t>(partition),
                                    RdKafka::Producer::RK_MSG_COPY, value.data(), value.size(),
                                    key.data(), key.size(), events[i].timestamp_ms, headers,
                                    &pending->slots[i])) == RdKafka::ERR__QUEUE_FULL &&
           !on_poller && !stopping_.load() && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (rc != RdKafka::ERR_NO_ERROR) delete headers;  // produced: librdkafka owns them
    if (rc != RdKafka::ERR_NO_ERROR) {
      if (i == 0) {  // nothing was queued: refused at once
        delete pending;
        return Fail(codes::kUnavailable, "Kafka append to " + topic_ + "/" +
                                             std::to_string(partition) +
                                             " refused: " + RdKafka::err2str(rc));
      }
      latched_.store(true);  // part of the batch may land: stop guessing (and chaining)
      pending->SetError(RdKafka::err2str(rc));
      // The rest were never queued. Their Finish may be the last one, which
      // answers: on the poller, never on the appending thread (EventLog's contract).
      Defer([pending, rest = events.size() - i] { pending->Finish(rest); });
      return {};
    }
    head = RecordHash(value);
  }
  return {};
}

Status KafkaLog::OpenWriter(uint32_t partition) {
  if (!transactional_) return Fail(codes::kFailedPrecondition, "the log is not transactional");
  if (partition >= partitions_) return Fail(codes::kInvalidArgument, "no such partition");
  CloseWriter(partition);
  auto writer = std::make_unique<TxnWriter>(*this, partition);
  if (auto s = writer->Open(); !s) return s;
  std::unique_lock lock(txn_mu_);
  txn_writers_[partition] = std::move(writer);
  return {};
}

void KafkaLog::CloseWriter(uint32_t partition) {
  std::unique_ptr<TxnWriter> writer;
  {
    std::unique_lock lock(txn_mu_);
    if (partition < txn_writers_.size()) writer = std::move(txn_writers_[partition]);
  }
  if (writer) writer->Close();
}

bool KafkaLog::writer_open(uint32_t partition) const {
  std::shared_lock lock(txn_mu_);
  return partition < txn_writers_.size() && txn_writers_[partition] != nullptr;
}

Result<uint64_t> KafkaLog::EndOffset(uint32_t partition) {
  if (partition >= partitions_) return Fail(codes::kInvalidArgument, "no such partition");
  int64_t low = 0, high = 0;
  RdKafka::ErrorCode rc = producer_->query_watermark_offsets(
      topic_, static_cast<int32_t>(partition), &low, &high, 5000);
  if (rc != RdKafka::ERR_NO_ERROR) {
    return Fail(codes::kUnavailable, "cannot read end offset of " + topic_ + "/" +
                                         std::to_string(partition) + ": " + RdKafka::err2str(rc));
  }
  return static_cast<uint64_t>(high);
}

// Requires the reader's mutex.
Status KafkaLog::EnsureConsumer(Reader* r) {
  if (r->consumer) return {};
  auto conf = Conf();
  std::string err;
  // A KafkaConsumer needs a group.id even though readers only assign.
  if (!Set(*conf, "group.id", "runlog-reader", &err) ||
      !Set(*conf, "isolation.level", "read_committed", &err) ||
      !Set(*conf, "enable.auto.commit", "false", &err) ||
      !Set(*conf, "enable.partition.eof", "true", &err) ||
      !Set(*conf, "auto.offset.reset", "error", &err) ||
      !Set(*conf, "fetch.wait.max.ms", "10", &err) ||
      !Set(*conf, "fetch.error.backoff.ms", "10", &err)) {
    return Fail(codes::kInternal, "librdkafka refused consumer config: " + err);
  }
  r->consumer.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!r->consumer) return Fail(codes::kUnavailable, "cannot create Kafka consumer: " + err);
  return {};
}

Result<std::vector<LogRecord>> KafkaLog::Consume(uint32_t partition, uint64_t from,
                                                 size_t max_records, Clock::time_point deadline,
                                                 uint64_t stop_at, std::vector<RawRecord>* raw) {
  const bool tail = stop_at == UINT64_MAX;
  std::vector<LogRecord> out;
  bool reached_end = false;  // an EOF, or a record at or past stop_at
  const Clock::time_point full_deadline = deadline;
  if (max_records == 0 || from >= stop_at) return out;
  if (partition >= partitions_) return Fail(codes::kInvalidArgument, "no such partition");
  Reader& r = *readers_[partition];
  std::lock_guard lock(r.mu);
  if (auto s = EnsureConsumer(&r); !s) return std::unexpected(s.error());
  if (r.position != static_cast<int64_t>(from)) {
    std::vector<RdKafka::TopicPartition*> tps{RdKafka::TopicPartition::create(
        topic_, static_cast<int32_t>(partition), static_cast<int64_t>(from))};
    RdKafka::ErrorCode rc = r.consumer->assign(tps);
    RdKafka::TopicPartition::destroy(tps);
    if (rc != RdKafka::ERR_NO_ERROR) {
      return Fail(codes::kUnavailable, "cannot assign " + topic_ + "/" + std::to_string(partition) +
                                           ": " + RdKafka::err2str(rc));
    }
    r.position = static_cast<int64_t>(from);
  }
  // A tail that reached the end takes what is already fetched and stops: the
  // fetcher queues an end-of-partition between small batches, and stopping
  // at each would take one batch per call.
  bool draining = false;
  const auto count = [&] { return raw != nullptr ? raw->size() : out.size(); };
  while (count() < max_records && static_cast<uint64_t>(r.position) < stop_at) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (!draining && left.count() <= 0) break;
    std::unique_ptr<RdKafka::Message> m(
        r.consumer->consume(draining ? 0 : static_cast<int>(std::min<int64_t>(left.count(), 100))));
    if (m->err() == RdKafka::ERR__TIMED_OUT) {
      if (draining) break;
      continue;
    }
    if (m->err() == RdKafka::ERR__PARTITION_EOF) {
      if (tail && count() > 0) {
        draining = true;
        continue;
      }
      // Offsets may skip (transaction markers, aborted records), so the end
      // can come before `stop_at`. An end met before any record may be one
      // left from the last call: records soon after it say it was.
      if (!tail) {
        reached_end = true;
        if (count() > 0) break;
        deadline = std::min(deadline, Clock::now() + std::chrono::milliseconds(100));
      }
      continue;
    }
    if (m->err() != RdKafka::ERR_NO_ERROR) {
      const int64_t at = r.position;
      r.position = -1;  // reassign on the next call
      if (m->err() == RdKafka::ERR__AUTO_OFFSET_RESET) {
        return CorruptRecord(partition, static_cast<uint64_t>(at), "records missing (deleted?)");
      }
      return Fail(codes::kUnavailable,
                  "reading " + topic_ + "/" + std::to_string(partition) + ": " + m->errstr());
    }
    // A record past the position is no gap in the log: a transaction's
    // commit marker or an aborted record (skipped by read_committed) sits there.
    if (m->partition() != static_cast<int32_t>(partition) || m->offset() < r.position) continue;
    if (static_cast<uint64_t>(m->offset()) >= stop_at) {
      r.position = -1;  // consumed past what was asked: reassign on the next call
      reached_end = true;
      break;
    }
    const std::string_view bytes(static_cast<const char*>(m->payload()), m->len());
    if (raw != nullptr) {
      raw->push_back({static_cast<uint64_t>(m->offset()), std::string(bytes)});
      r.position = m->offset() + 1;
      reached_end = false;
      deadline = full_deadline;
      continue;
    }
    auto record = DecodeRecord(partition, static_cast<uint64_t>(m->offset()), bytes);
    if (!record) {
      r.position = -1;  // a retry must read this record again, not skip it
      return CorruptRecord(partition, static_cast<uint64_t>(m->offset()), record.error().message);
    }
    out.push_back(std::move(*record));
    r.position = m->offset() + 1;
    reached_end = false;
    deadline = full_deadline;
  }
  if (!tail && count() < max_records && r.position >= 0 &&
      static_cast<uint64_t>(r.position) < stop_at && !reached_end) {
    const int64_t at = r.position;
    r.position = -1;
    return Fail(codes::kUnavailable, "timed out reading " + topic_ + "/" +
                                         std::to_string(partition) + " at offset " +
                                         std::to_string(at));
  }
  return out;
}

Result<std::vector<LogRecord>> KafkaLog::Read(uint32_t partition, uint64_t from,
                                              size_t max_records) {
  auto end = EndOffset(partition);
  if (!end) return std::unexpected(end.error());
  if (from >= *end) return std::vector<LogRecord>{};
  uint64_t stop = from + std::min<uint64_t>(max_records, *end - from);
  return Consume(partition, from, max_records, Clock::now() + std::chrono::seconds(10), stop);
}

Result<std::vector<EventLog::RawRecord>> KafkaLog::ReadRaw(uint32_t partition, uint64_t from,
                                                           size_t max_records) {
  auto end = EndOffset(partition);
  if (!end) return std::unexpected(end.error());
  std::vector<RawRecord> raw;
  if (from >= *end) return raw;
  uint64_t stop = from + std::min<uint64_t>(max_records, *end - from);
  auto r =
      Consume(partition, from, max_records, Clock::now() + std::chrono::seconds(10), stop, &raw);
  if (!r) return std::unexpected(r.error());
  return raw;
}

Result<std::vector<LogRecord>> KafkaLog::Tail(uint32_t partition, uint64_t from, size_t max_records,
                                              std::chrono::milliseconds wait) {
  return Consume(partition, from, max_records, Clock::now() + wait, UINT64_MAX);
}

}  // namespace runlog::events
