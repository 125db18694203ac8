#pragma once
// The RocksDB settings of runlog's local stores beside the log (the views,
// the writers' checkpoints): they hold nothing the log does not, so they are
// tuned to stay out of the log's way, not for durability.

#include <rocksdb/db.h>

#include <functional>
#include <memory>
#include <string>

#include "infra/base/result.h"

namespace runlog::events {

// Opens (creating if needed) a local store in `dir`, with `tune` applied to
// the shared settings: warnings only in its LOG, 2 background jobs, and
// flushes and compactions written back 1 MB at a time instead of in one
// burst at the end of a file, which stalled the log's fdatasync on the same
// disk. UNAVAILABLE with the reason if it cannot.
[[nodiscard]] Result<std::unique_ptr<rocksdb::DB>> OpenLocalStore(
    const std::string& dir, const std::function<void(rocksdb::Options&)>& tune = nullptr);

}  // namespace runlog::events
