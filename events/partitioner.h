#pragma once
// The partition of an aggregate: FNV-1a (64-bit) of the aggregate id's bytes,
// modulo the partition count. Identical on every backend and every machine, so
// the same task always lands on the same partition (and so the same writer).
// Changing the partition count of an existing log moves aggregates: refused at
// open (see EventLog).

#include <cstdint>
#include <string_view>

namespace runlog::events {

constexpr uint64_t Fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

constexpr uint32_t PartitionFor(std::string_view aggregate_id, uint32_t partition_count) {
  return static_cast<uint32_t>(Fnv1a64(aggregate_id) % partition_count);
}

}  // namespace runlog::events
