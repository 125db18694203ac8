#include "api/metrics.h"

#include <prometheus/text_serializer.h>

namespace runlog::api {
namespace {

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30};
  return kBuckets;
}

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(prometheus::BuildCounter()
                    .Name("runlog_http_requests_total")
                    .Help("HTTP requests by route and status code")
                    .Register(*registry_)),
      request_seconds_(prometheus::BuildHistogram()
                           .Name("runlog_http_request_duration_seconds")
                           .Help("HTTP request latency by route (claim: claim latency)")
                           .Register(*registry_)),
      transitions_(prometheus::BuildCounter()
                       .Name("runlog_task_events_total")
                       .Help("Task state transitions (events applied), by event type")
                       .Register(*registry_)),
      queue_latency_(prometheus::BuildHistogram()
                         .Name("runlog_queue_latency_seconds")
                         .Help("Time from a task becoming ready to its claim")
                         .Register(*registry_)
                         .Add({}, LatencyBuckets())),
      lease_expiries_(prometheus::BuildCounter()
                          .Name("runlog_lease_expiries_total")
                          .Help("Leases that expired before completion")
                          .Register(*registry_)
                          .Add({})),
      append_seconds_(prometheus::BuildHistogram()
                          .Name("runlog_log_append_duration_seconds")
                          .Help("Time for a writer's append to become durable")
                          .Register(*registry_)
                          .Add({}, LatencyBuckets())),
      projection_lag_(prometheus::BuildGauge()
                          .Name("runlog_projection_lag_records")
                          .Help("Records in the log not yet applied to the views, by partition")
                          .Register(*registry_)),
      writer_tasks_(prometheus::BuildGauge()
                        .Name("runlog_writer_tasks")
                        .Help("Tasks the partition writers hold in memory, by state")
                        .Register(*registry_)),
      writer_memory_(prometheus::BuildGauge()
                         .Name("runlog_writer_memory_bytes")
                         .Help("Estimated memory of the partition writers' state")
                         .Register(*registry_)
                         .Add({})),
      store_memory_(prometheus::BuildGauge()
                        .Name("runlog_store_memory_bytes")
                        .Help("Memory of the RocksDB stores' shared budget, by kind "
                              "(block_cache: cached blocks, indexes and filters; "
                              "memtables: unflushed writes)")
                        .Register(*registry_)),
      writers_failed_(prometheus::BuildGauge()
                          .Name("runlog_writers_failed")
                          .Help("Partitions whose writer failed (its log appends failed); "
                                "their commands answer WRITER_FAILED until a restart")
                          .Register(*registry_)
                          .Add({})),
      executor_slots_(prometheus::BuildGauge()
                          .Name("runlog_executor_slots")
                          .Help("The plan executor's slots: total, and busy running a task")
                          .Register(*registry_)),
      data_bytes_(prometheus::BuildGauge()
                      .Name("runlog_data_filesystem_bytes")
                      .Help("The data directory's filesystem: free (to runlogd) and total bytes")
                      .Register(*registry_)),
      tenant_tasks_(prometheus::BuildCounter()
                        .Name("runlog_tenant_tasks_total")
                        .Help("Tasks that ended, by tenant and status")
                        .Register(*registry_)),
      tenant_tokens_(prometheus::BuildCounter()
                         .Name("runlog_tenant_tokens_total")
                         .Help("Tokens used by tasks that ended, by tenant")
                         .Register(*registry_)),
      tenant_cost_(prometheus::BuildCounter()
                       .Name("runlog_tenant_cost_usd_total")
                       .Help("Cost in USD of tasks that ended, by tenant")
                       .Register(*registry_)),
      webhook_attempts_(prometheus::BuildCounter()
                            .Name("runlog_webhook_attempts_total")
                            .Help("Webhook delivery attempts, by outcome")
                            .Register(*registry_)),
      partition_moves_(prometheus::BuildCounter()
                           .Name("runlog_partition_moves_total")
                           .Help("Partitions this node acquired, released or lost (cluster mode)")
                           .Register(*registry_)),
      partitions_owned_(prometheus::BuildGauge()
                            .Name("runlog_partitions_owned")
                            .Help("Partitions this node writes (cluster mode)")
                            .Register(*registry_)
                            .Add({})),
      webhook_seconds_(prometheus::BuildHistogram()
                           .Name("runlog_webhook_attempt_duration_seconds")
                           .Help("Time for a webhook receiver to answer an attempt")
                           .Register(*registry_)
                           .Add({}, LatencyBuckets())) {}

