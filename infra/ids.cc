#include "infra/ids.h"

#include <openssl/rand.h>

#include <array>
#include <cstdio>
#include <stdexcept>

namespace runlog::infra {

std::string RandomIds::Next(std::string_view prefix) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  std::array<unsigned char, 17> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    // No entropy means no safe ids at all: an impossible state, crash loudly.
    throw std::runtime_error("RAND_bytes failed");
  }
  std::string id(prefix);
  id.reserve(prefix.size() + 26);
  uint32_t acc = 0;
  int bits = 0;
  size_t i = 0;
  while (id.size() < prefix.size() + 26) {
    if (bits < 5) {
      acc = (acc << 8) | bytes[i++];
      bits += 8;
    }
    id.push_back(kAlphabet[(acc >> (bits - 5)) & 31]);
    bits -= 5;
  }
  return id;
}

std::string SequentialIds::Next(std::string_view prefix) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%026llu", static_cast<unsigned long long>(next_++));
  return std::string(prefix) + buf;
}

}  // namespace runlog::infra
