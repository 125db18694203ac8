#include "infra/ids.h"

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <stdexcept>

namespace runlog::infra {

namespace {

// 17 bytes from OpenSSL's CSPRNG, drawn from a per-thread buffer: one
// RAND_bytes call (which takes locks) per 60 ids instead of one per id.
std::array<unsigned char, 17> RandomBytes() {
  thread_local std::array<unsigned char, 17 * 60> buffer;
  thread_local size_t used = buffer.size();
  if (used == buffer.size()) {
    if (RAND_bytes(buffer.data(), static_cast<int>(buffer.size())) != 1) {
      // No entropy means no safe ids at all: an impossible state, crash loudly.
      throw std::runtime_error("RAND_bytes failed");
    }
    used = 0;
  }
  std::array<unsigned char, 17> out;
  std::copy_n(buffer.begin() + static_cast<std::ptrdiff_t>(used), out.size(), out.begin());
  std::fill_n(buffer.begin() + static_cast<std::ptrdiff_t>(used), out.size(), 0);  // used once
  used += out.size();
  return out;
}

}  // namespace

std::string RandomIds::Next(std::string_view prefix) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  const std::array<unsigned char, 17> bytes = RandomBytes();
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
