#pragma once
// Canonical JSON: the one byte form of a JSON value that runlog hashes and
// stores (docs/hashing.md has the exact rules, after RFC 8785):
// object keys sorted by their UTF-8 bytes, no insignificant white space, strings
// escaped minimally, numbers in the shortest form that round-trips (ECMAScript
// Number::toString), integers exactly. Duplicate keys, invalid UTF-8,
// non-finite numbers and nesting deeper than kMaxDepth are refused.

#include <rapidjson/document.h>

#include <string>
#include <string_view>

#include "infra/base/result.h"

namespace runlog::events {

inline constexpr int kMaxJsonDepth = 64;

// Parses JSON text (strict UTF-8, iterative, so deep input cannot overflow the
// stack) and returns its canonical form. Errors: INVALID_JSON with the byte
// offset in the message, or INVALID_ARGUMENT for a value canonical form refuses.
[[nodiscard]] Result<std::string> Canonicalize(std::string_view json);

// Appends the canonical form of an already parsed value.
[[nodiscard]] Status WriteCanonical(const rapidjson::Value& value, std::string* out);

// The canonical form of a value parsed from text runlog canonicalized already
// (so within the limits): WriteCanonical with its status dropped. Use
// WriteCanonical where the value may be deeper than kMaxJsonDepth.
inline std::string CanonicalText(const rapidjson::Value& value) {
  std::string out;
  (void)WriteCanonical(value, &out);
  return out;
}

// Appends `s` (UTF-8) as a canonical JSON string literal.
void AppendCanonicalString(std::string_view s, std::string* out);

// The ECMAScript / RFC 8785 text of a finite double, e.g. 2.0 -> "2",
// 1e21 -> "1e+21", 0.000001 -> "0.000001", 1e-7 -> "1e-7".
std::string FormatDouble(double value);

}  // namespace runlog::events
