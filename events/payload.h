#pragma once
// Builds an event payload directly in canonical JSON: members may be added in
// any order and come out sorted by key. Values given as raw JSON must already
// be canonical (an empty raw value is written as null).
//
// Keys and values are appended to one buffer as they come, and Build sorts
// small index entries into it: no allocation per member, and the sort moves
// 24 bytes per member instead of two strings.

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "events/canonical_json.h"

namespace runlog::events {

class Payload {
 public:
  Payload() { members_.reserve(16); }

  Payload& Str(std::string_view key, std::string_view value) {
    const uint32_t at = Key(key);
    AppendCanonicalString(value, &buf_);
    return Value(at);
  }
  Payload& Int(std::string_view key, int64_t value) {
    const uint32_t at = Key(key);
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
    buf_.append(digits, end);
    return Value(at);
  }
  Payload& Bool(std::string_view key, bool value) {
    const uint32_t at = Key(key);
    buf_ += value ? "true" : "false";
    return Value(at);
  }
  Payload& Raw(std::string_view key, std::string_view canonical) {
    const uint32_t at = Key(key);
    buf_ += canonical.empty() ? std::string_view("null") : canonical;
    return Value(at);
  }

  std::string Build() {
    std::vector<Member>& sorted = members_;
    // By key (then value: stays deterministic). In place: no copy to allocate.
    std::sort(sorted.begin(), sorted.end(), [&](const Member& a, const Member& b) {
      if (a.key_head != b.key_head) return a.key_head < b.key_head;
      const std::string_view ka = View(a.key_at, a.key_len), kb = View(b.key_at, b.key_len);
      if (ka != kb) return ka < kb;
      return View(a.value_at, a.value_len) < View(b.value_at, b.value_len);
    });
    std::string out;
    out.reserve(buf_.size() + 4 * sorted.size() + 2);  // keys needing escapes may still grow it
    out.push_back('{');
    for (size_t i = 0; i < sorted.size(); ++i) {
      if (i > 0) out.push_back(',');
      AppendCanonicalString(View(sorted[i].key_at, sorted[i].key_len), &out);
      out.push_back(':');
      out += View(sorted[i].value_at, sorted[i].value_len);
    }
    out.push_back('}');
    return out;
  }

 private:
  struct Member {
    uint64_t key_head;  // the key's first 8 bytes, big-endian: most comparisons end here
    uint32_t key_at, key_len, value_at, value_len;
  };
  uint32_t Key(std::string_view key) {
    uint64_t head = 0;
    for (size_t i = 0; i < 8; ++i) {
      head = head << 8 | (i < key.size() ? static_cast<unsigned char>(key[i]) : 0);
    }
    members_.push_back(
        {head, static_cast<uint32_t>(buf_.size()), static_cast<uint32_t>(key.size()), 0, 0});
    buf_ += key;
    return static_cast<uint32_t>(buf_.size());
  }
  Payload& Value(uint32_t at) {
    members_.back().value_at = at;
    members_.back().value_len = static_cast<uint32_t>(buf_.size() - at);
    return *this;
  }
  std::string_view View(uint32_t at, uint32_t len) const {
    return std::string_view(buf_).substr(at, len);
  }

  std::string buf_;
  std::vector<Member> members_;
};

}  // namespace runlog::events
