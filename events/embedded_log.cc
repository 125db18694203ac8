#include "events/embedded_log.h"

#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <filesystem>

#include "events/bytes.h"
#include "events/codec.h"
#include "events/local_store.h"

namespace runlog::events {
namespace {

constexpr char kPartitionsKey[] = "Mpartitions";
constexpr size_t kMaxGroupBytes = 8 << 20;

std::string_view ToView(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

}  // namespace

std::string EmbeddedLogKey(uint32_t partition, uint64_t offset) {
  std::string key(1, 'L');
  PutBigEndian(key, partition, 4);
  PutBigEndian(key, offset, 8);
  return key;
}

Result<std::unique_ptr<EmbeddedLog>> EmbeddedLog::Open(const LogOptions& options) {
  if (options.partitions == 0 || options.partitions > 4096) {
    return Fail(codes::kInvalidArgument, "partitions must be between 1 and 4096");
  }
  const std::string dir = (std::filesystem::path(options.data_dir) / "log").string();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Fail(codes::kUnavailable, "cannot create data directory " + dir + ": " + ec.message());
  }
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.use_fsync = false;  // fdatasync
  db_options.write_buffer_size = 64 << 20;
  ApplyStoreLimits(db_options);
  // Flushes and compactions write back 1 MB at a time instead of in one burst
  // at the end of a file, which would stall the WAL's fdatasync behind it.
  db_options.bytes_per_sync = 1 << 20;
  db_options.max_background_jobs = 2;
  db_options.keep_log_file_num = 3;
  db_options.info_log_level = rocksdb::WARN_LEVEL;
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  // A partition's records arrive in offset order: remembering where the last
  // key of each partition ('L' + partition) went makes the next insert into
  // the memtable nearly free instead of a search from the top.
  db_options.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(5));
  // Tests only: a fault-injecting filesystem under the log.
  if (options.embedded_env_for_test != nullptr) db_options.env = options.embedded_env_for_test;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir, &raw);
  if (!s.ok()) return Fail(codes::kUnavailable, "cannot open log at " + dir + ": " + s.ToString());
  std::unique_ptr<rocksdb::DB> db(raw);

  std::string stored;
  s = db->Get(rocksdb::ReadOptions(), kPartitionsKey, &stored);
  if (s.IsNotFound()) {
    rocksdb::WriteOptions sync;
    sync.sync = true;
    s = db->Put(sync, kPartitionsKey, std::to_string(options.partitions));
    if (!s.ok())
      return Fail(codes::kUnavailable, "cannot write to log at " + dir + ": " + s.ToString());
  } else if (!s.ok()) {
    return Fail(codes::kUnavailable, "cannot read log at " + dir + ": " + s.ToString());
  } else if (stored != std::to_string(options.partitions)) {
    return Fail(codes::kFailedPrecondition,
                "log at " + dir + " has " + stored + " partitions, not " +
                    std::to_string(options.partitions) + "; start with --partitions " + stored);
  }

  // Recover each partition's end and chain from its last record.
  std::vector<uint64_t> ends(options.partitions, 0);
  std::vector<std::string> chain(options.partitions, std::string(kNoPrev));
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (uint32_t p = 0; p < options.partitions; ++p) {
    it->SeekForPrev(EmbeddedLogKey(p, UINT64_MAX));
    if (it->Valid() && it->key().size() == 13 && it->key()[0] == 'L' &&
        GetBigEndian(std::string_view(it->key().data() + 1, 4)) == p) {
      ends[p] = GetBigEndian(std::string_view(it->key().data() + 5, 8)) + 1;
      chain[p] = RecordHash(ToView(it->value()));
    }
  }
  if (!it->status().ok()) {
    return Fail(codes::kLogCorrupt, "cannot scan log at " + dir + ": " + it->status().ToString());
  }
  it.reset();
  return std::unique_ptr<EmbeddedLog>(new EmbeddedLog(std::move(db), dir, options.partitions,
                                                      std::move(ends), std::move(chain),
                                                      options.unsafe_ack_before_write_for_test));
}

EmbeddedLog::EmbeddedLog(std::unique_ptr<rocksdb::DB> db, std::string dir, uint32_t partitions,
                         std::vector<uint64_t> ends, std::vector<std::string> chain,
                         bool ack_before_write)
    : db_(std::move(db)),
      dir_(std::move(dir)),
      partitions_(partitions),
      ack_before_write_(ack_before_write),
      next_offset_(ends),
      last_hash_(std::move(chain)),
      appended_cv_(new std::condition_variable[partitions]),
      end_offset_(std::move(ends)) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "rl-log");
    Loop();
  });
}

EmbeddedLog::~EmbeddedLog() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  for (uint32_t p = 0; p < partitions_; ++p) appended_cv_[p].notify_all();
  appended_any_cv_.notify_all();
  thread_.join();  // writes and syncs what is queued, then ends
}

Status EmbeddedLog::AppendAsync(uint32_t partition, std::span<const Event> events,
                                AppendCallback done) {
  if (auto s = ValidateAppend(partition, partitions_, events); !s) return s;
  Request req{partition, {}, std::move(done)};
  req.records.reserve(events.size());
  for (const Event& e : events) req.records.push_back(EncodeEvent(e));
  std::unique_lock lock(mu_);
  if (stopping_) return Fail(codes::kUnavailable, "log is closing");
  if (latched_) return Fail(codes::kLogLatched, latch_reason_);
  queue_.push_back(std::move(req));
  lock.unlock();
  queue_cv_.notify_one();
  return {};
}

void EmbeddedLog::Latch(const rocksdb::Status& status, const char* what) {
  if (latched_) return;
  latched_ = true;
  latch_reason_ = std::string(what) + " to " + dir_ + " failed (" + status.ToString() +
                  "); the log refuses appends until it is reopened";
}

