#include "events/local_store.h"

#include <filesystem>

namespace runlog::events {

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
  if (tune) tune(options);
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) return Fail(codes::kUnavailable, "cannot open " + dir + ": " + s.ToString());
  return std::unique_ptr<rocksdb::DB>(raw);
}

}  // namespace runlog::events
