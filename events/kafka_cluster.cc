#include "events/kafka_cluster.h"

#include <librdkafka/rdkafkacpp.h>

#include "events/canonical_json.h"
#include "events/kafka_log.h"
#include "infra/base/json.h"

namespace runlog::events {
namespace {

using Clock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

std::vector<uint32_t> PartitionsOf(const std::vector<RdKafka::TopicPartition*>& tps) {
  std::vector<uint32_t> out;
  for (const auto* tp : tps) out.push_back(static_cast<uint32_t>(tp->partition()));
  return out;
}

}  // namespace

class KafkaCluster::Rebalance final : public RdKafka::RebalanceCb, public RdKafka::EventCb {
 public:
  // The group's statistics say whether it is between rebalances ("steady"):
  // a commit sent during one would carry a stale generation, fail, and make
  // librdkafka drop the whole assignment as lost.
  void event_cb(RdKafka::Event& event) override {
    if (event.type() != RdKafka::Event::EVENT_STATS) return;
    json::Document stats;
    if (!json::Parse(event.str(), &stats) || !stats.IsObject()) return;
    const json::Value* cgrp = json::Find(stats, "cgrp");
    if (cgrp == nullptr || !cgrp->IsObject()) return;
    cluster_.steady_.store(json::String(*cgrp, "state") == "up" &&
                           json::String(*cgrp, "join_state") == "steady");
  }

  explicit Rebalance(KafkaCluster& cluster) : cluster_(cluster) {}
  void rebalance_cb(RdKafka::KafkaConsumer* consumer, RdKafka::ErrorCode err,
                    std::vector<RdKafka::TopicPartition*>& tps) override {
    const bool cooperative = consumer->rebalance_protocol() == "COOPERATIVE";
    const std::vector<uint32_t> partitions = PartitionsOf(tps);
    if (err == RdKafka::ERR__ASSIGN_PARTITIONS) {
      if (cooperative) {
        std::unique_ptr<RdKafka::Error> e(consumer->incremental_assign(tps));
      } else {
        consumer->assign(tps);
      }
      consumer->pause(tps);  // the group hands out ownership; nothing is fetched
      std::lock_guard lock(cluster_.mu_);
      for (uint32_t p : partitions) {
        if (cluster_.assigned_.insert(p).second) cluster_.to_acquire_.push_back(p);
      }
      cluster_.cv_.notify_all();
      return;
    }
    cluster_.Revoke(partitions, consumer->assignment_lost());
    if (cooperative) {
      std::unique_ptr<RdKafka::Error> e(consumer->incremental_unassign(tps));
    } else {
      consumer->unassign();
    }
  }

