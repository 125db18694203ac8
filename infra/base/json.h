#pragma once
// Small helpers over RapidJSON shared by every folder: typed field access that
// reports the field path on a mismatch, and writing values out as text.

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace runlog::json {

using Value = rapidjson::Value;
using Document = rapidjson::Document;

inline const Value* Find(const Value& object, std::string_view key) {
  if (!object.IsObject()) return nullptr;
  // As a Value: a bare StringRef would convert to const char* and be read to its NUL.
  const Value name(rapidjson::StringRef(key.data(), key.size()));
  auto it = object.FindMember(name);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

// The member `key` if it is present and not null.
inline const Value* FindSet(const Value& object, std::string_view key) {
  const Value* v = Find(object, key);
  return v == nullptr || v->IsNull() ? nullptr : v;
}

inline std::string String(const Value& object, std::string_view key, std::string fallback = {}) {
  const Value* v = Find(object, key);
  return v != nullptr && v->IsString() ? std::string(v->GetString(), v->GetStringLength())
                                       : fallback;
}

inline int64_t Int(const Value& object, std::string_view key, int64_t fallback = 0) {
  const Value* v = Find(object, key);
  return v != nullptr && v->IsInt64() ? v->GetInt64() : fallback;
}

inline bool Bool(const Value& object, std::string_view key, bool fallback = false) {
  const Value* v = Find(object, key);
  return v != nullptr && v->IsBool() ? v->GetBool() : fallback;
}

// Compact JSON text of a value (not canonical: use events::WriteCanonical for hashing).
inline std::string Write(const Value& v) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  v.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

// A document for a short-lived parse on the stack: its values live in an
// inline buffer, so a small payload parses without the 64 KiB heap chunk a
// default Document allocates. Not copyable or movable.
class ScratchDocument {
 public:
  ScratchDocument() = default;
  ScratchDocument(const ScratchDocument&) = delete;
  ScratchDocument& operator=(const ScratchDocument&) = delete;
  Document& doc() { return doc_; }

 private:
  char buffer_[8192];
  rapidjson::MemoryPoolAllocator<> pool_{buffer_, sizeof buffer_};
  Document doc_{&pool_};
};

// What RapidJSON 1.1, as Debian 12 ships it, gets wrong in number literals
// (found by tests/fuzz): one of a few hundred digits makes it read out of
// bounds (CVE-2024-38517), one of many significant digits with a large
// exponent reads past its table of powers of ten, and a zero with an exponent
// or a long fraction it reads as garbage ("0e96" as 6.4e293). Every text
// runlog did not write goes through this before RapidJSON sees it. Returns the
// offset of the first number it refuses, or npos: one of more than
// kMaxNumberDigits digits, or too big for a double. Otherwise `*text` is what
// to parse (in `*storage` if anything changed): each zero written with a
// fraction or exponent becomes 0.0, and each other number RapidJSON would
// convert the hard way (more than 17 significant digits, or a decimal
// exponent beyond ±300) becomes the 17 digits of the double strtod gives it,
// which it reads back exactly.
inline constexpr size_t kMaxNumberDigits = 100;
inline size_t PrepareNumbers(std::string_view* text, std::string* storage) {
  const std::string_view in = *text;
  std::string out;
  size_t copied = 0;  // of `in`, into `out`
  bool in_string = false;
  auto digits_at = [&](size_t i) { return i < in.size() && in[i] >= '0' && in[i] <= '9'; };
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    if (c != '-' && !digits_at(i)) continue;
    // One literal, by JSON's grammar: -? int (. frac)? ([eE] [+-]? exp)?
    const size_t start = i;
    if (in[i] == '-') ++i;
    size_t digits = 0, significant = 0;
    long order = 0;  // where the first nonzero digit is, relative to the point
    bool seen_nonzero = false, fraction = false, exponent = false;
    for (; digits_at(i); ++i, ++digits) {
      if (in[i] != '0') seen_nonzero = true;
      if (seen_nonzero) ++significant, ++order;
    }
    if (i < in.size() && in[i] == '.') {
      fraction = true;
      for (++i; digits_at(i); ++i, ++digits) {
        if (in[i] != '0') seen_nonzero = true;
        if (seen_nonzero) {
          ++significant;
        } else {
          --order;
        }
      }
    }
    long exp = 0;
    if (i < in.size() && (in[i] == 'e' || in[i] == 'E')) {
      exponent = true;
      ++i;
      bool negative = false;
      if (i < in.size() && (in[i] == '+' || in[i] == '-')) negative = in[i++] == '-';
      for (; digits_at(i); ++i, ++digits) exp = std::min(exp * 10 + (in[i] - '0'), 100000L);
      if (negative) exp = -exp;
    }
    if (digits > kMaxNumberDigits) return start;
    const std::string_view literal = in.substr(start, i - start);
    std::string replacement;
    if (!seen_nonzero && digits > 0 && (exponent || literal.size() > 4)) {
      replacement = literal[0] == '-' ? "-0.0" : "0.0";
    } else if (seen_nonzero && (fraction || exponent || digits > 20) &&
               (significant > 17 || order + exp > 300 || order + exp < -300)) {
      const double v = std::strtod(std::string(literal).c_str(), nullptr);
      if (!std::isfinite(v)) return start;
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", v);
      replacement = buf;
      if (replacement.find_first_of(".e") == std::string::npos) replacement += ".0";
    }
    if (!replacement.empty()) {
      // Not run together with what follows (the text is then not JSON, and
      // RapidJSON is to say so, not to read a longer number).
      if (i < in.size() && in[i] != ',' && in[i] != ']' && in[i] != '}' && in[i] != ' ' &&
          in[i] != '\n' && in[i] != '\r' && in[i] != '\t') {
        replacement += ' ';
      }
      out.append(in.substr(copied, start - copied));
      out += replacement;
      copied = i;
    }
    --i;  // the loop's ++i reads the character that ended the literal
  }
  if (copied > 0) {
    out.append(in.substr(copied));
    *storage = std::move(out);
    *text = *storage;
  }
  return std::string_view::npos;
}

// Why PrepareNumbers refused the number at byte `at`.
inline std::string LongNumberMessage(size_t at) {
  return "the number at byte " + std::to_string(at) + " has more than " +
         std::to_string(kMaxNumberDigits) + " digits or is too big for a double";
}

// Parses text runlog did not write, with RapidJSON `flags`, its numbers
// prepared first (PrepareNumbers). False if a number is too long (then
// `*long_number_at` says where, and `doc` is null) or RapidJSON refuses the
// text (`doc`'s parse error says why).
template <unsigned flags, typename Doc>
bool ParseUntrusted(std::string_view text, Doc* doc, size_t* long_number_at = nullptr) {
  std::string storage;
  const size_t at = PrepareNumbers(&text, &storage);
  if (long_number_at != nullptr) *long_number_at = at;
  if (at != std::string_view::npos) {
    doc->SetNull();
    return false;
  }
  return !doc->template Parse<flags>(text.data(), text.size()).HasParseError();
}

// Parses text known to be valid JSON written by runlog itself (or refuses it).
// Full precision: numbers must come back as the doubles that were written.
inline bool Parse(std::string_view text, Document* doc) {
  return ParseUntrusted<rapidjson::kParseFullPrecisionFlag>(text, doc);
}

}  // namespace runlog::json
