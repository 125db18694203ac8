#include "events/sha256.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace runlog::events {

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // Fetched once: EVP_sha256() is a legacy handle that OpenSSL 3 resolves to
  // its provider on every call (EVP_MD_fetch was half of each digest's time).
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (sha256 == nullptr || EVP_Digest(data.data(), data.size(), md, &len, sha256, nullptr) != 1) {
    throw std::runtime_error("EVP_Digest(sha256) failed");  // impossible state
  }
  return HexOf(std::string_view(reinterpret_cast<const char*>(md), len));
}

std::string HexOf(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    hex.push_back(kHex[c >> 4]);
    hex.push_back(kHex[c & 15]);
  }
  return hex;
}

}  // namespace runlog::events
