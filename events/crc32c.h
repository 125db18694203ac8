#pragma once
// CRC-32C (Castagnoli), the checksum framing every log record. Table-driven,
// portable; the same polynomial as RocksDB and Kafka record batches.

#include <cstdint>
#include <string_view>

namespace runlog::events {

uint32_t Crc32c(std::string_view data, uint32_t seed = 0);

}  // namespace runlog::events
