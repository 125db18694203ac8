#pragma once
// The on-log record format, shared by both backends (docs/log_format.md).
// Binary form, format 2 (written by the embedded log):
//
//   magic 'R' (1) | format 2 (1) | crc32c of what follows (4, LE) | prev (32) | body
//   body = type, event_id, aggregate_id, tenant_id, payload as u32-LE-length strings,
//          schema_version u32 LE, sequence u64 LE, timestamp_ms i64 LE
//
// `prev` is the SHA-256 of the previous record of the partition, over all of
// its bytes (32 zero bytes for a partition's first record): the hash chain.
// Format 1 (no prev) is still read. Decode verifies magic, format, checksum
// and every length; a record that fails is LOG_CORRUPT and is never skipped.

#include <string>
#include <string_view>

#include "events/event.h"
#include "infra/base/result.h"

namespace runlog::events {

// The chain link a partition's first record carries: 32 zero bytes.
inline constexpr std::string_view kNoPrev{
    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
    32};

// Both forms are encoded with `prev` zero; the log links each record into its
// partition's chain with SetPrev when it fixes the record's place.
std::string EncodeEvent(const Event& event);
// The JSON form, for Kafka, whose consumers are other programs too
// (docs/log_format.md, "Kafka backend"): one object with the envelope's
// fields in this order and the payload, verbatim, last:
//   {"type":…,"schema_version":…,"event_id":…,"aggregate_id":…,
//    "tenant_id":…,"sequence":…,"timestamp_ms":…,"prev":"<hex>","payload":{…}}
// Kafka checks each record batch's CRC-32C itself.
std::string EncodeEventJson(const Event& event);
// The record of `event` exactly as a log stores it: the JSON or the binary
// form, format 2 linked to `prev`, or format 1 if `prev` is empty. What an
// export's reader rebuilds a record's bytes with (docs/log_format.md).
std::string EncodeRecord(const Event& event, bool json_form, std::string_view prev);
// Sets the chain link (32 raw bytes) of a record either Encode gave, fixing
// the binary form's checksum.
void SetPrev(std::string& record, std::string_view prev);
// The record's hash: SHA-256 over all of its bytes, 32 raw bytes.
std::string RecordHash(std::string_view record);

// Either form (the first byte tells: 'R' or '{'), either format. `prev`, if
// given, gets the record's chain link: 32 raw bytes, or empty for a format 1
// record, which has none.
[[nodiscard]] Result<Event> DecodeEvent(std::string_view bytes, std::string* prev = nullptr);
// The record at `partition`/`offset`: its event, chain link and hash.
[[nodiscard]] Result<LogRecord> DecodeRecord(uint32_t partition, uint64_t offset,
                                             std::string_view bytes);

}  // namespace runlog::events
