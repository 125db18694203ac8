// Embedded-backend behaviour beyond the conformance suite: damage on disk is
// found by checksum and reported with its partition and offset, never skipped.

#include "events/embedded_log.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <fstream>
#include <functional>

#include "tests/testing/events.h"
#include "tests/testing/temp_dir.h"

namespace runlog::events {
namespace {

using runlog::testing::AggregateOn;
using runlog::testing::TestEvent;

class EmbeddedLogDamage : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.data_dir = dir_.path();
    options_.partitions = 2;
    auto log = OpenEventLog(options_);
    ASSERT_TRUE(log.has_value());
    const std::string agg = AggregateOn(1, 2);
    for (uint64_t i = 1; i <= 5; ++i) {
      ASSERT_TRUE((*log)->Append(1, std::vector<Event>{TestEvent(agg, i)}).has_value());
    }
  }

  // Edits the closed log's RocksDB directly, as disk damage would.
  void Damage(const std::function<void(rocksdb::DB&)>& edit) {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir_ / "log", &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    edit(*db);
  }

  Error ReadError() {
    auto log = OpenEventLog(options_);
    EXPECT_TRUE(log.has_value());
    auto records = (*log)->Read(1, 0, 100);
    EXPECT_FALSE(records.has_value()) << "damage went unnoticed";
    return records ? Error{} : records.error();
  }

  runlog::testing::TempDir dir_;
  LogOptions options_;
};

TEST_F(EmbeddedLogDamage, FlippedByteIsReportedWithPartitionAndOffset) {
  Damage([](rocksdb::DB& db) {
    std::string value;
    ASSERT_TRUE(db.Get({}, EmbeddedLogKey(1, 2), &value).ok());
    value[value.size() / 2] ^= 0x01;
    ASSERT_TRUE(db.Put({}, EmbeddedLogKey(1, 2), value).ok());
  });
  Error e = ReadError();
  EXPECT_EQ(e.code, codes::kLogCorrupt);
  EXPECT_NE(e.message.find("partition 1 offset 2"), std::string::npos) << e.message;
  EXPECT_EQ(e.details, R"({"partition":1,"offset":2})");
}

TEST_F(EmbeddedLogDamage, TruncatedRecordIsReported) {
  Damage([](rocksdb::DB& db) {
    std::string value;
    ASSERT_TRUE(db.Get({}, EmbeddedLogKey(1, 3), &value).ok());
    ASSERT_TRUE(db.Put({}, EmbeddedLogKey(1, 3), value.substr(0, value.size() - 7)).ok());
  });
  Error e = ReadError();
  EXPECT_EQ(e.code, codes::kLogCorrupt);
  EXPECT_EQ(e.details, R"({"partition":1,"offset":3})");
}

TEST_F(EmbeddedLogDamage, MissingRecordIsAGapNotASkip) {
  Damage([](rocksdb::DB& db) { ASSERT_TRUE(db.Delete({}, EmbeddedLogKey(1, 1)).ok()); });
  Error e = ReadError();
  EXPECT_EQ(e.code, codes::kLogCorrupt);
  EXPECT_NE(e.message.find("offset 1: record missing"), std::string::npos) << e.message;
}

TEST_F(EmbeddedLogDamage, RecordsBeforeTheDamageStillRead) {
  Damage([](rocksdb::DB& db) { ASSERT_TRUE(db.Put({}, EmbeddedLogKey(1, 4), "junk").ok()); });
  auto log = OpenEventLog(options_);
  ASSERT_TRUE(log.has_value());
  auto head = (*log)->Read(1, 0, 4);
  ASSERT_TRUE(head.has_value()) << head.error().ToString();
  EXPECT_EQ(head->size(), 4u);
  EXPECT_FALSE((*log)->Read(1, 0, 5).has_value());
}

TEST(EmbeddedLog, UnwritableDataDirIsAClearError) {
  runlog::testing::TempDir dir;
  { std::ofstream(dir / "file") << "x"; }
  LogOptions options;
  options.data_dir = dir / "file";  // a file, not a directory
  auto log = OpenEventLog(options);
  ASSERT_FALSE(log.has_value());
  EXPECT_EQ(log.error().code, codes::kUnavailable);
  EXPECT_NE(log.error().message.find("cannot create data directory"), std::string::npos);
}

}  // namespace
}  // namespace runlog::events
