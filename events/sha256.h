#pragma once
// SHA-256 (OpenSSL) as lowercase hex. Hashes in runlog are always taken over
// canonical JSON bytes (docs/hashing.md).

#include <string>
#include <string_view>

namespace runlog::events {

std::string Sha256Hex(std::string_view data);
// Lowercase hex of any bytes.
std::string HexOf(std::string_view bytes);

}  // namespace runlog::events
