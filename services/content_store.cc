#include "services/content_store.h"

#include <rocksdb/write_batch.h>

#include <map>

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

namespace {
// How many artifacts name a digest: "#" + digest -> a decimal count.
std::string CountKey(const std::string& digest) { return "#" + digest; }
}  // namespace

Result<std::vector<std::string>> ContentStore::PutAll(const std::vector<std::string>& contents) {
  std::vector<std::string> digests;
  rocksdb::WriteBatch batch;
  std::lock_guard lock(mu_);
  std::map<std::string, int64_t> counts;  // this batch's, by digest
  for (const std::string& bytes : contents) {
    digests.push_back(events::Sha256Hex(bytes));
    const std::string& digest = digests.back();
    auto [count, fresh] = counts.emplace(digest, 0);
    if (fresh) {
      std::string text;
      if (db_->Get(rocksdb::ReadOptions(), CountKey(digest), &text).ok()) {
        count->second = std::atoll(text.c_str());
      } else if (db_->Get(rocksdb::ReadOptions(), digest, &text).ok()) {
        count->second = int64_t{1} << 40;  // stored before counting began: never freed
      } else {
        batch.Put(digest, bytes);
      }
    }
    ++count->second;
  }
  for (const auto& [digest, count] : counts) batch.Put(CountKey(digest), std::to_string(count));
  rocksdb::WriteOptions sync;
  sync.sync = true;
  rocksdb::Status s = db_->Write(sync, &batch);
  if (!s.ok()) return Fail(codes::kUnavailable, "cannot store content: " + s.ToString());
  return digests;
}

void ContentStore::Release(const std::string& digest) {
  std::lock_guard lock(mu_);
  std::string text;
  if (!db_->Get(rocksdb::ReadOptions(), CountKey(digest), &text).ok()) return;
  const int64_t left = std::atoll(text.c_str()) - 1;
  rocksdb::WriteBatch batch;
  if (left > 0) {
    batch.Put(CountKey(digest), std::to_string(left));
  } else {
    batch.Delete(CountKey(digest));
    batch.Delete(digest);  // a crash before this leaves the bytes: a leak, never a loss
  }
  (void)db_->Write(rocksdb::WriteOptions(), &batch);
}

Result<std::string> ContentStore::Get(const std::string& digest) const {
  std::string bytes;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), digest, &bytes);
  if (s.IsNotFound()) return Fail(codes::kNotFound, "no content " + digest);
  if (!s.ok()) return Fail(codes::kUnavailable, "cannot read content: " + s.ToString());
  return bytes;
}

}  // namespace runlog::services
