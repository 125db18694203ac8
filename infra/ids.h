#pragma once
// Random identifiers enter runlog through an IdGenerator so that tests can
// inject deterministic ones. Ids are a prefix plus 26 lowercase base32 chars
// (130 bits, of which 128 are random): "evt_…", "task_…".

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace runlog::infra {

class IdGenerator {
 public:
  virtual ~IdGenerator() = default;
  virtual std::string Next(std::string_view prefix) = 0;
};

// Cryptographically random ids (OpenSSL RAND_bytes). Thread-safe.
class RandomIds final : public IdGenerator {
 public:
  std::string Next(std::string_view prefix) override;
};

// prefix + zero-padded counter, for tests. Thread-safe.
class SequentialIds final : public IdGenerator {
 public:
  std::string Next(std::string_view prefix) override;

 private:
  std::atomic<uint64_t> next_{1};
};

}  // namespace runlog::infra
