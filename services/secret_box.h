#pragma once
// SecretBox: seals the secrets runlog must be able to use again (a webhook's
// signing secret, a channel's) before they go on the log, so an export of
// the log, an audit or a receipt never shows them. AES-256-GCM with a random
// 96-bit nonce; a sealed secret is "v1:" + base64(nonce | ciphertext | tag).
//
// The key: RUNLOG_SECRET_KEY (64 hex digits) if set, which every node of a
// Kafka deployment must share; else DATA_DIR/secret.key, made at first use
// (mode 0600). A log whose key is lost keeps its records, but its webhooks
// can no longer sign: register them again.
//
// Thread contract: Seal and Open are const and thread-safe.

#include <memory>
#include <string>

#include "events/sha256.h"
#include "infra/base/result.h"

namespace runlog::services {

class SecretBox {
 public:
  // The key from the environment, or DATA_DIR/secret.key (made if missing).
  [[nodiscard]] static Result<std::unique_ptr<SecretBox>> Open(const std::string& data_dir);
  explicit SecretBox(std::string key) : key_(std::move(key)) {}

  std::string Seal(const std::string& secret) const;
  // INVALID_ARGUMENT for text that was not sealed with this key.
  [[nodiscard]] Result<std::string> Unseal(const std::string& sealed) const;

 private:
  std::string key_;  // 32 bytes
};

using events::Base64;
using events::FromBase64;

}  // namespace runlog::services
