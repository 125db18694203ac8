#pragma once
// KafkaCluster: this runlogd's place among the nodes sharing one Kafka topic
// (docs/kafka.md, "A cluster"; docs/decisions/0023-cluster-ownership.md).
//
// - Ownership: a KafkaConsumer in group `runlog-owners-<topic>` subscribes to
//   the events topic with the cooperative-sticky assignor; the partitions
//   Kafka assigns it are the ones this node writes. It never fetches (every
//   assigned partition is paused): the group only hands out ownership.
// - The lease: every `heartbeat` the node commits its owned partitions'
//   acknowledged ends with its group generation. A commit the coordinator
//   accepts proves membership when it was sent; the node may write for
//   `lease` after that send, with lease < session timeout − heartbeat, so a
//   node paused past its session timeout finds its lease gone before it can
//   write, whoever owns its partitions now. LeaseHolds is the write gate.
// - The directory: every node announces itself (id, advertised HTTP address,
//   owned partitions) on the `runlog.nodes` topic each second and when its
//   partitions change, and reads everyone's announcements, so any node can
//   forward a command to the owner of its partition.
//
// Lifecycle: Start() joins; Stop() releases every partition (on_revoked),
// leaves the group (the others take its partitions at once) and announces
// that it left. Thread contract: public methods are thread-safe; the
// callbacks run on the cluster's own threads, one at a time.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "infra/base/result.h"

namespace RdKafka {
class KafkaConsumer;
class Producer;
}  // namespace RdKafka

namespace runlog::events {

class KafkaCluster {
 public:
  struct Options {
    std::string brokers;
    std::string topic = "runlog.events";
    std::string nodes_topic = "runlog.nodes";
    std::vector<std::pair<std::string, std::string>> kafka_config;
    std::string node_id;
    std::string advertise;  // HOST:PORT other nodes forward to
    std::chrono::milliseconds session_timeout{6000};
    std::chrono::milliseconds heartbeat{1000};
    // Takes ownership of a partition: fence the previous writer, recover.
    // `handed`: the position its previous owner last committed (see
    // `position`), 0 if none. Runs on the cluster's acquiring thread; a
    // failure is retried.
    std::function<Status(uint32_t partition, uint64_t handed)> on_assigned;
    // Gives a partition up: stop accepting, answer what is in flight, close.
    std::function<void(uint32_t)> on_revoked;
    // Whether an owned partition's writer failed and must be recovered anew.
    std::function<bool(uint32_t)> writer_failed;
    // An owned partition's position to hand to its next owner (how far its
    // webhooks were dispatched), committed with the lease.
    std::function<uint64_t(uint32_t)> position;
    // Said on stderr and counted in /metrics: "acquired", "released", "lost".
    std::function<void(const std::string& what, uint32_t partition)> on_move;
  };
  struct Node {
    std::string id;
    std::string advertise;
    std::vector<uint32_t> partitions;
    int64_t age_ms = 0;  // since its last announcement reached this node
    bool left = false;
  };

  explicit KafkaCluster(Options options);
  ~KafkaCluster();
  [[nodiscard]] Status Start();
  void Stop();

  // The write gate: owned, and the lease renewed within `lease`.
  bool LeaseHolds(uint32_t partition) const;
  // The owner of `partition` as the directory has it: its advertised address;
  // none if no live node announces it, or this node owns it.
  std::optional<std::string> OwnerAddress(uint32_t partition) const;
  std::vector<Node> Nodes() const;
  std::vector<uint32_t> Owned() const;
  const std::string& node_id() const { return options_.node_id; }
  std::chrono::milliseconds lease() const { return lease_; }

 private:
  class Rebalance;
  void GroupLoop();
  void AcquireLoop();
  void DirectoryLoop();
  void RenewLease();
  void Revoke(const std::vector<uint32_t>& partitions, bool lost);
  void Announce(bool leaving);
  std::string Announcement(bool leaving) const;

  Options options_;
  const std::chrono::milliseconds lease_;
  std::unique_ptr<Rebalance> rebalance_;
  std::unique_ptr<RdKafka::KafkaConsumer> group_;
  std::unique_ptr<RdKafka::Producer> announcer_;
  std::unique_ptr<RdKafka::KafkaConsumer> directory_;
  std::atomic<bool> stopping_{false};
  std::thread group_thread_, acquire_thread_, directory_thread_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::set<uint32_t> assigned_;             // by the group, guarded by mu_
  std::set<uint32_t> owned_;                // assigned and recovered, guarded by mu_
  std::deque<uint32_t> to_acquire_;         // guarded by mu_
  std::map<uint32_t, uint64_t> handed_;     // committed by the previous owner; guarded by mu_
  std::atomic<int64_t> lease_until_ns_{0};  // steady clock
  std::atomic<bool> changed_{false};        // announce now
  std::atomic<bool> steady_{false};         // the group is between rebalances

  struct Seen {
    std::string advertise;
    std::vector<uint32_t> partitions;
    std::chrono::steady_clock::time_point at;
    bool left = false;
  };
  mutable std::mutex dir_mu_;
  std::map<std::string, Seen> seen_;  // by node id, guarded by dir_mu_
};

}  // namespace runlog::events
