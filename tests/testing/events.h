#pragma once
// Helpers that make test events, and aggregate ids that land on a chosen partition.

#include <string>

#include "events/event.h"
#include "events/partitioner.h"

namespace runlog::testing {

inline events::Event TestEvent(const std::string& aggregate, uint64_t sequence,
                               const std::string& payload = R"({"n":1})") {
  events::Event e;
  e.type = "task.created";
  e.schema_version = 1;
  e.event_id = "evt_" + aggregate + "_" + std::to_string(sequence);
  e.aggregate_id = aggregate;
  e.tenant_id = "acct_test";
  e.sequence = sequence;
  e.timestamp_ms = 1'700'000'000'000 + static_cast<int64_t>(sequence);
  e.payload = payload;
  return e;
}

// The n-th aggregate id ("<prefix>-<k>") that hashes to `partition`.
inline std::string AggregateOn(uint32_t partition, uint32_t partitions, int n = 0,
                               const std::string& prefix = "task") {
  for (int k = 0;; ++k) {
    std::string id = prefix + "-" + std::to_string(k);
    if (events::PartitionFor(id, partitions) == partition && n-- == 0) return id;
  }
}

}  // namespace runlog::testing
