#pragma once
// Fixed-width unsigned integers as bytes: little-endian inside values (log
// records, view values), big-endian in keys that must sort by number.

#include <cstdint>
#include <string>
#include <string_view>

namespace runlog::events {

inline void PutLittleEndian(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// Every byte of `in`, least significant first.
inline uint64_t GetLittleEndian(std::string_view in) {
  uint64_t v = 0;
  for (size_t i = 0; i < in.size(); ++i)
    v |= uint64_t{static_cast<unsigned char>(in[i])} << (8 * i);
  return v;
}

inline void PutBigEndian(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// Every byte of `in`, most significant first.
inline uint64_t GetBigEndian(std::string_view in) {
  uint64_t v = 0;
  for (unsigned char c : in) v = (v << 8) | c;
  return v;
}

}  // namespace runlog::events