 private:
  KafkaCluster& cluster_;
};

KafkaCluster::KafkaCluster(Options options)
    : options_(std::move(options)),
      lease_(std::max<int64_t>(200,
                               (options_.session_timeout - options_.heartbeat).count() * 3 / 4)) {}

KafkaCluster::~KafkaCluster() { Stop(); }

Status KafkaCluster::Start() {
  auto conf = [&] {
    return KafkaClientConf(options_.brokers, "runlog-" + options_.node_id, options_.kafka_config);
  };
  std::string err;
  auto ok = [&](RdKafka::Conf& c, const char* key, const std::string& value) {
    return c.set(key, value, err) == RdKafka::Conf::CONF_OK;
  };
  rebalance_ = std::make_unique<Rebalance>(*this);
  auto group = conf();
  if (!ok(*group, "group.id", "runlog-owners-" + options_.topic) ||
      !ok(*group, "partition.assignment.strategy", "cooperative-sticky") ||
      !ok(*group, "session.timeout.ms", std::to_string(options_.session_timeout.count())) ||
      !ok(*group, "heartbeat.interval.ms", std::to_string(options_.heartbeat.count())) ||
      !ok(*group, "enable.auto.commit", "false") || !ok(*group, "statistics.interval.ms", "100") ||
      group->set("rebalance_cb", static_cast<RdKafka::RebalanceCb*>(rebalance_.get()), err) !=
          RdKafka::Conf::CONF_OK ||
      group->set("event_cb", static_cast<RdKafka::EventCb*>(rebalance_.get()), err) !=
          RdKafka::Conf::CONF_OK) {
    return Fail(codes::kInvalidArgument, "cluster group config: " + err);
  }
  group_.reset(RdKafka::KafkaConsumer::create(group.get(), err));
  if (!group_) return Fail(codes::kUnavailable, "cannot create the cluster's consumer: " + err);

  auto announcer = conf();
  if (!ok(*announcer, "linger.ms", "0")) return Fail(codes::kInvalidArgument, err);
  announcer_.reset(RdKafka::Producer::create(announcer.get(), err));
  if (!announcer_) return Fail(codes::kUnavailable, "cannot create the announcer: " + err);
  if (!KafkaTopicExists(*announcer_, options_.nodes_topic)) {
    return Fail(codes::kFailedPrecondition,
                "Kafka topic " + options_.nodes_topic +
                    " does not exist; create it (1 partition, cleanup.policy=compact; "
                    "docs/kafka.md)");
  }

  auto directory = conf();
  if (!ok(*directory, "group.id", "runlog-directory") ||
      !ok(*directory, "enable.auto.commit", "false") ||
      !ok(*directory, "fetch.wait.max.ms", "50")) {
    return Fail(codes::kInvalidArgument, "directory config: " + err);
  }
  directory_.reset(RdKafka::KafkaConsumer::create(directory.get(), err));
  if (!directory_) return Fail(codes::kUnavailable, "cannot create the directory reader: " + err);
  int64_t low = 0, high = 0;
  if (directory_->query_watermark_offsets(options_.nodes_topic, 0, &low, &high, 10'000) !=
      RdKafka::ERR_NO_ERROR) {
    return Fail(codes::kUnavailable, "cannot read " + options_.nodes_topic);
  }
  // Announcements come every second from each node: the last few thousand hold everyone's.
  std::vector<RdKafka::TopicPartition*> from{
      RdKafka::TopicPartition::create(options_.nodes_topic, 0, std::max(low, high - 4096))};
  directory_->assign(from);
  RdKafka::TopicPartition::destroy(from);

  if (auto rc = group_->subscribe({options_.topic}); rc != RdKafka::ERR_NO_ERROR) {
    return Fail(codes::kUnavailable, "cannot join the cluster: " + RdKafka::err2str(rc));
  }
  group_thread_ = std::thread([this] { GroupLoop(); });
  acquire_thread_ = std::thread([this] { AcquireLoop(); });
  directory_thread_ = std::thread([this] { DirectoryLoop(); });
  return {};
}

void KafkaCluster::Stop() {
  if (stopping_.exchange(true)) return;
  cv_.notify_all();
  if (acquire_thread_.joinable()) acquire_thread_.join();
  if (group_thread_.joinable()) group_thread_.join();
  if (group_) {
    // Leaving the group revokes every partition (on_revoked) and hands them
    // to the others at once, instead of after the session timeout.
    group_->close();
    std::vector<uint32_t> rest;
    {
      std::lock_guard lock(mu_);
      rest.assign(assigned_.begin(), assigned_.end());
    }
    Revoke(rest, false);
  }
  if (directory_thread_.joinable()) directory_thread_.join();
  if (announcer_) {
    Announce(true);
    announcer_->flush(2000);
  }
  if (directory_) directory_->close();
  group_.reset();
  directory_.reset();
  announcer_.reset();
}

bool KafkaCluster::LeaseHolds(uint32_t partition) const {
  if (NowNs() >= lease_until_ns_.load()) return false;
  std::lock_guard lock(mu_);
  return owned_.contains(partition);
}

void KafkaCluster::Revoke(const std::vector<uint32_t>& partitions, bool lost) {
  std::vector<uint32_t> were_owned;
  {
    std::lock_guard lock(mu_);
    for (uint32_t p : partitions) {
      assigned_.erase(p);
      handed_.erase(p);
      std::erase(to_acquire_, p);
      if (owned_.erase(p) > 0) were_owned.push_back(p);
    }
  }
  for (uint32_t p : were_owned) {
    options_.on_revoked(p);
    if (options_.on_move) options_.on_move(lost ? "lost" : "released", p);
  }
  if (!partitions.empty()) changed_.store(true);
}

void KafkaCluster::RenewLease() {
  std::vector<RdKafka::TopicPartition*> tps;
  {
    std::lock_guard lock(mu_);
    for (uint32_t p : assigned_) {
      // What is not owned yet keeps what its previous owner committed.
      int64_t at = -1;
      if (owned_.contains(p) && options_.position) {
        at = static_cast<int64_t>(options_.position(p));
      } else if (auto h = handed_.find(p); h != handed_.end()) {
        at = static_cast<int64_t>(h->second);
      }
      if (at < 0) continue;
      tps.push_back(RdKafka::TopicPartition::create(options_.topic, static_cast<int32_t>(p), at));
    }
  }
  if (tps.empty() || !steady_.load()) {
    RdKafka::TopicPartition::destroy(tps);
    return;
  }
  const int64_t sent = NowNs();
  // The coordinator accepts a commit only from a member of the current
  // generation: proof of membership at `sent`, or earlier.
  if (group_->commitSync(tps) == RdKafka::ERR_NO_ERROR) {
    lease_until_ns_.store(sent + std::chrono::nanoseconds(lease_).count());
  }
  RdKafka::TopicPartition::destroy(tps);
}

void KafkaCluster::GroupLoop() {
  auto next_renewal = Clock::now();
  while (!stopping_.load()) {
    std::unique_ptr<RdKafka::Message> m(group_->consume(50));
    if (Clock::now() >= next_renewal) {
      RenewLease();
      next_renewal = Clock::now() + options_.heartbeat / 2;
    }
  }
}

void KafkaCluster::AcquireLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_.load()) {
    // Owned partitions whose writer failed are taken again: fenced anew, recovered.
    if (options_.writer_failed) {
      for (uint32_t p : std::vector<uint32_t>(owned_.begin(), owned_.end())) {
        if (options_.writer_failed(p)) {
          owned_.erase(p);
          to_acquire_.push_back(p);
        }
      }
    }
    if (to_acquire_.empty()) {
      cv_.wait_for(lock, std::chrono::milliseconds(200));
      continue;
    }
    const uint32_t p = to_acquire_.front();
    to_acquire_.pop_front();
    lock.unlock();
    uint64_t handed = 0;
    {
      std::vector<RdKafka::TopicPartition*> tps{
          RdKafka::TopicPartition::create(options_.topic, static_cast<int32_t>(p))};
      if (group_->committed(tps, 5000) == RdKafka::ERR_NO_ERROR && tps[0]->offset() >= 0) {
        handed = static_cast<uint64_t>(tps[0]->offset());
      }
      RdKafka::TopicPartition::destroy(tps);
      std::lock_guard handed_lock(mu_);
      handed_[p] = handed;
    }
    Status s = options_.on_assigned(p, handed);
    if (s) {
      // A write needs a lease renewed after the assignment.
      const int64_t since = NowNs();
      while (!stopping_.load() &&
             lease_until_ns_.load() - std::chrono::nanoseconds(lease_).count() < since) {
        RenewLease();
        if (lease_until_ns_.load() - std::chrono::nanoseconds(lease_).count() < since) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        std::lock_guard check(mu_);
        if (!assigned_.contains(p)) break;
      }
    }
    lock.lock();
    if (!s) {
      std::fprintf(stderr, "runlogd: cannot take partition %u yet: %s\n", p,
                   s.error().message.c_str());
      if (assigned_.contains(p)) to_acquire_.push_back(p);
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      lock.lock();
      continue;
    }
    if (assigned_.contains(p)) {
      owned_.insert(p);
      changed_.store(true);
      lock.unlock();
      if (options_.on_move) options_.on_move("acquired", p);
      lock.lock();
    } else {
      lock.unlock();
      options_.on_revoked(p);  // revoked while it was being taken
      lock.lock();
    }
  }
}

