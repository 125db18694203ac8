#include "events/merkle.h"

#include <bit>

#include "events/sha256.h"

namespace runlog::events::merkle {
namespace {

// The largest power of two strictly below n (n >= 2).
uint64_t SplitOf(uint64_t n) { return std::bit_floor(n - 1); }

Status SubProof(uint64_t m, uint64_t begin, uint64_t end, bool whole, const NodeSource& nodes,
                std::vector<std::string>* out) {
  const uint64_t n = end - begin;
  if (m == n) {
    if (whole) return {};
    auto h = RangeHash(begin, end, nodes);
    if (!h) return std::unexpected(h.error());
    out->push_back(std::move(*h));
    return {};
  }
  const uint64_t k = SplitOf(n);
  if (m <= k) {
    if (auto s = SubProof(m, begin, begin + k, whole, nodes, out); !s) return s;
    auto right = RangeHash(begin + k, end, nodes);
    if (!right) return std::unexpected(right.error());
    out->push_back(std::move(*right));
  } else {
    if (auto s = SubProof(m - k, begin + k, end, false, nodes, out); !s) return s;
    auto left = RangeHash(begin, begin + k, nodes);
    if (!left) return std::unexpected(left.error());
    out->push_back(std::move(*left));
  }
  return {};
}

// Right-shifts fn and sn together until fn's lowest bit is set or fn is 0.
void ShiftToSetBit(uint64_t& fn, uint64_t& sn) {
  while ((fn & 1) == 0 && fn != 0) {
    fn >>= 1;
    sn >>= 1;
  }
}

}  // namespace

std::string LeafHash(std::string_view data) {
  std::string in(1, '\x00');
  in.append(data);
  return Sha256(in);
}

std::string NodeHash(std::string_view left, std::string_view right) {
  std::string in(1, '\x01');
  in.append(left);
  in.append(right);
  return Sha256(in);
}

std::string EmptyRoot() { return Sha256(""); }

Result<std::string> RangeHash(uint64_t begin, uint64_t end, const NodeSource& nodes) {
  const uint64_t n = end - begin;
  if (n == 0) return EmptyRoot();
  if (std::has_single_bit(n) && begin % n == 0) {
    return nodes(std::countr_zero(n), begin >> std::countr_zero(n));
  }
  const uint64_t k = SplitOf(n);
  auto left = RangeHash(begin, begin + k, nodes);
  if (!left) return left;
  auto right = RangeHash(begin + k, end, nodes);
  if (!right) return right;
  return NodeHash(*left, *right);
}

Result<std::vector<std::string>> InclusionProof(uint64_t index, uint64_t size,
                                                const NodeSource& nodes) {
  if (index >= size) return Fail(codes::kInvalidArgument, "leaf index beyond the tree");
  std::vector<std::string> path;
  uint64_t begin = 0, end = size;
  // Collected root-down; RFC 6962 lists the path leaf-up.
  while (end - begin > 1) {
    const uint64_t k = SplitOf(end - begin);
    Result<std::string> sibling =
        index < begin + k ? RangeHash(begin + k, end, nodes) : RangeHash(begin, begin + k, nodes);
    if (!sibling) return std::unexpected(sibling.error());
    path.push_back(std::move(*sibling));
    if (index < begin + k) {
      end = begin + k;
    } else {
      begin += k;
    }
  }
  return std::vector<std::string>(path.rbegin(), path.rend());
}

Result<std::vector<std::string>> ConsistencyProof(uint64_t from, uint64_t to,
                                                  const NodeSource& nodes) {
  if (from > to) return Fail(codes::kInvalidArgument, "from is past to");
  std::vector<std::string> proof;
  if (from == 0 || from == to) return proof;
  if (auto s = SubProof(from, 0, to, true, nodes, &proof); !s) return std::unexpected(s.error());
  return proof;
}

bool VerifyInclusion(std::string_view leaf_hash, uint64_t index, uint64_t size,
                     const std::vector<std::string>& proof, std::string_view root) {
  if (index >= size) return false;
  uint64_t fn = index, sn = size - 1;
  std::string r(leaf_hash);
  for (const std::string& p : proof) {
    if (sn == 0) return false;
    if ((fn & 1) != 0 || fn == sn) {
      r = NodeHash(p, r);
      ShiftToSetBit(fn, sn);
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && r == root;
}

bool VerifyConsistency(uint64_t from, uint64_t to, std::string_view from_root,
                       std::string_view to_root, const std::vector<std::string>& proof) {
  if (from > to) return false;
  if (from == to) return proof.empty() && from_root == to_root;
  if (from == 0) return proof.empty();  // the empty tree is a prefix of any
  std::vector<std::string> path = proof;
  if (std::has_single_bit(from)) path.insert(path.begin(), std::string(from_root));
  if (path.empty()) return false;
  uint64_t fn = from - 1, sn = to - 1;
  while ((fn & 1) != 0) {
    fn >>= 1;
    sn >>= 1;
  }
  std::string fr = path[0], sr = path[0];
  for (size_t i = 1; i < path.size(); ++i) {
    const std::string& c = path[i];
    if (sn == 0) return false;
    if ((fn & 1) != 0 || fn == sn) {
      fr = NodeHash(c, fr);
      sr = NodeHash(c, sr);
      ShiftToSetBit(fn, sn);
    } else {
      sr = NodeHash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return fr == from_root && sr == to_root && sn == 0;
}

void Frontier::Append(
    std::string leaf_hash,
    const std::function<void(int level, uint64_t index, const std::string& hash)>& completed) {
  std::string h = std::move(leaf_hash);
  uint64_t index = size_;
  int level = 0;
  if (completed) completed(0, index, h);
  // Each trailing set bit of the old size is a peak this leaf completes a pair with.
  for (uint64_t s = size_; (s & 1) != 0; s >>= 1) {
    h = NodeHash(peaks_.back(), h);
    peaks_.pop_back();
    ++level;
    index >>= 1;
    if (completed) completed(level, index, h);
  }
  peaks_.push_back(std::move(h));
  ++size_;
}

std::string Frontier::Root() const {
  if (peaks_.empty()) return EmptyRoot();
  std::string r = peaks_.back();
  for (size_t i = peaks_.size() - 1; i > 0; --i) r = NodeHash(peaks_[i - 1], r);
  return r;
}

Result<Frontier> Frontier::Load(uint64_t size, const NodeSource& nodes) {
  Frontier f;
  uint64_t begin = 0;
  for (int level = 63; level >= 0; --level) {
    const uint64_t width = uint64_t{1} << level;
    if ((size & width) == 0) continue;
    auto h = nodes(level, begin >> level);
    if (!h) return std::unexpected(h.error());
    f.peaks_.push_back(std::move(*h));
    begin += width;
  }
  f.size_ = size;
  return f;
}

}  // namespace runlog::events::merkle
