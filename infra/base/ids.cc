#include "infra/base/ids.h"

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <chrono>
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

// Appends `chars` base32 characters of `bytes` (5 bits each, high bits first).
void AppendBase32(std::string& id, const unsigned char* bytes, size_t chars, const char* alphabet) {
  uint32_t acc = 0;
  int bits = 0;
  for (size_t n = 0; n < chars; ++n) {
    if (bits < 5) {
      acc = (acc << 8) | *bytes++;
      bits += 8;
    }
    id.push_back(alphabet[(acc >> (bits - 5)) & 31]);
    bits -= 5;
  }
}

constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
// The same characters in ASCII order, so that the text sorts as the number.
constexpr char kSortedAlphabet[] = "234567abcdefghijklmnopqrstuvwxyz";

}  // namespace

std::string RandomIds::Next(std::string_view prefix) {
  const std::array<unsigned char, 17> bytes = RandomBytes();
  std::string id(prefix);
  id.reserve(prefix.size() + 26);
  AppendBase32(id, bytes.data(), 26, kAlphabet);
  return id;
}

std::string RandomIds::NextSortable(std::string_view prefix) {
  const auto ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count());
  // 50 bits of milliseconds (good until the year 37648), as 10 chars.
  std::array<unsigned char, 7> time;
  for (size_t i = 0; i < time.size(); ++i) time[i] = (ms << 6) >> (8 * (6 - i)) & 0xff;
  const std::array<unsigned char, 17> bytes = RandomBytes();
  std::string id(prefix);
  id.reserve(prefix.size() + 26);
  AppendBase32(id, time.data(), 10, kSortedAlphabet);
  AppendBase32(id, bytes.data(), 16, kSortedAlphabet);
  return id;
}

std::string SequentialIds::Next(std::string_view prefix) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%026llu", static_cast<unsigned long long>(next_++));
  return std::string(prefix) + buf;
}

}  // namespace runlog::infra