void EmbeddedLog::Loop() {
  rocksdb::WriteOptions sync;
  sync.sync = true;
  while (true) {
    std::vector<Request> group;
    bool latched;
    {
      std::unique_lock lock(mu_);
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      size_t bytes = 0;
      while (!queue_.empty() && bytes < kMaxGroupBytes) {
        for (const auto& r : queue_.front().records) bytes += r.size();
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      latched = latched_;
    }
    rocksdb::WriteBatch batch;
    std::vector<std::vector<uint64_t>> offsets(group.size());
    for (size_t i = 0; i < group.size(); ++i) {
      const uint32_t p = group[i].partition;
      for (std::string& record : group[i].records) {
        const uint64_t offset = next_offset_[p]++;
        offsets[i].push_back(offset);
        SetPrev(record, last_hash_[p]);  // the record's place is fixed now: chain it
        last_hash_[p] = RecordHash(record);
        batch.Put(EmbeddedLogKey(p, offset), record);
      }
    }
    if (ack_before_write_) {  // deliberately unsafe, for the crash test's self-check
      for (size_t i = 0; i < group.size(); ++i) group[i].done(offsets[i]);
    }
    // One write and one fdatasync for the whole group.
    rocksdb::Status s = latched ? rocksdb::Status::OK() : db_->Write(sync, &batch);
    std::string failure;
    std::vector<uint32_t> touched;
    {
      std::lock_guard lock(mu_);
      if (!s.ok()) Latch(s, "log write and sync");
      if (latched || !s.ok()) {
        failure = latch_reason_;
      } else {
        for (size_t i = 0; i < group.size(); ++i) {
          end_offset_[group[i].partition] = offsets[i].back() + 1;
          touched.push_back(group[i].partition);
        }
      }
    }
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (uint32_t p : touched) appended_cv_[p].notify_all();
    if (!touched.empty()) appended_any_cv_.notify_all();
    if (ack_before_write_) continue;
    for (size_t i = 0; i < group.size(); ++i) {
      if (failure.empty()) {
        group[i].done(std::move(offsets[i]));
      } else {
        group[i].done(Fail(codes::kLogLatched, failure));
      }
    }
  }
}

Result<uint64_t> EmbeddedLog::EndOffset(uint32_t partition) {
  if (partition >= partitions_) return Fail(codes::kInvalidArgument, "no such partition");
  std::lock_guard lock(mu_);
  return end_offset_[partition];
}

Result<std::vector<LogRecord>> EmbeddedLog::Read(uint32_t partition, uint64_t from,
                                                 size_t max_records) {
  auto end = EndOffset(partition);
  if (!end) return std::unexpected(end.error());
  std::vector<LogRecord> out;
  if (from >= *end || max_records == 0) return out;
  const uint64_t stop = from + std::min<uint64_t>(max_records, *end - from);
  const std::string upper = EmbeddedLogKey(partition, stop);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  ro.verify_checksums = true;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  out.reserve(stop - from);
  uint64_t expected = from;
  for (it->Seek(EmbeddedLogKey(partition, from)); it->Valid(); it->Next(), ++expected) {
    uint64_t offset = GetBigEndian(std::string_view(it->key().data() + 5, 8));
    if (offset != expected) return CorruptRecord(partition, expected, "record missing");
    auto record = DecodeRecord(partition, offset, ToView(it->value()));
    if (!record) return CorruptRecord(partition, offset, record.error().message);
    out.push_back(std::move(*record));
  }
  if (!it->status().ok()) return CorruptRecord(partition, expected, it->status().ToString());
  if (expected != stop) return CorruptRecord(partition, expected, "record missing");
  return out;
}

Result<std::vector<EventLog::RawRecord>> EmbeddedLog::ReadRaw(uint32_t partition, uint64_t from,
                                                              size_t max_records) {
  auto end = EndOffset(partition);
  if (!end) return std::unexpected(end.error());
  std::vector<RawRecord> out;
  if (from >= *end || max_records == 0) return out;
  const std::string upper = EmbeddedLogKey(partition, *end);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  // RocksDB's block checksums would fail a whole block for one bad byte; the
  // record's own checksum and the chain name the record instead.
  ro.verify_checksums = false;
  ro.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  for (it->Seek(EmbeddedLogKey(partition, from)); it->Valid() && out.size() < max_records;
       it->Next()) {
    if (it->key().size() != 13) continue;
    out.push_back({GetBigEndian(ToView(it->key()).substr(5, 8)), std::string(ToView(it->value()))});
  }
  // What was read before unreadable storage is returned; the next call,
  // starting there, gets the error.
  if (!it->status().ok() && out.empty()) {
    return CorruptRecord(partition, from, "unreadable storage: " + it->status().ToString());
  }
  return out;
}

Result<std::vector<LogRecord>> EmbeddedLog::Tail(uint32_t partition, uint64_t from,
                                                 size_t max_records,
                                                 std::chrono::milliseconds wait) {
  if (partition >= partitions_) return Fail(codes::kInvalidArgument, "no such partition");
  {
    std::unique_lock lock(mu_);
    appended_cv_[partition].wait_for(lock, wait,
                                     [&] { return stopping_ || end_offset_[partition] > from; });
  }
  return Read(partition, from, max_records);
}

void EmbeddedLog::WaitAny(std::span<const uint64_t> from, std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  appended_any_cv_.wait_for(lock, wait, [&] {
    if (stopping_) return true;
    for (uint32_t p = 0; p < partitions_ && p < from.size(); ++p) {
      if (end_offset_[p] > from[p]) return true;
    }
    return false;
  });
}

}  // namespace runlog::events
