#pragma once
// RFC 6962 Merkle trees (section 2.1) over a partition's records: leaf i is
// the hash of the partition's i-th record (events/codec.h, RecordHash), so
//   leaf hash  = SHA-256(0x00 || record hash)
//   node hash  = SHA-256(0x01 || left || right)
//   empty tree = SHA-256("")
// Every hash here is 32 raw bytes. The proofs are RFC 6962's PATH and PROOF,
// and the checks are RFC 9162's iterative ones (2.1.3.2 and 2.1.4.2), so
// any RFC 6962 library can check what runlog serves.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "infra/base/result.h"

namespace runlog::events::merkle {

std::string LeafHash(std::string_view data);
std::string NodeHash(std::string_view left, std::string_view right);
std::string EmptyRoot();

// The hash of the complete subtree of 2^level leaves starting at leaf
// index << level: what a tree store keeps. A Result, since a store can fail.
using NodeSource = std::function<Result<std::string>(int level, uint64_t index)>;

// MTH(D[begin:end]) for any range whose `begin` is a multiple of the largest
// power of two below end - begin (as every range RFC 6962 splits off is).
[[nodiscard]] Result<std::string> RangeHash(uint64_t begin, uint64_t end, const NodeSource& nodes);
// PATH(index, D[0:size]): the inclusion proof of leaf `index`.
[[nodiscard]] Result<std::vector<std::string>> InclusionProof(uint64_t index, uint64_t size,
                                                              const NodeSource& nodes);
// PROOF(from, D[0:to]): that the tree of size `from` is a prefix of `to`'s.
[[nodiscard]] Result<std::vector<std::string>> ConsistencyProof(uint64_t from, uint64_t to,
                                                                const NodeSource& nodes);

bool VerifyInclusion(std::string_view leaf_hash, uint64_t index, uint64_t size,
                     const std::vector<std::string>& proof, std::string_view root);
bool VerifyConsistency(uint64_t from, uint64_t to, std::string_view from_root,
                       std::string_view to_root, const std::vector<std::string>& proof);

// A growing tree's right edge: the roots of its complete subtrees, largest
// first (one per set bit of the size). Enough to append and to give the
// root, in O(log size) memory.
class Frontier {
 public:
  // Appends a leaf hash; `completed`, if given, hears of every complete
  // subtree this finishes (level 0 is the leaf itself), to store them.
  void Append(std::string leaf_hash,
              const std::function<void(int level, uint64_t index, const std::string& hash)>&
                  completed = nullptr);
  uint64_t size() const { return size_; }
  std::string Root() const;
  // The frontier of a tree of `size` leaves whose complete subtrees `nodes` has.
  [[nodiscard]] static Result<Frontier> Load(uint64_t size, const NodeSource& nodes);

 private:
  uint64_t size_ = 0;
  std::vector<std::string> peaks_;  // largest subtree first
};

}  // namespace runlog::events::merkle
