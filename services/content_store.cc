#include "services/content_store.h"

#include <rocksdb/write_batch.h>

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
  auto digests = PutAll({std::string(bytes)});
  if (!digests) return std::unexpected(digests.error());
  return std::move(digests->front());
}

Result<std::vector<std::string>> ContentStore::PutAll(const std::vector<std::string>& contents) {
  std::vector<std::string> digests;
  rocksdb::WriteBatch batch;
  for (const std::string& bytes : contents) {
    digests.push_back(events::Sha256Hex(bytes));
    // Stored already (the same bytes): nothing to write.
    std::string existing;
    if (db_->Get(rocksdb::ReadOptions(), digests.back(), &existing).ok()) continue;
    batch.Put(digests.back(), bytes);
  }
  if (batch.Count() == 0) return digests;
  rocksdb::WriteOptions sync;
  sync.sync = true;
  rocksdb::Status s = db_->Write(sync, &batch);
  if (!s.ok()) return Fail(codes::kUnavailable, "cannot store content: " + s.ToString());
  return digests;
}

Result<std::string> ContentStore::Get(const std::string& digest) const {
  std::string bytes;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), digest, &bytes);
  if (s.IsNotFound()) return Fail(codes::kNotFound, "no content " + digest);
  if (!s.ok()) return Fail(codes::kUnavailable, "cannot read content: " + s.ToString());
  return bytes;
}

}  // namespace runlog::services
