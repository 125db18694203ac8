#include "services/content_store.h"

#include "events/local_store.h"
#include "events/sha256.h"

namespace runlog::services {

Result<std::unique_ptr<ContentStore>> ContentStore::Open(const std::string& data_dir) {
  auto db = events::OpenLocalStore(data_dir + "/content", [](rocksdb::Options& o) {
    o.enable_blob_files = true;
    o.min_blob_size = 4096;  // smaller values stay in the LSM tree
    o.enable_blob_garbage_collection = true;
  });
  if (!db) return std::unexpected(db.error());
  return std::unique_ptr<ContentStore>(new ContentStore(std::move(*db)));
}

Result<std::string> ContentStore::Put(std::string_view bytes) {
  std::string digest = events::Sha256Hex(bytes);
  std::string existing;
  if (db_->Get(rocksdb::ReadOptions(), digest, &existing).ok()) return digest;
  rocksdb::WriteOptions sync;
  sync.sync = true;
  rocksdb::Status s = db_->Put(sync, digest, rocksdb::Slice(bytes.data(), bytes.size()));
  if (!s.ok()) return Fail(codes::kUnavailable, "cannot store content: " + s.ToString());
  return digest;
}

Result<std::string> ContentStore::Get(const std::string& digest) const {
  std::string bytes;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), digest, &bytes);
  if (s.IsNotFound()) return Fail(codes::kNotFound, "no content " + digest);
  if (!s.ok()) return Fail(codes::kUnavailable, "cannot read content: " + s.ToString());
  return bytes;
}

}  // namespace runlog::services
