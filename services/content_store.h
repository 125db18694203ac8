#pragma once
// ContentStore: the bytes of artifacts, stored once by their SHA-256 in a
// RocksDB of their own (`<data>/content`) with BlobDB on, so that large
// values live in blob files and the LSM tree holds only keys and small
// values (docs/decisions/0020-artifact-content-store.md). The log carries
// an artifact's digest, size and type, never its bytes.
//
// Thread contract: thread-safe (RocksDB is).

#include <rocksdb/db.h>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "infra/base/result.h"

namespace runlog::services {

class ContentStore {
 public:
  [[nodiscard]] static Result<std::unique_ptr<ContentStore>> Open(const std::string& data_dir);

  // Stores `bytes` (synced: the event that names it follows) and returns
  // their digest, lowercase hex SHA-256. Storing the same bytes again is a no-op.
  [[nodiscard]] Result<std::string> Put(std::string_view bytes);
  // The same for several, with one synced write; their digests in order.
  [[nodiscard]] Result<std::vector<std::string>> PutAll(const std::vector<std::string>& contents);
  // The bytes of `digest`; NOT_FOUND if none.
  [[nodiscard]] Result<std::string> Get(const std::string& digest) const;
  // One artifact naming `digest` is gone (deleted or expired): the bytes
  // are deleted once no artifact names them. Every Put/PutAll of the bytes
  // counts as one artifact naming them; bytes stored before counting began
  // are kept.
  void Release(const std::string& digest);

 private:
  explicit ContentStore(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}
  std::unique_ptr<rocksdb::DB> db_;
  std::mutex mu_;  // orders the read-modify-writes of the counts
};

}  // namespace runlog::services
