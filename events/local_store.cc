#include "events/local_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/table.h>
#include <rocksdb/write_buffer_manager.h>

#include <filesystem>

namespace runlog::events {
namespace {

struct SharedBudget {
  std::shared_ptr<rocksdb::Cache> cache = rocksdb::NewLRUCache(StoreLimits::kBlockCacheBytes);
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffers =
      std::make_shared<rocksdb::WriteBufferManager>(StoreLimits::kWriteBuffersBytes);
};

SharedBudget& Budget() {
  static SharedBudget* budget = new SharedBudget();  // outlives every store
  return *budget;
}

}  // namespace

void ApplyStoreLimits(rocksdb::Options& options) {
  SharedBudget& budget = Budget();
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = budget.cache;
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  options.write_buffer_manager = budget.write_buffers;
  options.max_open_files = StoreLimits::kOpenFiles;
  // The table cache is split in 2^bits shards of capacity rounded up each:
  // RocksDB's 64 would let a cap of 10 keep 64 tables open.
  options.table_cache_numshardbits = 1;
}

StoreMemory ProcessStoreMemory() {
  SharedBudget& budget = Budget();
  return {budget.cache->GetUsage(), budget.write_buffers->memory_usage()};
}

Result<std::unique_ptr<rocksdb::DB>> OpenLocalStore(
    const std::string& dir, const std::function<void(rocksdb::Options&)>& tune) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Fail(codes::kUnavailable, "cannot create " + dir + ": " + ec.message());
  rocksdb::Options options;
  options.create_if_missing = true;
  options.info_log_level = rocksdb::WARN_LEVEL;
  options.keep_log_file_num = 3;
  options.max_background_jobs = 2;
  options.bytes_per_sync = 1 << 20;
  options.write_buffer_size = 16 << 20;
  ApplyStoreLimits(options);
  if (tune) tune(options);
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) return Fail(codes::kUnavailable, "cannot open " + dir + ": " + s.ToString());
  return std::unique_ptr<rocksdb::DB>(raw);
}

}  // namespace runlog::events
