#pragma once
// Builds an event payload directly in canonical JSON: members may be added in
// any order and come out sorted by key. Values given as raw JSON must already
// be canonical (an empty raw value is written as null).

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "events/canonical_json.h"

namespace runlog::events {

class Payload {
 public:
  Payload& Str(std::string_view key, std::string_view value) {
    std::string v;
    AppendCanonicalString(value, &v);
    return Add(key, std::move(v));
  }
  Payload& Int(std::string_view key, int64_t value) { return Add(key, std::to_string(value)); }
  Payload& Bool(std::string_view key, bool value) { return Add(key, value ? "true" : "false"); }
  Payload& Raw(std::string_view key, std::string_view canonical) {
    return Add(key, canonical.empty() ? std::string("null") : std::string(canonical));
  }

  std::string Build() {
    std::sort(members_.begin(), members_.end());  // by key (then value: stays deterministic)
    size_t size = 2;
    for (const auto& [key, value] : members_) size += key.size() + value.size() + 4;
    std::string out;
    out.reserve(size);  // keys needing escapes may still grow it
    out.push_back('{');
    for (size_t i = 0; i < members_.size(); ++i) {
      if (i > 0) out.push_back(',');
      AppendCanonicalString(members_[i].first, &out);
      out.push_back(':');
      out += members_[i].second;
    }
    out.push_back('}');
    return out;
  }

 private:
  Payload& Add(std::string_view key, std::string value) {
    members_.emplace_back(std::string(key), std::move(value));
    return *this;
  }
  std::vector<std::pair<std::string, std::string>> members_;
};

}  // namespace runlog::events
