#pragma once
// SHA-256 (OpenSSL) as lowercase hex. Hashes in runlog are always taken over
// canonical JSON bytes (docs/hashing.md).

#include <string>
#include <string_view>

namespace runlog::events {

std::string Sha256Hex(std::string_view data);
// The same digest as 32 raw bytes.
std::string Sha256(std::string_view data);
// Lowercase hex of any bytes.
std::string HexOf(std::string_view bytes);
// The bytes of an even-length hex string (either case); false if it is not one.
[[nodiscard]] bool UnHex(std::string_view hex, std::string* bytes);
// Base64 (standard alphabet, padded), as webhook signatures and signed notes use it.
std::string Base64(std::string_view bytes);
std::string FromBase64(std::string_view text);  // "" for bad input

}  // namespace runlog::events