std::string KafkaCluster::Announcement(bool leaving) const {
  std::string out = "{\"node\":";
  AppendCanonicalString(options_.node_id, &out);
  out += ",\"advertise\":";
  AppendCanonicalString(options_.advertise, &out);
  out += ",\"partitions\":[";
  if (!leaving) {
    std::lock_guard lock(mu_);
    bool first = true;
    for (uint32_t p : owned_) {
      if (!first) out += ",";
      first = false;
      out += std::to_string(p);
    }
  }
  out += std::string("],\"left\":") + (leaving ? "true" : "false") + "}";
  return out;
}

void KafkaCluster::Announce(bool leaving) {
  const std::string value = Announcement(leaving);
  announcer_->produce(options_.nodes_topic, 0, RdKafka::Producer::RK_MSG_COPY,
                      const_cast<char*>(value.data()), value.size(), options_.node_id.data(),
                      options_.node_id.size(), 0, nullptr);
  announcer_->poll(0);
}

void KafkaCluster::DirectoryLoop() {
  auto next_announce = Clock::now();
  while (!stopping_.load()) {
    if (changed_.exchange(false) || Clock::now() >= next_announce) {
      Announce(false);
      next_announce = Clock::now() + std::chrono::seconds(1);
    }
    std::unique_ptr<RdKafka::Message> m(directory_->consume(100));
    if (m->err() != RdKafka::ERR_NO_ERROR) continue;
    json::Document doc;
    if (!json::Parse(std::string_view(static_cast<const char*>(m->payload()), m->len()), &doc) ||
        !doc.IsObject()) {
      continue;
    }
    Seen seen{json::String(doc, "advertise"), {}, Clock::now(), json::Bool(doc, "left")};
    if (const auto* list = json::Find(doc, "partitions"); list != nullptr && list->IsArray()) {
      for (const auto& p : list->GetArray()) {
        if (p.IsUint()) seen.partitions.push_back(p.GetUint());
      }
    }
    const std::string id = json::String(doc, "node");
    if (id.empty()) continue;
    std::lock_guard lock(dir_mu_);
    seen_[id] = std::move(seen);
  }
}

