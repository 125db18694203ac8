#include "api/kafka_commands.h"

#include <librdkafka/rdkafkacpp.h>

#include "events/canonical_json.h"
#include "events/kafka_log.h"
#include "infra/base/json.h"

namespace runlog::api {
namespace {

std::unique_ptr<RdKafka::Conf> ConfFor(const KafkaCommands::Options& o) {
  return events::KafkaClientConf(o.brokers, "runlog-commands", o.kafka_config);
}

std::string Quoted(const std::string& s) {
  std::string out;
  events::AppendCanonicalString(s, &out);
  return out;
}

}  // namespace

KafkaCommands::KafkaCommands(Options options) : options_(std::move(options)) {}

KafkaCommands::~KafkaCommands() { Stop(); }

Status KafkaCommands::Start() {
  std::string err;
  auto producer_conf = ConfFor(options_);
  producer_conf->set("enable.idempotence", "true", err);
  producer_.reset(RdKafka::Producer::create(producer_conf.get(), err));
  if (!producer_) return Fail(codes::kUnavailable, "cannot create the replies producer: " + err);
  if (!events::KafkaTopicExists(*producer_, options_.commands_topic)) {
    return Fail(codes::kNotFound, "Kafka topic " + options_.commands_topic + " does not exist");
  }
  auto conf = ConfFor(options_);
  if (conf->set("group.id", "runlog-commands-" + options_.events_topic, err) !=
          RdKafka::Conf::CONF_OK ||
      conf->set("enable.auto.commit", "false", err) != RdKafka::Conf::CONF_OK ||
      conf->set("auto.offset.reset", "earliest", err) != RdKafka::Conf::CONF_OK ||
      conf->set("session.timeout.ms", std::to_string(options_.session_timeout.count()), err) !=
          RdKafka::Conf::CONF_OK ||
      conf->set("heartbeat.interval.ms",
                std::to_string(std::max<int64_t>(100, options_.session_timeout.count() / 6)),
                err) != RdKafka::Conf::CONF_OK ||
      conf->set("partition.assignment.strategy", "cooperative-sticky", err) !=
          RdKafka::Conf::CONF_OK) {
    return Fail(codes::kInvalidArgument, "commands consumer config: " + err);
  }
  consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!consumer_) return Fail(codes::kUnavailable, "cannot create the commands consumer: " + err);
  if (auto rc = consumer_->subscribe({options_.commands_topic}); rc != RdKafka::ERR_NO_ERROR) {
    return Fail(codes::kUnavailable,
                "cannot subscribe to " + options_.commands_topic + ": " + RdKafka::err2str(rc));
  }
  thread_ = std::thread([this] { Loop(); });
  return {};
}

void KafkaCommands::Stop() {
  if (stopping_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  if (consumer_) consumer_->close();
  if (producer_) producer_->flush(5000);
  consumer_.reset();
  producer_.reset();
}

void KafkaCommands::Loop() {
  while (!stopping_.load()) {
    std::unique_ptr<RdKafka::Message> m(consumer_->consume(200));
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    const std::string key = m->key() != nullptr ? *m->key() : "";
    const std::string value(static_cast<const char*>(m->payload()), m->len());
    Handle(key, value, m->partition(), m->offset());
    // Answered (or dead-lettered): the group moves past it.
    consumer_->commitAsync(m.get());
    producer_->poll(0);
  }
}

void KafkaCommands::Produce(const std::string& topic, const std::string& key,
                            const std::string& value) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    const auto rc = producer_->produce(
        topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
        const_cast<char*>(value.data()), value.size(), key.data(), key.size(), 0, nullptr);
    if (rc != RdKafka::ERR__QUEUE_FULL) return;
    producer_->poll(10);
  }
}

void KafkaCommands::Handle(const std::string& key, const std::string& value, int32_t partition,
                           int64_t offset) {
  const auto dead_letter = [&](const std::string& reason) {
    Produce(options_.dlq_topic, key,
            "{\"reason\":" + Quoted(reason) + ",\"partition\":" + std::to_string(partition) +
                ",\"offset\":" + std::to_string(offset) + ",\"key\":" + Quoted(key) +
                ",\"value\":" + Quoted(value) + "}");
  };
  json::Document doc;
  if (!json::Parse(value, &doc) || !doc.IsObject())
    return dead_letter("the value is not a JSON object");
  const std::string tenant = json::String(doc, "tenant_id");
  const std::string command = json::String(doc, "command");
  const std::string correlation = json::String(doc, "correlation_id", key);
  const std::string plan = tenant.empty() ? "" : options_.keys->PlanOfTenant(tenant);
  if (plan.empty()) return dead_letter("unknown tenant_id " + Quoted(tenant));
  Call call;
  call.method = "POST";
  call.content_type = "application/json";
  call.principal = services::KeyRecord{"kafka:commands", tenant, {"write"}, plan};
  if (command == "create") {
    const json::Value* task = json::Find(doc, "task");
    if (key.empty()) return dead_letter("a create needs the message key: its idempotency key");
    if (task == nullptr || !task->IsObject()) return dead_letter("a create needs \"task\": {…}");
    call.path = "/v1/tasks";
    call.body = json::Write(*task);
    call.idempotency_key = key;
  } else if (command == "cancel") {
    const std::string task_id = json::String(doc, "task_id");
    if (task_id.empty()) return dead_letter("a cancel needs \"task_id\"");
    call.path = "/v1/tasks/" + task_id + "/cancel";
    call.body = "{}";
  } else {
    return dead_letter("unknown command " + Quoted(command) + "; use create or cancel");
  }
  std::string wire;
  for (int attempt = 0; attempt < 5 && !stopping_.load(); ++attempt) {
    auto reply = std::make_shared<CapturedReply>();
    auto answer = reply->Answer();
    options_.api->Handle(call, reply);
    if (answer.wait_for(options_.answer_timeout) != std::future_status::ready) {
      wire = "504 {}";
      continue;
    }
    wire = answer.get();
    if (std::atoi(wire.c_str()) < 500) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200 << attempt));
  }
  const int status = std::atoi(wire.c_str());
  const std::string body = wire.substr(std::min(wire.size(), wire.find(' ') + 1));
  Produce(options_.replies_topic, correlation,
          "{\"correlation_id\":" + Quoted(correlation) + ",\"status\":" + std::to_string(status) +
              ",\"body\":" + (body.empty() ? "null" : body) + "}");
  if (status >= 400) dead_letter("answered " + std::to_string(status) + ": " + body);
}

}  // namespace runlog::api