void Metrics::WebhookAttempt(const std::string& outcome, double seconds) {
  webhook_attempts_.Add({{"outcome", outcome}}).Increment();
  webhook_seconds_.Observe(seconds);
}

void Metrics::PartitionMove(const std::string& what, uint32_t partition, int64_t owned) {
  partition_moves_.Add({{"what", what}, {"partition", std::to_string(partition)}}).Increment();
  partitions_owned_.Set(static_cast<double>(owned));
}

void Metrics::Request(const std::string& route, int status, double seconds) {
  prometheus::Counter* counter;
  prometheus::Histogram* histogram;
  {
    std::lock_guard lock(mu_);
    auto& c = request_counters_[{route, status}];
    if (c == nullptr) c = &requests_.Add({{"route", route}, {"code", std::to_string(status)}});
    auto& h = request_histograms_[route];
    if (h == nullptr) h = &request_seconds_.Add({{"route", route}}, LatencyBuckets());
    counter = c;
    histogram = h;
  }
  counter->Increment();
  histogram->Observe(seconds);
}

void Metrics::TaskEvent(const std::string& type, double queue_latency_seconds) {
  prometheus::Counter* counter;
  {
    std::lock_guard lock(mu_);
    auto& c = transition_counters_[type];
    if (c == nullptr) c = &transitions_.Add({{"event", type}});
    counter = c;
  }
  counter->Increment();
  if (type == "task.claimed") queue_latency_.Observe(queue_latency_seconds);
  if (type == "task.lease_expired") lease_expiries_.Increment();
}

void Metrics::AppendLatency(double seconds) { append_seconds_.Observe(seconds); }

void Metrics::ProjectionLag(uint32_t partition, double records) {
  prometheus::Gauge* gauge;
  {
    std::lock_guard lock(mu_);
    auto& g = lag_gauges_[partition];
    if (g == nullptr) g = &projection_lag_.Add({{"partition", std::to_string(partition)}});
    gauge = g;
  }
  gauge->Set(records);
}

void Metrics::TenantUsage(const std::string& tenant, const std::string& status, int64_t tokens,
                          int64_t cost_nanos) {
  tenant_tasks_.Add({{"tenant", tenant}, {"status", status}}).Increment();
  tenant_tokens_.Add({{"tenant", tenant}}).Increment(static_cast<double>(tokens));
  tenant_cost_.Add({{"tenant", tenant}}).Increment(static_cast<double>(cost_nanos) / 1e9);
}

std::string Metrics::Serialize() {
  if (scrape_source_) {
    const Gauges g = scrape_source_();
    writers_failed_.Set(static_cast<double>(g.writers_failed));
    executor_slots_.Add({{"state", "busy"}}).Set(static_cast<double>(g.executor_busy));
    executor_slots_.Add({{"state", "total"}}).Set(static_cast<double>(g.executor_slots));
    if (g.data_total_bytes >= 0) {
      data_bytes_.Add({{"kind", "free"}}).Set(static_cast<double>(g.data_free_bytes));
      data_bytes_.Add({{"kind", "total"}}).Set(static_cast<double>(g.data_total_bytes));
    }
  }
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

void Metrics::WriterState(const std::map<std::string, int64_t>& tasks, int64_t memory_bytes) {
  std::lock_guard lock(mu_);
  for (auto& [state, gauge] : writer_gauges_) gauge->Set(0);  // states now empty read 0
  for (const auto& [state, n] : tasks) {
    auto& g = writer_gauges_[state];
    if (g == nullptr) g = &writer_tasks_.Add({{"state", state}});
    g->Set(static_cast<double>(n));
  }
  writer_memory_.Set(static_cast<double>(memory_bytes));
}

void Metrics::StoreMemory(uint64_t block_cache_bytes, uint64_t memtable_bytes) {
  store_memory_.Add({{"kind", "block_cache"}}).Set(static_cast<double>(block_cache_bytes));
  store_memory_.Add({{"kind", "memtables"}}).Set(static_cast<double>(memtable_bytes));
}

}  // namespace runlog::api
