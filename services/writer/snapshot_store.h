#pragma once
// SnapshotStore: the partition writers' checkpoints, in a RocksDB of their
// own (DATA_DIR/writers), so that a restart loads each writer's state and
// reads only the log after the offset it covers, never the whole log.
//
// A partition's checkpoint is a set of entries (a live task, an ended task
// remembered, a key's or manifest's record) and the log offset they cover.
// It is also where the writer spills queued tasks (decision 0018): Get reads
// one entry back.
// Checkpoints are incremental: each one writes the entries changed since the
// last and deletes the ones gone, with the new offset, in one atomic write
// batch, so a crash in the middle of one leaves the previous checkpoint
// whole. Nothing here is the truth: the log is. A checkpoint that cannot be
// read is dropped and the writer reads the whole log instead.
//
// Thread contract: thread-safe (RocksDB's own).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "infra/base/result.h"

namespace rocksdb {
class DB;
}

namespace runlog::services {

class SnapshotStore {
 public:
  // Bumped when the entries' format changes; a checkpoint of another version
  // is dropped and the writer reads the whole log.
  static constexpr int kVersion = 3;

  [[nodiscard]] static Result<std::unique_ptr<SnapshotStore>> Open(const std::string& data_dir);
  ~SnapshotStore();

  struct Checkpoint {
    uint32_t partition = 0;
    uint64_t offset = 0;                                    // the log offset it covers (exclusive)
    std::vector<std::pair<std::string, std::string>> puts;  // entry key -> value
    std::vector<std::string> deletes;                       // entry keys
  };
  // Applies a checkpoint atomically.
  [[nodiscard]] Status Write(const Checkpoint& checkpoint);
  // Calls `each(key, value)` for every entry of `partition`'s checkpoint
  // except those whose key starts with `skip` (passed over unread: Get them
  // one by one), and returns the offset it covers: NOT_FOUND if there is
  // none, FAILED_PRECONDITION for another version, or the first error `each`
  // returns.
  using EntryFn = std::function<Status(std::string_view key, std::string_view value)>;
  [[nodiscard]] Result<uint64_t> Read(uint32_t partition, const EntryFn& each,
                                      std::string_view skip = {});
  // One entry of `partition`'s checkpoint; NOT_FOUND if it has none by that key.
  [[nodiscard]] Result<std::string> Get(uint32_t partition, std::string_view key);
  // Deletes `partition`'s checkpoint.
  [[nodiscard]] Status Drop(uint32_t partition);

 private:
  explicit SnapshotStore(std::unique_ptr<rocksdb::DB> db, std::string dir);
  std::unique_ptr<rocksdb::DB> db_;
  const std::string dir_;
};

}  // namespace runlog::services
