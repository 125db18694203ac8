#include "events/canonical_json.h"

#include <gtest/gtest.h>

#include "events/sha256.h"
#include "infra/base/json.h"

namespace runlog::events {
namespace {

// RapidJSON 1.1 reads out of bounds on a number of thousands of digits
// (CVE-2024-38517; found by tests/fuzz): refused before it sees one.
TEST(CanonicalJson, ANumberOfMoreThanAHundredDigitsIsRefusedNotParsed) {
  for (const std::string& n :
       {"0." + std::string(5000, '0'), std::string(101, '7'), "1e" + std::string(200, '0')}) {
    auto r = Canonicalize("[1," + n + "]");
    ASSERT_FALSE(r.has_value()) << n.substr(0, 20);
    EXPECT_EQ(r.error().code, codes::kInvalidJson);
    EXPECT_NE(r.error().message.find("at byte 3"), std::string::npos) << r.error().message;
    runlog::json::Document doc;
    EXPECT_FALSE(runlog::json::Parse("[" + n + "]", &doc));
  }
  // A zero with an exponent is zero (RapidJSON alone reads "0e96" as 6.4e293).
  EXPECT_EQ(Canonicalize(R"([0e96,-0E+308,0.00e5,{"k":0e-7}])").value_or(""), R"([0,0,0,{"k":0}])");
  EXPECT_EQ(Canonicalize("[0.000000000000000000000000,-0.0,0]").value_or(""), "[0,0,0]");
  // Many digits with a large exponent: the nearest double (RapidJSON alone
  // read past its table of powers), or refused when it overflows.
  EXPECT_EQ(Canonicalize("[12345678901234567890123e280]").value_or(""),
            "[1.2345678901234568e+302]");
  EXPECT_EQ(
      Canonicalize("[1000000600000000000000000000000000000000000000011270537274753850313e301]")
          .error()
          .code,
      codes::kInvalidJson);
  EXPECT_EQ(Canonicalize("[2e308]").error().code, codes::kInvalidJson);
  // Digits inside strings are text, and a hundred digits is still a number.
  EXPECT_TRUE(Canonicalize("[\"" + std::string(5000, '0') + "\"]").has_value());
  EXPECT_TRUE(Canonicalize("0." + std::string(98, '0') + "1").has_value());
}

std::string Canon(std::string_view json) {
  auto r = Canonicalize(json);
  EXPECT_TRUE(r.has_value()) << json << ": " << r.error().ToString();
  return r.value_or("<error>");
}

TEST(CanonicalJson, SortsKeysByUtf8BytesAndDropsWhiteSpace) {
  EXPECT_EQ(Canon(R"( { "b" : 1, "a" : [ true, false, null ], "A": {"z":{}, "y":[]} } )"),
            R"({"A":{"y":[],"z":{}},"a":[true,false,null],"b":1})");
  // Byte order: "Z" < "a" < "é" (0xC3…) < "😀" (0xF0…).
  EXPECT_EQ(Canon(R"({"😀":1,"é":2,"a":3,"Z":4})"), R"({"Z":4,"a":3,"é":2,"😀":1})");
  EXPECT_EQ(Canon(R"({"ab":1,"a":2})"), R"({"a":2,"ab":1})");
}

TEST(CanonicalJson, EscapesMinimally) {
  EXPECT_EQ(Canon(R"("a\"b\\c\/d")"), R"("a\"b\\c/d")");
  EXPECT_EQ(Canon(R"("\b\f\n\r\t\u0001\u001f\u007f")"), "\"\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\"");
  EXPECT_EQ(Canon(R"("\u00e9\u20ac\ud83d\ude00")"), "\"é€😀\"");
  EXPECT_EQ(Canon(R"("\u2028")"), "\"\xe2\x80\xa8\"");
}

// AppendCanonicalString skips 8 plain bytes at a time: every position of an
// escape, in strings of every length around the word size, against the rules
// one character at a time.
TEST(CanonicalJson, EscapesAtEveryPositionOfLongStrings) {
  auto reference = [](std::string_view s) {
    std::string out = "\"";
    for (unsigned char c : s) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c == '\n') {
        out += "\\n";
      } else if (c < 0x20 && c != '\b' && c != '\f' && c != '\r' && c != '\t') {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else if (c == '\b' || c == '\f' || c == '\r' || c == '\t') {
        out += c == '\b' ? "\\b" : c == '\f' ? "\\f" : c == '\r' ? "\\r" : "\\t";
      } else {
        out += static_cast<char>(c);
      }
    }
    return out + "\"";
  };
  const std::string specials = std::string("\"\\\n\x01\x1f\x7f\xc3\xa9 ", 9);
  for (size_t len = 0; len <= 26; ++len) {
    for (size_t at = 0; at < len; ++at) {
      for (char special : specials) {
        std::string s(len, 'x');
        s[at] = special;
        std::string out;
        AppendCanonicalString(s, &out);
        ASSERT_EQ(out, reference(s)) << "length " << len << ", at " << at;
      }
    }
  }
}

TEST(CanonicalJson, IntegersAreExact) {
  EXPECT_EQ(Canon("[0,-0,1,-1,9007199254740993,18446744073709551615,-9223372036854775808]"),
            "[0,0,1,-1,9007199254740993,18446744073709551615,-9223372036854775808]");
}

TEST(CanonicalJson, DoublesUseTheShortestRoundTripInEcmaScriptForm) {
  EXPECT_EQ(Canon("[2.0,-0.0,0.1,1.5,100.0,1e2,-2.5e-3]"), "[2,0,0.1,1.5,100,100,-0.0025]");
  EXPECT_EQ(Canon("[1e21,1e20,123456789012345680000.0]"),
            "[1e+21,100000000000000000000,123456789012345680000]");
  EXPECT_EQ(Canon("[0.000001,0.0000001,1.2345e-7]"), "[0.000001,1e-7,1.2345e-7]");
  EXPECT_EQ(Canon("[1.7976931348623157e308,5e-324,0.30000000000000004]"),
            "[1.7976931348623157e+308,5e-324,0.30000000000000004]");
  // Beyond uint64 an integer literal becomes a double (documented).
  EXPECT_EQ(Canon("[18446744073709551616]"), "[18446744073709552000]");
}

TEST(CanonicalJson, FormatDoubleMatchesRfc8785Examples) {
  EXPECT_EQ(FormatDouble(333333333.33333329), "333333333.3333333");
  EXPECT_EQ(FormatDouble(1e30), "1e+30");
  EXPECT_EQ(FormatDouble(4.50), "4.5");
  EXPECT_EQ(FormatDouble(2e-3), "0.002");
  EXPECT_EQ(FormatDouble(0.000000000000000000000000001), "1e-27");
  EXPECT_EQ(FormatDouble(-1e-7), "-1e-7");
  EXPECT_EQ(FormatDouble(295147905179352830000.0), "295147905179352830000");
}

TEST(CanonicalJson, CanonicalFormIsAFixedPoint) {
  const std::string once = Canon(R"({"z":[1.0,{"b":"x","a":null}],"a":-3.25e10})");
  EXPECT_EQ(Canon(once), once);
}

TEST(CanonicalJson, RefusesWhatHasNoCanonicalForm) {
  auto duplicate = Canonicalize(R"({"a":1,"a":2})");
  ASSERT_FALSE(duplicate.has_value());
  EXPECT_EQ(duplicate.error().code, "INVALID_ARGUMENT");

  auto bad_utf8 = Canonicalize("\"\xff\"");
  ASSERT_FALSE(bad_utf8.has_value());
  EXPECT_EQ(bad_utf8.error().code, "INVALID_JSON");

  // A lone surrogate escape decodes to no valid UTF-8: refused, high or low.
  EXPECT_FALSE(Canonicalize(R"("\udc00")").has_value());
  EXPECT_FALSE(Canonicalize(R"("\ud800")").has_value());
  EXPECT_FALSE(Canonicalize(R"({"\udc00":1})").has_value());

  auto truncated = Canonicalize(R"({"a": [1, 2)");
  ASSERT_FALSE(truncated.has_value());
  EXPECT_EQ(truncated.error().code, "INVALID_JSON");
  EXPECT_EQ(truncated.error().details, R"({"position":11})");

  std::string deep(kMaxJsonDepth + 1, '[');
  deep += std::string(kMaxJsonDepth + 1, ']');
  auto too_deep = Canonicalize(deep);
  ASSERT_FALSE(too_deep.has_value());
  EXPECT_EQ(too_deep.error().code, "INVALID_ARGUMENT");
  std::string ok_depth(kMaxJsonDepth, '[');
  ok_depth += std::string(kMaxJsonDepth, ']');
  EXPECT_TRUE(Canonicalize(ok_depth).has_value());

  // A million brackets must be refused, not overflow the stack.
  std::string huge(1'000'000, '[');
  EXPECT_FALSE(Canonicalize(huge).has_value());
}

TEST(Sha256, MatchesKnownVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace runlog::events
