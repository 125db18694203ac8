// The embedded log on a failing disk. Its RocksDB runs on a filesystem that
// passes everything through, except that the WAL (the "*.log" files) can be
// switched to fail its fdatasync, to fail its writes with an I/O error, or to
// fail them as a full disk (ENOSPC); the pattern of LevelDB's
// db/fault_injection_test.cc, over rocksdb::FileSystem. For each fault:
// - the appends that meet it fail with LOG_LATCHED (503, retryable: the writer
//   rebuilds from the log) and a message naming the log and what failed, and
//   none of them is acknowledged or becomes readable;
// - the log is latched: it refuses every later append with the same answer,
//   even once the disk is healthy again, rather than guess what reached it;
// - reopened without the fault, the log holds every acknowledged event at its
//   offset; past them it holds nothing or whole unacknowledged batches in the
//   order they were attempted (their outcome was unknown), never a gap; and
//   appends work again.

#include <gtest/gtest.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/io_status.h>

#include <atomic>
#include <future>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "events/event_log.h"
#include "tests/testing/events.h"
#include "tests/testing/temp_dir.h"

namespace runlog::events {
namespace {

using runlog::testing::AggregateOn;
using runlog::testing::TestEvent;
constexpr uint32_t kPartitions = 2;

enum class Fault { kNone, kSyncFails, kWriteFails, kDiskFull };

std::string FaultName(Fault fault) {
  switch (fault) {
    case Fault::kNone:
      return "None";
    case Fault::kSyncFails:
      return "SyncFails";
    case Fault::kWriteFails:
      return "WriteFails";
    case Fault::kDiskFull:
      return "DiskFull";
  }
  return "?";
}
void PrintTo(Fault fault, std::ostream* os) { *os << FaultName(fault); }

// The default filesystem, with a switch on the WAL. Every WAL file opened
// through it checks the switch on each Append/Sync/Fsync; other files (SSTs,
// MANIFEST, LOG) are never touched.
class FaultFs final : public rocksdb::FileSystemWrapper {
 public:
  FaultFs() : rocksdb::FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "RunlogFaultFs"; }

  void Inject(Fault fault) { fault_.store(fault); }
  // How many operations have failed on purpose so far.
  int injected() const { return injected_.load(); }

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* file,
                                    rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewWritableFile(name, options, file, dbg);
    if (s.ok() && name.ends_with(".log")) *file = std::make_unique<Wal>(std::move(*file), *this);
    return s;
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* file,
                                       rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->ReopenWritableFile(name, options, file, dbg);
    if (s.ok() && name.ends_with(".log")) *file = std::make_unique<Wal>(std::move(*file), *this);
    return s;
  }

 private:
  // The error to answer instead of doing the operation, or OK to do it.
  rocksdb::IOStatus Check(bool is_sync) {
    rocksdb::IOStatus s;
    const Fault fault = fault_.load();
    if (is_sync && fault == Fault::kSyncFails) {
      s = rocksdb::IOStatus::IOError("injected fault: WAL sync failed");
    } else if (!is_sync && fault == Fault::kWriteFails) {
      s = rocksdb::IOStatus::IOError("injected fault: WAL write failed");
    } else if (!is_sync && fault == Fault::kDiskFull) {
      s = rocksdb::IOStatus::NoSpace("injected fault: WAL write, disk full");
    }
    if (!s.ok()) ++injected_;
    return s;
  }

  class Wal final : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    Wal(std::unique_ptr<rocksdb::FSWritableFile> file, FaultFs& fs)
        : rocksdb::FSWritableFileOwnerWrapper(std::move(file)), fs_(fs) {}

    // A failed write writes nothing.
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
      rocksdb::IOStatus s = fs_.Check(/*is_sync=*/false);
      return s.ok() ? FSWritableFileOwnerWrapper::Append(data, options, dbg) : s;
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                             const rocksdb::DataVerificationInfo& info,
                             rocksdb::IODebugContext* dbg) override {
      rocksdb::IOStatus s = fs_.Check(/*is_sync=*/false);
      return s.ok() ? FSWritableFileOwnerWrapper::Append(data, options, info, dbg) : s;
    }
    // A failed sync leaves what was written in the page cache, unsynced: the
    // "fsyncgate" case, where the data may or may not reach the disk.
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
      rocksdb::IOStatus s = fs_.Check(/*is_sync=*/true);
      return s.ok() ? FSWritableFileOwnerWrapper::Sync(options, dbg) : s;
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* dbg) override {
      rocksdb::IOStatus s = fs_.Check(/*is_sync=*/true);
      return s.ok() ? FSWritableFileOwnerWrapper::Fsync(options, dbg) : s;
    }

   private:
    FaultFs& fs_;
  };

  std::atomic<Fault> fault_{Fault::kNone};
  std::atomic<int> injected_{0};
};

