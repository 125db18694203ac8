#pragma once
// The event envelope: every task command and step result is one immutable Event
// on the log. The log assigns partition and offset; everything else is fixed by
// the writer before the append. The payload is canonical JSON text (see
// docs/hashing.md) so that its bytes, and any hash over them, are stable.

#include <cstdint>
#include <string>

namespace runlog::events {

struct Event {
  std::string type;             // "task.created", … (docs/events.md)
  uint32_t schema_version = 1;  // a payload change is a new version
  std::string event_id;         // "evt_…", unique across the log
  std::string aggregate_id;     // the task id or other entity id; picks the partition
  std::string tenant_id;        // "acct_…"; empty for system events
  uint64_t sequence = 0;        // 1-based, per aggregate, dense
  int64_t timestamp_ms = 0;     // wall time at the writer; never hashed
  std::string payload;          // canonical JSON object text

  bool operator==(const Event&) const = default;
};

// An event as read back from the log.
struct LogRecord {
  uint32_t partition = 0;
  uint64_t offset = 0;
  Event event;
  // The hash chain (docs/log_format.md): the record's link to the previous
  // record of its partition (32 raw bytes; empty for a format 1 record), and
  // its own hash, SHA-256 over all of its bytes.
  std::string prev;
  std::string hash;
};

}  // namespace runlog::events
