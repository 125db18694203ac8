// The stores' shared limits hold however many tables a store has: a store
// with more tables than its cap keeps at most the cap open, and still reads
// every key.

#include "events/local_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/testing/temp_dir.h"

namespace runlog::events {
namespace {

// Table files of `dir` this process has open now.
int OpenTablesIn(const std::string& dir) {
  int open = 0;
  for (const auto& fd : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const std::filesystem::path target = std::filesystem::read_symlink(fd.path(), ec);
    if (!ec && target.parent_path() == dir && target.extension() == ".sst") ++open;
  }
  return open;
}

int TablesIn(const std::string& dir) {
  int tables = 0;
  for (const auto& file : std::filesystem::directory_iterator(dir)) {
    if (file.path().extension() == ".sst") ++tables;
  }
  return tables;
}

TEST(LocalStore, KeepsAtMostItsCapOfTablesOpenAndReadsThemAll) {
  runlog::testing::TempDir dir;
  const std::string path = std::filesystem::canonical(dir.path()).string() + "/store";
  auto db = OpenLocalStore(path, [](rocksdb::Options& o) { o.disable_auto_compactions = true; });
  ASSERT_TRUE(db.has_value()) << db.error().message;
  constexpr int kTables = 40;
  for (int i = 0; i < kTables; ++i) {
    ASSERT_TRUE((*db)->Put({}, "key" + std::to_string(i), std::string(1000, 'a' + i % 26)).ok());
    ASSERT_TRUE((*db)->Flush({}).ok());
  }
  ASSERT_EQ(TablesIn(path), kTables);
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < kTables; ++i) {
      std::string value;
      ASSERT_TRUE((*db)->Get({}, "key" + std::to_string(i), &value).ok()) << i;
      EXPECT_EQ(value, std::string(1000, 'a' + i % 26));
    }
  }
  // RocksDB keeps 10 of a store's max_open_files for its other files.
  EXPECT_LE(OpenTablesIn(path), StoreLimits::kOpenFiles - 10);
  EXPECT_GT(OpenTablesIn(path), 0);
  // The blocks read are in the shared cache, which says so.
  EXPECT_GT(ProcessStoreMemory().block_cache_bytes, 0u);
}

}  // namespace
}  // namespace runlog::events
