#pragma once
// The RocksDB settings shared by every store in the process: the log and the
// local stores beside it (the views, the writers' checkpoints, the dispatch
// queue, the content store). The local stores hold nothing the log does not,
// so they are tuned to stay out of the log's way, not for durability.

#include <rocksdb/db.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "infra/base/result.h"

namespace runlog::events {

// What every store in the process may hold, together or each, so that memory
// and open files stay flat however long the history grows (decision 0027).
struct StoreLimits {
  // One block cache for all stores (RocksDB gives each store its own 32 MB).
  static constexpr size_t kBlockCacheBytes = 64 << 20;
  // All stores' memtables together: past it the writing store flushes.
  static constexpr size_t kWriteBuffersBytes = 160 << 20;
  // Files a store keeps open: RocksDB's minimum, of which 10 are for its
  // tables (the rest for its WAL, manifest and LOG). Each open table holds
  // its index and filter in memory, so this bounds that memory too; older
  // tables are reopened when read.
  static constexpr int kOpenFiles = 20;
};

// Applies the shared block cache, the shared write-buffer budget and the cap
// of open files to `options`.
void ApplyStoreLimits(rocksdb::Options& options);

// What the shared budget holds now, for /metrics.
struct StoreMemory {
  uint64_t block_cache_bytes = 0;
  uint64_t memtable_bytes = 0;
};
[[nodiscard]] StoreMemory ProcessStoreMemory();

// Opens (creating if needed) a local store in `dir`, with `tune` applied to
// the shared settings: the store limits above, warnings only in its LOG, 2
// background jobs, and flushes and compactions written back 1 MB at a time
// instead of in one burst at the end of a file, which stalled the log's
// fdatasync on the same disk. UNAVAILABLE with the reason if it cannot.
[[nodiscard]] Result<std::unique_ptr<rocksdb::DB>> OpenLocalStore(
    const std::string& dir, const std::function<void(rocksdb::Options&)>& tune = nullptr);

}  // namespace runlog::events
