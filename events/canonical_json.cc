#include "events/canonical_json.h"

#include <rapidjson/error/en.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <vector>

#include "infra/base/json.h"

namespace runlog::events {
namespace {

// True if one of the 8 bytes of `w` is a control character, '"' or '\\'
// (bit tricks: a byte below 0x20, or equal to either once xor-ed to zero).
bool NeedsEscape8(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  const uint64_t below = (w - 0x20 * kOnes) & ~w & kHigh;
  const uint64_t q = w ^ ('"' * kOnes), b = w ^ ('\\' * kOnes);
  return (below | ((q - kOnes) & ~q & kHigh) | ((b - kOnes) & ~b & kHigh)) != 0;
}

void WriteStringImpl(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->reserve(out->size() + s.size() + 2);
  out->push_back('"');
  size_t plain = 0;  // start of the run of characters copied as they are
  for (size_t i = 0; i < s.size(); ++i) {
    uint64_t word;
    while (i + 8 <= s.size() && (std::memcpy(&word, s.data() + i, 8), !NeedsEscape8(word))) i += 8;
    if (i == s.size()) break;
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + plain, i - plain);
    plain = i + 1;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:  // the other control characters
        out->append("\\u00");
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 15]);
    }
  }
  out->append(s.data() + plain, s.size() - plain);
  out->push_back('"');
}

// RapidJSON 1.1 decodes a lone low-surrogate escape ("\uDC00") into the bytes
// ED B0 80, which are not UTF-8. Canonical form refuses them.
bool HasEncodedSurrogate(std::string_view s) {
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (static_cast<unsigned char>(s[i]) == 0xED &&
        (static_cast<unsigned char>(s[i + 1]) & 0xE0) == 0xA0) {
      return true;
    }
  }
  return false;
}

Status Write(const rapidjson::Value& v, int depth, std::string* out) {
  if (depth >= kMaxJsonDepth) {
    return Fail(codes::kInvalidArgument,
                "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  switch (v.GetType()) {
    case rapidjson::kNullType:
      out->append("null");
      return {};
    case rapidjson::kFalseType:
      out->append("false");
      return {};
    case rapidjson::kTrueType:
      out->append("true");
      return {};
    case rapidjson::kStringType: {
      std::string_view text(v.GetString(), v.GetStringLength());
      if (HasEncodedSurrogate(text)) {
        return Fail(codes::kInvalidArgument, "string holds a lone UTF-16 surrogate");
      }
      WriteStringImpl(text, out);
      return {};
    }
    case rapidjson::kNumberType:
      if (v.IsUint64()) {
        out->append(std::to_string(v.GetUint64()));
      } else if (v.IsInt64()) {
        out->append(std::to_string(v.GetInt64()));
      } else {
        double d = v.GetDouble();
        if (!std::isfinite(d)) return Fail(codes::kInvalidArgument, "non-finite number");
        out->append(FormatDouble(d));
      }
      return {};
    case rapidjson::kArrayType: {
      out->push_back('[');
      bool first = true;
      for (const auto& item : v.GetArray()) {
        if (!first) out->push_back(',');
        first = false;
        if (auto s = Write(item, depth + 1, out); !s) return s;
      }
      out->push_back(']');
      return {};
    }
    case rapidjson::kObjectType: {
      std::vector<const rapidjson::Value::Member*> members;
      members.reserve(v.MemberCount());
      for (const auto& m : v.GetObject()) {
        if (HasEncodedSurrogate(std::string_view(m.name.GetString(), m.name.GetStringLength()))) {
          return Fail(codes::kInvalidArgument, "key holds a lone UTF-16 surrogate");
        }
        members.push_back(&m);
      }
      auto key = [](const rapidjson::Value::Member* m) {
        return std::string_view(m->name.GetString(), m->name.GetStringLength());
      };
      std::sort(members.begin(), members.end(), [&](auto* a, auto* b) { return key(a) < key(b); });
      out->push_back('{');
      for (size_t i = 0; i < members.size(); ++i) {
        if (i > 0) {
          if (key(members[i]) == key(members[i - 1])) {
            return Fail(codes::kInvalidArgument,
                        "duplicate object key \"" + std::string(key(members[i])) + "\"");
          }
          out->push_back(',');
        }
        WriteStringImpl(key(members[i]), out);
        out->push_back(':');
        if (auto s = Write(members[i]->value, depth + 1, out); !s) return s;
      }
      out->push_back('}');
      return {};
    }
  }
  return Fail(codes::kInternal, "unknown JSON type");
}

}  // namespace

void AppendCanonicalString(std::string_view s, std::string* out) { WriteStringImpl(s, out); }

std::string FormatDouble(double value) {
  if (!std::isfinite(value)) std::abort();  // callers check: JSON has no NaN or Infinity
  if (value == 0) return "0";               // also -0
  std::string out;
  if (value < 0) {
    out.push_back('-');
    value = -value;
  }
  // Shortest round-trip digits in scientific form: d[.ddd]e±x
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  std::string_view sci(buf, res.ptr - buf);
  size_t e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos)) {
    if (c != '.') digits.push_back(c);
  }
  int exp10 = 0;
  std::from_chars(sci.data() + e_pos + 1 + (sci[e_pos + 1] == '+'), sci.data() + sci.size(), exp10);
  const int k = static_cast<int>(digits.size());
  const int n = exp10 + 1;  // value = 0.digits × 10^n
  if (k <= n && n <= 21) {
    out += digits;
    out.append(n - k, '0');
  } else if (0 < n && n <= 21) {
    out += digits.substr(0, n);
    out.push_back('.');
    out += digits.substr(n);
  } else if (-6 < n && n <= 0) {
    out += "0.";
    out.append(-n, '0');
    out += digits;
  } else {
    out.push_back(digits[0]);
    if (k > 1) {
      out.push_back('.');
      out += digits.substr(1);
    }
    out.push_back('e');
    out.push_back(n - 1 >= 0 ? '+' : '-');
    out += std::to_string(std::abs(n - 1));
  }
  return out;
}

Status WriteCanonical(const rapidjson::Value& value, std::string* out) {
  return Write(value, 0, out);
}

Result<std::string> Canonicalize(std::string_view json) {
  rapidjson::Document doc;
  size_t long_number = std::string_view::npos;
  const bool parsed =
      json::ParseUntrusted<rapidjson::kParseValidateEncodingFlag |
                           rapidjson::kParseFullPrecisionFlag | rapidjson::kParseIterativeFlag>(
          json, &doc, &long_number);
  if (long_number != std::string_view::npos) {
    return Fail(codes::kInvalidJson, json::LongNumberMessage(long_number),
                "{\"position\":" + std::to_string(long_number) + "}");
  }
  if (!parsed) {
    return Fail(codes::kInvalidJson,
                std::string(rapidjson::GetParseError_En(doc.GetParseError())) + " at byte " +
                    std::to_string(doc.GetErrorOffset()),
                "{\"position\":" + std::to_string(doc.GetErrorOffset()) + "}");
  }
  std::string out;
  out.reserve(json.size());
  if (auto s = WriteCanonical(doc, &out); !s) return std::unexpected(s.error());
  return out;
}

}  // namespace runlog::events
