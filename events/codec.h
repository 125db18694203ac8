#pragma once
// The on-log record format, shared by both backends (docs/log_format.md):
//
//   magic 'R' (1) | format 1 (1) | crc32c of body (4, LE) | body
//   body = type, event_id, aggregate_id, tenant_id, payload as u32-LE-length strings,
//          schema_version u32 LE, sequence u64 LE, timestamp_ms i64 LE
//
// Decode verifies magic, format, checksum and every length; a record that fails
// is LOG_CORRUPT and is never skipped.

#include <string>
#include <string_view>

#include "events/event.h"
#include "infra/base/result.h"

namespace runlog::events {

std::string EncodeEvent(const Event& event);
// The JSON form, for Kafka, whose consumers are other programs too
// (docs/log_format.md, "Kafka backend"): one object with the envelope's
// fields in this order and the payload, verbatim, last:
//   {"type":…,"schema_version":…,"event_id":…,"aggregate_id":…,
//    "tenant_id":…,"sequence":…,"timestamp_ms":…,"payload":{…}}
// Kafka checks each record batch's CRC-32C itself.
std::string EncodeEventJson(const Event& event);
// Either form (the first byte tells: 'R' or '{').
[[nodiscard]] Result<Event> DecodeEvent(std::string_view bytes);

}  // namespace runlog::events
