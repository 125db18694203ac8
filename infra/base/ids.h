#pragma once
// Random identifiers enter runlog through an IdGenerator so that tests can
// inject deterministic ones. Ids are a prefix plus 26 lowercase base32 chars
// (130 bits, of which 128 are random): "evt_…", "key_…". Task ids are sortable
// ones (the time, then 80 random bits): docs/decisions/0013-memtable-friendly-view-writes.md.

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace runlog::infra {

class IdGenerator {
 public:
  virtual ~IdGenerator() = default;
  virtual std::string Next(std::string_view prefix) = 0;
  // Like Next, but ids made later sort after ids made earlier (to the
  // millisecond): keys built from them land next to each other in RocksDB's
  // memtables and in the CPU caches. Not for secrets: part of the id is time.
  virtual std::string NextSortable(std::string_view prefix) { return Next(prefix); }
};

// Cryptographically random ids (OpenSSL RAND_bytes). Thread-safe.
// NextSortable: 10 chars of wall-clock milliseconds, then 16 chars (80 bits) random.
class RandomIds final : public IdGenerator {
 public:
  std::string Next(std::string_view prefix) override;
  std::string NextSortable(std::string_view prefix) override;
};

// prefix + zero-padded counter, for tests. Thread-safe.
class SequentialIds final : public IdGenerator {
 public:
  std::string Next(std::string_view prefix) override;

 private:
  std::atomic<uint64_t> next_{1};
};

}  // namespace runlog::infra
