#include "events/kafka_log.h"

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

std::unique_ptr<RdKafka::Conf> GlobalConf(const std::string& brokers) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  conf->set("bootstrap.servers", brokers, err);
  conf->set("client.id", "runlog", err);
  conf->set("log_level", "3", err);  // errors only; failures reach callers as Results
  return conf;
}

bool Set(RdKafka::Conf& conf, const std::string& key, const std::string& value, std::string* err) {
  return conf.set(key, value, *err) == RdKafka::Conf::CONF_OK;
}

}  // namespace

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

KafkaLog::KafkaLog(std::string brokers, std::string topic, uint32_t partitions,
                   std::chrono::milliseconds append_timeout)
    : brokers_(std::move(brokers)),
      topic_(std::move(topic)),
      partitions_(partitions),
      append_timeout_(append_timeout),
      delivery_(std::make_unique<DeliveryHandler>(&latched_)) {
  for (uint32_t p = 0; p < partitions; ++p) readers_.push_back(std::make_unique<Reader>());
}

Result<std::unique_ptr<KafkaLog>> KafkaLog::Open(const LogOptions& options) {
  const std::string brokers = options.uri.substr(std::string("kafka://").size());
  if (brokers.empty()) return Fail(codes::kInvalidArgument, "kafka:// needs HOST:PORT");
  if (options.partitions == 0 || options.partitions > 4096) {
    return Fail(codes::kInvalidArgument, "partitions must be between 1 and 4096");
  }
  std::unique_ptr<KafkaLog> log(
      new KafkaLog(brokers, options.kafka_topic, options.partitions, options.kafka_append_timeout));
  auto conf = GlobalConf(brokers);
  std::string err;
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
  for (size_t i = 0; i < events.size(); ++i) {
    std::string value = EncodeEvent(events[i]);
    const std::string& key = events[i].aggregate_id;
    RdKafka::ErrorCode rc;
    while ((rc = producer_->produce(topic_, static_cast<int32_t>(partition),
                                    RdKafka::Producer::RK_MSG_COPY, value.data(), value.size(),
                                    key.data(), key.size(), events[i].timestamp_ms,
                                    &pending->slots[i])) == RdKafka::ERR__QUEUE_FULL &&
           !on_poller && !stopping_.load() && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (rc != RdKafka::ERR_NO_ERROR) {
      if (i == 0) {  // nothing was queued: refused at once
        delete pending;
        return Fail(codes::kUnavailable, "Kafka append to " + topic_ + "/" +
                                             std::to_string(partition) +
                                             " refused: " + RdKafka::err2str(rc));
      }
      latched_.store(true);  // part of the batch may land: stop guessing
      pending->SetError(RdKafka::err2str(rc));
      // The rest were never queued. Their Finish may be the last one, which
      // answers: on the poller, never on the appending thread (EventLog's contract).
      Defer([pending, rest = events.size() - i] { pending->Finish(rest); });
      return {};
    }
  }
  return {};
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
  auto conf = GlobalConf(brokers_);
  std::string err;
  // A KafkaConsumer needs a group.id even though readers only assign.
  if (!Set(*conf, "group.id", "runlog-reader", &err) ||
      !Set(*conf, "enable.auto.commit", "false", &err) ||
      !Set(*conf, "enable.partition.eof", "true", &err) ||
      !Set(*conf, "auto.offset.reset", "error", &err) ||
      !Set(*conf, "fetch.wait.max.ms", "10", &err)) {
    return Fail(codes::kInternal, "librdkafka refused consumer config: " + err);
  }
  r->consumer.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!r->consumer) return Fail(codes::kUnavailable, "cannot create Kafka consumer: " + err);
  return {};
}

Result<std::vector<LogRecord>> KafkaLog::Consume(uint32_t partition, uint64_t from,
                                                 size_t max_records, Clock::time_point deadline,
                                                 uint64_t stop_at) {
  const bool tail = stop_at == UINT64_MAX;
  std::vector<LogRecord> out;
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
  while (out.size() < max_records && static_cast<uint64_t>(r.position) < stop_at) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    std::unique_ptr<RdKafka::Message> m(
        r.consumer->consume(static_cast<int>(std::min<int64_t>(left.count(), 100))));
    if (m->err() == RdKafka::ERR__TIMED_OUT) continue;
    if (m->err() == RdKafka::ERR__PARTITION_EOF) {
      if (tail && !out.empty()) break;
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
    if (m->partition() != static_cast<int32_t>(partition) || m->offset() < r.position) continue;
    if (m->offset() != r.position) {
      const int64_t missing = r.position;
      r.position = -1;
      return CorruptRecord(partition, static_cast<uint64_t>(missing), "record missing");
    }
    auto event = DecodeEvent(std::string_view(static_cast<const char*>(m->payload()), m->len()));
    if (!event) {
      r.position = -1;  // a retry must read this record again, not skip it
      return CorruptRecord(partition, static_cast<uint64_t>(m->offset()), event.error().message);
    }
    out.push_back(LogRecord{partition, static_cast<uint64_t>(m->offset()), std::move(*event)});
    r.position = m->offset() + 1;
  }
  if (!tail && out.size() < max_records && static_cast<uint64_t>(r.position) < stop_at) {
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

Result<std::vector<LogRecord>> KafkaLog::Tail(uint32_t partition, uint64_t from, size_t max_records,
                                              std::chrono::milliseconds wait) {
  return Consume(partition, from, max_records, Clock::now() + wait, UINT64_MAX);
}

}  // namespace runlog::events