// What RocksDB's status text, carried into the log's message, must say.
std::string WhatFailed(Fault fault) {
  switch (fault) {
    case Fault::kSyncFails:
      return "WAL sync failed";
    case Fault::kWriteFails:
      return "WAL write failed";
    case Fault::kDiskFull:
      return "No space left on device";
    case Fault::kNone:
      break;
  }
  return "?";
}

class EmbeddedFault : public ::testing::TestWithParam<Fault> {
 protected:
  void SetUp() override {
    options_.data_dir = dir_.path();
    options_.partitions = kPartitions;
    options_.embedded_env_for_test = env_.get();
    Reopen();
  }

  void Reopen() {
    log_.reset();
    auto log = OpenEventLog(options_);
    ASSERT_TRUE(log.has_value()) << log.error().ToString();
    log_ = std::move(*log);
  }

  // Appends `events`, which must be acknowledged, and remembers where they went.
  void AppendAcked(uint32_t partition, const std::vector<Event>& events) {
    auto offsets = log_->Append(partition, events);
    ASSERT_TRUE(offsets.has_value()) << offsets.error().ToString();
    ASSERT_EQ(offsets->size(), events.size());
    for (size_t i = 0; i < events.size(); ++i) {
      acked_[partition].push_back(events[i]);
      ASSERT_EQ((*offsets)[i], acked_[partition].size() - 1) << "offsets are dense from 0";
    }
  }

  // Appends `events`, which must be refused because the log is latched.
  void ExpectLatched(uint32_t partition, const std::vector<Event>& events,
                     const std::string& reason) {
    auto r = log_->Append(partition, events);
    ASSERT_FALSE(r.has_value()) << "a latched log acknowledged an append";
    EXPECT_EQ(r.error().code, codes::kLogLatched) << r.error().ToString();
    EXPECT_EQ(r.error().message, reason);
  }

  std::vector<LogRecord> ReadAll(uint32_t partition) {
    auto records = log_->Read(partition, 0, 1000);
    EXPECT_TRUE(records.has_value()) << records.error().ToString();
    return records.value_or(std::vector<LogRecord>{});
  }

  // The log reads exactly the acknowledged events of `partition`, at their offsets.
  void ExpectOnlyAcked(uint32_t partition) {
    EXPECT_EQ(log_->EndOffset(partition).value(), acked_[partition].size());
    std::vector<LogRecord> records = ReadAll(partition);
    ASSERT_EQ(records.size(), acked_[partition].size());
    for (size_t i = 0; i < records.size(); ++i) {
      EXPECT_EQ(records[i].offset, i);
      EXPECT_EQ(records[i].event, acked_[partition][i]);
    }
  }

  std::shared_ptr<FaultFs> fs_ = std::make_shared<FaultFs>();
  std::unique_ptr<rocksdb::Env> env_ = rocksdb::NewCompositeEnv(fs_);  // outlives log_
  runlog::testing::TempDir dir_;
  LogOptions options_;
  std::unique_ptr<EventLog> log_;
  std::vector<Event> acked_[kPartitions];  // per partition, offset = index
};

