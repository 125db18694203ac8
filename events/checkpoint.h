#pragma once
// Signed checkpoints (docs/receipts.md): a C2SP tlog-checkpoint note over the
// log's partitions, signed with Ed25519 as a C2SP signed note.
//
//   <origin>
//   <records in all partitions>
//   <base64 root over the partitions>
//   partition <p> <size> <base64 root of partition p's tree>     (one per partition)
//
//   — <origin> <base64(key id || Ed25519 signature of the text above the blank line)>
//
// A partition's tree is the RFC 6962 tree of its records (events/merkle.h).
// The root over the partitions is the RFC 6962 root of one leaf per
// partition, in order: u32 BE p || u64 BE size || the partition's root.
// The key id is SHA-256(origin || 0x0A || 0x01 || public key)[:4], and the
// verifier key, as C2SP writes it, "<origin>+<key id hex>+<base64(0x01 || public key)>".

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "infra/base/result.h"

namespace runlog::events {

struct PartitionHead {
  uint64_t size = 0;
  std::string root;  // 32 raw bytes
};

struct Checkpoint {
  std::string origin;
  std::vector<PartitionHead> partitions;

  uint64_t total() const;
  // The root over the partitions (32 raw bytes).
  std::string Root() const;
  // The note's text: the four kinds of lines above, ending in a newline.
  std::string Text() const;
};

// Parses a note's text (without signatures).
[[nodiscard]] Result<Checkpoint> ParseCheckpointText(std::string_view text);

// A verifier: a name and an Ed25519 public key.
struct NoteKey {
  std::string name;
  std::string public_key;  // 32 raw bytes

  uint32_t KeyId() const;
  // "<name>+<key id hex>+<base64(0x01 || public key)>".
  std::string VerifierString() const;
  [[nodiscard]] static Result<NoteKey> FromVerifierString(std::string_view text);
};

// Checks a signed note: a signature by `key` that verifies, and a checkpoint
// text whose origin is the key's name and whose root line matches its
// partitions. The checkpoint, or why not.
[[nodiscard]] Result<Checkpoint> VerifyCheckpointNote(std::string_view note, const NoteKey& key);

// An Ed25519 signing key kept in a file (PKCS#8 PEM, mode 0600).
class NoteSigner {
 public:
  // Loads `path`, or creates it (and its directory) if it does not exist.
  [[nodiscard]] static Result<std::unique_ptr<NoteSigner>> LoadOrCreate(const std::string& path,
                                                                        const std::string& name);
  ~NoteSigner();
  const NoteKey& key() const { return key_; }
  // `text` (ending in a newline) as a signed note.
  [[nodiscard]] Result<std::string> Sign(std::string_view text) const;

 private:
  NoteSigner() = default;
  NoteKey key_;
  void* pkey_ = nullptr;  // EVP_PKEY*, kept out of this header
};

}  // namespace runlog::events