std::optional<std::string> KafkaCluster::OwnerAddress(uint32_t partition) const {
  {
    std::lock_guard lock(mu_);
    if (owned_.contains(partition)) return std::nullopt;
  }
  const auto now = Clock::now();
  std::lock_guard lock(dir_mu_);
  const Seen* best = nullptr;
  for (const auto& [id, seen] : seen_) {
    if (id == options_.node_id || seen.left || now - seen.at > options_.session_timeout) continue;
    if (std::find(seen.partitions.begin(), seen.partitions.end(), partition) ==
        seen.partitions.end()) {
      continue;
    }
    if (best == nullptr || seen.at > best->at) best = &seen;
  }
  if (best == nullptr) return std::nullopt;
  return best->advertise;
}

std::vector<KafkaCluster::Node> KafkaCluster::Nodes() const {
  const auto now = Clock::now();
  std::vector<Node> out;
  std::lock_guard lock(dir_mu_);
  for (const auto& [id, seen] : seen_) {
    out.push_back(Node{id, seen.advertise, seen.partitions,
                       std::chrono::duration_cast<std::chrono::milliseconds>(now - seen.at).count(),
                       seen.left});
  }
  return out;
}

std::vector<uint32_t> KafkaCluster::Owned() const {
  std::lock_guard lock(mu_);
  return {owned_.begin(), owned_.end()};
}

}  // namespace runlog::events
