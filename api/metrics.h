#pragma once
// Prometheus metrics (prometheus-cpp), served as text on GET /metrics. Every
// name starts with runlog_. One Metrics object is made by main and handed down.
// Thread contract: all methods are thread-safe.

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace runlog::api {

class Metrics {
 public:
  Metrics();

  void Request(const std::string& route, int status, double seconds);
  // A task event applied to the views: state transitions, queue latency, lease expiries.
  void TaskEvent(const std::string& type, double queue_latency_seconds);
  void AppendLatency(double seconds);
  void ProjectionLag(uint32_t partition, double records);
  // What the partition writers hold: tasks by state ("ended" for those
  // remembered after they ended), and an estimate of their memory in bytes.
  void WriterState(const std::map<std::string, int64_t>& tasks, int64_t memory_bytes);
  // What the RocksDB stores' shared budget holds now.
  void StoreMemory(uint64_t block_cache_bytes, uint64_t memtable_bytes);
  // One webhook delivery attempt: its outcome (delivered, retrying, failed, gone) and seconds.
  void WebhookAttempt(const std::string& outcome, double seconds);
  // Cluster mode: a partition acquired, released or lost, and how many this node owns.
  void PartitionMove(const std::string& what, uint32_t partition, int64_t owned);
  // A task event's effect on its tenant's usage: at its end, the task by
  // status, its tokens and its cost.
  void TenantUsage(const std::string& tenant, const std::string& status, int64_t tokens,
                   int64_t cost_nanos);
  // What the server reads fresh at each scrape (writers, executor slots,
  // the data directory's disk); set once, before serving.
  struct Gauges {
    int64_t writers_failed = 0;
    int64_t executor_busy = 0, executor_slots = 0;
    int64_t data_free_bytes = -1, data_total_bytes = -1;  // -1: unknown
  };
  void SetScrapeSource(std::function<Gauges()> source) { scrape_source_ = std::move(source); }
  // The exposition text, after reading the scrape source.
  std::string Serialize();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& request_seconds_;
  prometheus::Family<prometheus::Counter>& transitions_;
  prometheus::Histogram& queue_latency_;
  prometheus::Counter& lease_expiries_;
  prometheus::Histogram& append_seconds_;
  prometheus::Family<prometheus::Gauge>& projection_lag_;
  prometheus::Family<prometheus::Gauge>& writer_tasks_;
  prometheus::Gauge& writer_memory_;
  prometheus::Family<prometheus::Gauge>& store_memory_;
  prometheus::Gauge& writers_failed_;
  prometheus::Family<prometheus::Gauge>& executor_slots_;
  prometheus::Family<prometheus::Gauge>& data_bytes_;
  prometheus::Family<prometheus::Counter>& tenant_tasks_;
  prometheus::Family<prometheus::Counter>& tenant_tokens_;
  prometheus::Family<prometheus::Counter>& tenant_cost_;
  prometheus::Family<prometheus::Counter>& webhook_attempts_;
  prometheus::Family<prometheus::Counter>& partition_moves_;
  prometheus::Gauge& partitions_owned_;
  prometheus::Histogram& webhook_seconds_;

  std::function<Gauges()> scrape_source_;

  std::mutex mu_;  // guards the caches of labelled children below
  std::map<std::pair<std::string, int>, prometheus::Counter*> request_counters_;
  std::map<std::string, prometheus::Histogram*> request_histograms_;
  std::map<std::string, prometheus::Counter*> transition_counters_;
  std::map<uint32_t, prometheus::Gauge*> lag_gauges_;
  std::map<std::string, prometheus::Gauge*> writer_gauges_;
};

}  // namespace runlog::api
