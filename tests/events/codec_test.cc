#include "events/codec.h"

#include <gtest/gtest.h>

#include "events/crc32c.h"
#include "events/partitioner.h"
#include "events/sha256.h"
#include "tests/testing/events.h"

namespace runlog::events {
namespace {

TEST(Crc32c, MatchesTheStandardCheckValue) { EXPECT_EQ(Crc32c("123456789"), 0xE3069283u); }

TEST(Crc32c, ChainsOverPiecesOfAnyLength) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data.push_back(static_cast<char>(i * 7 + 3));
  const uint32_t whole = Crc32c(data);
  for (size_t cut : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{500}}) {
    std::string_view all(data);
    EXPECT_EQ(Crc32c(all.substr(cut), Crc32c(all.substr(0, cut))), whole) << "cut at " << cut;
  }
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);  // RFC 3720 B.4: 32 bytes of zeros
}

TEST(Codec, RoundTripsEveryField) {
  Event e = runlog::testing::TestEvent("task_x", 7, R"({"k":"v"})");
  e.schema_version = 3;
  e.timestamp_ms = -5;
  auto decoded = DecodeEvent(EncodeEvent(e));
  ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
  EXPECT_EQ(*decoded, e);
}

// Kafka's form: JSON other programs read, decoding to the very same event,
// with a payload that keeps its bytes (hashes are over them).
TEST(Codec, TheJsonFormRoundTripsAndIsPlainJson) {
  Event e = runlog::testing::TestEvent("task_x", 7, R"({"a":[1,2.5,"\u2028"],"b":{}})");
  e.tenant_id = "acct_\"quoted\"";
  e.timestamp_ms = -5;
  const std::string json = EncodeEventJson(e);
  EXPECT_TRUE(json.starts_with(R"({"type":")")) << json;
  EXPECT_TRUE(json.ends_with(R"(,"payload":{"a":[1,2.5,"\u2028"],"b":{}}})")) << json;
  auto decoded = DecodeEvent(json);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
  EXPECT_EQ(*decoded, e);
  e.payload.clear();
  auto empty = DecodeEvent(EncodeEventJson(e));
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(*empty, e);
  // Any other JSON is not a record runlog wrote.
  for (std::string bad : {std::string(R"({"type":"x"})"), json.substr(0, json.size() - 1),
                          std::string(R"({"payload":{},"type":"t"})"), std::string("{")}) {
    auto r = DecodeEvent(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code, codes::kLogCorrupt);
  }
}

// The hash chain: SetPrev links a record in both forms, decoding gives the
// link back, and the record's hash covers it. A format 1 record (before the
// chain) still reads, with no link.
TEST(Codec, RecordsCarryTheirChainLinkInBothFormsAndFormatOneStillReads) {
  const Event e = runlog::testing::TestEvent("task_c", 2, R"({"prev":"not the envelope's"})");
  const std::string link = Sha256("the record before");
  for (std::string record : {EncodeEvent(e), EncodeEventJson(e)}) {
    std::string prev;
    ASSERT_TRUE(DecodeEvent(record, &prev).has_value());
    EXPECT_EQ(prev, std::string(kNoPrev));
    const std::string unlinked_hash = RecordHash(record);
    SetPrev(record, link);
    EXPECT_NE(RecordHash(record), unlinked_hash);
    auto decoded = DecodeRecord(3, 9, record);
    ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
    EXPECT_EQ(decoded->event, e);
    EXPECT_EQ(decoded->prev, link);
    EXPECT_EQ(decoded->hash, Sha256(record));
    EXPECT_EQ(decoded->partition, 3u);
    EXPECT_EQ(decoded->offset, 9u);
  }
  EXPECT_NE(EncodeEventJson(e).find(R"(,"prev":"0000)"), std::string::npos);
  // Format 1: no link; the checksum covers the body alone.
  std::string v2 = EncodeEvent(e);
  std::string v1 = v2.substr(0, 6) + v2.substr(6 + 32);
  v1[1] = 1;
  const uint32_t crc = Crc32c(std::string_view(v1).substr(6));
  for (int i = 0; i < 4; ++i) v1[2 + i] = static_cast<char>((crc >> (8 * i)) & 0xFF);
  std::string prev = "x";
  auto old = DecodeEvent(v1, &prev);
  ASSERT_TRUE(old.has_value()) << old.error().ToString();
  EXPECT_EQ(*old, e);
  EXPECT_TRUE(prev.empty());
}

TEST(Codec, DetectsEveryFlippedByteAndEveryTruncation) {
  const std::string good = EncodeEvent(runlog::testing::TestEvent("task_y", 1));
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x20);
    auto r = DecodeEvent(bad);
    ASSERT_FALSE(r.has_value()) << "flip at byte " << i << " went unnoticed";
    EXPECT_EQ(r.error().code, codes::kLogCorrupt);
  }
  for (size_t len = 0; len < good.size(); ++len) {
    EXPECT_FALSE(DecodeEvent(std::string_view(good).substr(0, len)).has_value()) << len;
  }
  EXPECT_FALSE(DecodeEvent(good + "x").has_value());
}

TEST(Partitioner, IsStableAcrossBuilds) {
  // Fixed values: changing the hash would move existing aggregates.
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(PartitionFor("task_01", 8), Fnv1a64("task_01") % 8);
}

}  // namespace
}  // namespace runlog::events