TEST_P(EmbeddedFault, LatchesWithARetryableErrorAndLosesNothingAcknowledged) {
  const Fault fault = GetParam();
  const std::string a0 = AggregateOn(0, kPartitions);
  const std::string a1 = AggregateOn(1, kPartitions);

  // Acknowledged before the fault, through the same filesystem.
  const std::vector<Event> two = {TestEvent(a1, 1), TestEvent(a1, 2)};
  ASSERT_NO_FATAL_FAILURE(AppendAcked(1, two));
  ASSERT_NO_FATAL_FAILURE(AppendAcked(0, {TestEvent(a0, 1)}));
  ASSERT_NO_FATAL_FAILURE(AppendAcked(1, {TestEvent(a1, 3)}));
  ASSERT_NO_FATAL_FAILURE(AppendAcked(1, {TestEvent(a1, 4)}));
  ASSERT_EQ(fs_->injected(), 0);

  // The disk fails under a burst of appends: the first of them is in the
  // group that meets the fault; the rest join it or queue behind it. Not one
  // may be acknowledged.
  fs_->Inject(fault);
  std::vector<std::vector<Event>> attempted;
  for (uint64_t seq = 5; seq < 13; seq += 2) {
    attempted.push_back({TestEvent(a1, seq), TestEvent(a1, seq + 1)});
  }
  std::vector<std::promise<Result<std::vector<uint64_t>>>> answers(attempted.size());
  for (size_t i = 0; i < attempted.size(); ++i) {
    auto appended =
        log_->AppendAsync(1, attempted[i], [&answer = answers[i]](Result<std::vector<uint64_t>> r) {
          answer.set_value(std::move(r));
        });
    if (!appended) answers[i].set_value(std::unexpected(appended.error()));  // refused at once
  }
  std::vector<Result<std::vector<uint64_t>>> results;
  for (auto& answer : answers) results.push_back(answer.get_future().get());
  EXPECT_GE(fs_->injected(), 1) << "the fault was never hit: is the WAL still named *.log?";

  ASSERT_FALSE(results[0].has_value())
      << "an append was acknowledged although its WAL " << FaultName(fault);
  const Error& first = results[0].error();
  EXPECT_EQ(first.code, codes::kLogLatched) << first.ToString();
  const std::string reason = first.message;
  EXPECT_NE(reason.find(dir_.path()), std::string::npos) << "names the log: " << reason;
  EXPECT_NE(reason.find(WhatFailed(fault)), std::string::npos) << "says what failed: " << reason;
  EXPECT_NE(reason.find("failed"), std::string::npos) << reason;
  EXPECT_NE(reason.find("reopen"), std::string::npos) << "says what now: " << reason;
  for (size_t i = 1; i < results.size(); ++i) {
    ASSERT_FALSE(results[i].has_value()) << "append " << i << " acknowledged after the fault";
    EXPECT_EQ(results[i].error().code, codes::kLogLatched) << results[i].error().ToString();
    EXPECT_EQ(results[i].error().message, reason);
  }

  // Latched: refused with the same answer, on any partition, while the disk
  // still fails and after it heals. Readers see only what was acknowledged.
  ExpectLatched(1, {TestEvent(a1, 20)}, reason);
  fs_->Inject(Fault::kNone);
  ExpectLatched(1, {TestEvent(a1, 21)}, reason);
  ExpectLatched(0, {TestEvent(a0, 2)}, reason);
  ExpectOnlyAcked(0);
  ExpectOnlyAcked(1);

  // Reopened on a plain filesystem: nothing acknowledged is lost.
  log_.reset();
  options_.embedded_env_for_test = nullptr;
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ExpectOnlyAcked(0);  // nothing was ever attempted there after the fault
  std::vector<LogRecord> records = ReadAll(1);
  ASSERT_GE(records.size(), acked_[1].size()) << "acknowledged events were lost";
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i].offset, i);
    if (i < acked_[1].size()) {
      EXPECT_EQ(records[i].event, acked_[1][i]) << "acknowledged event at offset " << i;
    }
  }
  // Past them: the unacknowledged batches whose outcome was unknown (a failed
  // sync may have left them in the page cache), whole and in the order they
  // were attempted, or nothing.
  std::vector<Event> attempted_in_order;
  for (const auto& batch : attempted) {
    attempted_in_order.insert(attempted_in_order.end(), batch.begin(), batch.end());
  }
  const size_t extra = records.size() - acked_[1].size();
  EXPECT_EQ(extra % 2, 0u) << "a batch landed in part";
  ASSERT_LE(extra, attempted_in_order.size());
  for (size_t i = 0; i < extra; ++i) {
    EXPECT_EQ(records[acked_[1].size() + i].event, attempted_in_order[i]) << "extra record " << i;
  }

  // Appends work again, right after what is there.
  auto offsets = log_->Append(1, std::vector<Event>{TestEvent(a1, 30)});
  ASSERT_TRUE(offsets.has_value()) << offsets.error().ToString();
  EXPECT_EQ(*offsets, std::vector<uint64_t>{records.size()});
  auto offsets0 = log_->Append(0, std::vector<Event>{TestEvent(a0, 3)});
  ASSERT_TRUE(offsets0.has_value()) << offsets0.error().ToString();
  EXPECT_EQ(*offsets0, std::vector<uint64_t>{acked_[0].size()});
  auto tail = log_->Read(1, records.size(), 10);
  ASSERT_TRUE(tail.has_value()) << tail.error().ToString();
  ASSERT_EQ(tail->size(), 1u);
  EXPECT_EQ((*tail)[0].event, TestEvent(a1, 30));
}

INSTANTIATE_TEST_SUITE_P(Faults, EmbeddedFault,
                         ::testing::Values(Fault::kSyncFails, Fault::kWriteFails, Fault::kDiskFull),
                         [](const ::testing::TestParamInfo<Fault>& info) {
                           return FaultName(info.param);
                         });

}  // namespace
}  // namespace runlog::events
