#pragma once
// Forwarder: sends a call this node cannot answer (its partition is written
// by another node of the cluster) to the node that can, and hands back that
// node's answer as it came: status, type, body and the headers a client acts
// on. Connections are kept alive and reused, one pool per worker thread.
//
// A forwarded call carries X-Runlog-Forwarded: 1; a node never forwards such
// a call again, so a stale directory costs a retryable 503, never a loop.
//
// Lifecycle: construct, Forward any number of times, destroy (waits for the
// calls in flight and answers those queued with UNAVAILABLE).
// Thread contract: Forward is thread-safe; `done` runs on a worker thread.

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/api.h"

namespace runlog::api {

// The X-Runlog-Principal header of `key`, and its signature under `secret`.
std::string PrincipalHeader(const KeyRecord& key);
std::string PrincipalSignature(const std::string& secret, const std::string& header);
// The principal a forwarded call carries, if its signature is good.
std::optional<KeyRecord> PrincipalOf(const std::string& secret, const std::string& header,
                                     const std::string& signature);

class Forwarder {
 public:
  struct Answer {
    int status = 0;
    std::string content_type;
    std::string body;
    Reply::Headers headers;  // Retry-After, Idempotent-Replayed, X-Runlog-Position…
  };
  using Done = std::function<void(Result<Answer>)>;

  // `principal_key`: signs the principal of calls runlog makes itself
  // (X-Runlog-Principal), for the receiving node to trust (PrincipalOf).
  explicit Forwarder(std::string principal_key, int threads = 8,
                     std::chrono::milliseconds timeout = std::chrono::seconds(40));
  ~Forwarder();
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  // `call` as received (its path under /v1) to http://`address`.
  void Forward(const std::string& address, const Call& call, Done done);

 private:
  struct Job {
    std::string address;
    Call call;
    Done done;
  };
  void Work();

  const std::string principal_key_;
  const std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;   // guarded by mu_
  bool stopping_ = false;  // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace runlog::api
