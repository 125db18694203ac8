#include "services/writer/snapshot_store.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <cstdio>
#include <filesystem>

#include "events/local_store.h"

namespace runlog::services {
namespace {

// Keys: "p" + partition as 8 hex digits + "/" + "m" (the meta entry) or
// "e" + the entry's key. Entries of a partition sort together, after its meta.
std::string Prefix(uint32_t partition) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "p%08x/", partition);
  return buf;
}

std::string Meta(uint64_t offset) {
  return "{\"offset\":" + std::to_string(offset) +
         ",\"version\":" + std::to_string(SnapshotStore::kVersion) + "}";
}

// The offset of a meta entry, or -1 if it is not of this version.
int64_t ParseMeta(const std::string& meta) {
  unsigned long long offset = 0;
  int version = 0;
  if (std::sscanf(meta.c_str(), "{\"offset\":%llu,\"version\":%d}", &offset, &version) != 2 ||
      version != SnapshotStore::kVersion) {
    return -1;
  }
  return static_cast<int64_t>(offset);
}

std::unexpected<Error> Storage(const std::string& dir, const rocksdb::Status& s) {
  return Fail(codes::kUnavailable, "writer snapshots at " + dir + ": " + s.ToString());
}

}  // namespace

SnapshotStore::SnapshotStore(std::unique_ptr<rocksdb::DB> db, std::string dir)
    : db_(std::move(db)), dir_(std::move(dir)) {}

SnapshotStore::~SnapshotStore() = default;

Result<std::unique_ptr<SnapshotStore>> SnapshotStore::Open(const std::string& data_dir) {
  const std::string dir = (std::filesystem::path(data_dir) / "writers").string();
  auto db = events::OpenLocalStore(dir, [](rocksdb::Options& o) { o.paranoid_checks = true; });
  if (!db) return std::unexpected(db.error());
  return std::unique_ptr<SnapshotStore>(new SnapshotStore(std::move(*db), dir));
}

Status SnapshotStore::Write(const Checkpoint& cp) {
  const std::string prefix = Prefix(cp.partition);
  rocksdb::WriteBatch batch;
  for (const std::string& key : cp.deletes) batch.Delete(prefix + "e" + key);
  for (const auto& [key, value] : cp.puts) batch.Put(prefix + "e" + key, value);
  batch.Put(prefix + "m", Meta(cp.offset));
  // Not synced: a checkpoint lost to a power cut costs a longer read of the
  // log, never data; the batch is atomic either way.
  rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), &batch);
  if (!s.ok()) return Storage(dir_, s);
  return {};
}

Result<uint64_t> SnapshotStore::Read(uint32_t partition, const EntryFn& each,
                                     std::string_view skip) {
  const std::string prefix = Prefix(partition);
  rocksdb::ReadOptions options;
  options.verify_checksums = true;
  std::string meta;
  rocksdb::Status s = db_->Get(options, prefix + "m", &meta);
  if (s.IsNotFound()) return Fail(codes::kNotFound, "no snapshot");
  if (!s.ok()) return Storage(dir_, s);
  const int64_t offset = ParseMeta(meta);
  if (offset < 0) return Fail(codes::kFailedPrecondition, "a snapshot of another version");
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options));
  const std::string first = prefix + "e";
  // Past the skipped entries: the first key after every key starting with `skip`.
  std::string past = first + std::string(skip);
  if (!skip.empty()) past.back() = static_cast<char>(past.back() + 1);
  for (it->Seek(first); it->Valid() && it->key().starts_with(first); it->Next()) {
    std::string_view key(it->key().data() + first.size(), it->key().size() - first.size());
    if (!skip.empty() && key.starts_with(skip)) {
      it->Seek(past);
      if (!it->Valid() || !it->key().starts_with(first)) break;
      key = std::string_view(it->key().data() + first.size(), it->key().size() - first.size());
    }
    if (auto r = each(key, std::string_view(it->value().data(), it->value().size())); !r) {
      return std::unexpected(r.error());
    }
  }
  if (!it->status().ok()) return Storage(dir_, it->status());
  return static_cast<uint64_t>(offset);
}

Result<std::string> SnapshotStore::Get(uint32_t partition, std::string_view key) {
  rocksdb::ReadOptions options;
  options.verify_checksums = true;
  std::string value;
  rocksdb::Status s = db_->Get(options, Prefix(partition) + "e" + std::string(key), &value);
  if (s.IsNotFound()) return Fail(codes::kNotFound, "no checkpoint entry " + std::string(key));
  if (!s.ok()) return Storage(dir_, s);
  return value;
}

Status SnapshotStore::Drop(uint32_t partition) {
  const std::string prefix = Prefix(partition);
  std::string end = prefix;
  end.back() = '0';  // '/' + 1
  rocksdb::WriteBatch batch;
  batch.DeleteRange(rocksdb::Slice(prefix), rocksdb::Slice(end));
  rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), &batch);
  if (!s.ok()) return Storage(dir_, s);
  return {};
}

}  // namespace runlog::services
