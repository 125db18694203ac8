#pragma once
// The views: RocksDB in DATA/views, materialised from the log and nothing else
// (docs/decisions/0004-views.md). Keys:
//   v                                  -> the layout's version (kFormat); views of
//                                         another layout are dropped at Open and
//                                         rebuilt from the log
//   o <partition>                      -> next log offset to apply (decimal)
//   t <task id>                        -> its events' log positions (length
//                                         u32 LE, then partition u32 LE and each
//                                         offset u64 LE), then the task
//                                         (events::TaskToJson)
//   i <tenant> NUL <dim> … <newest-first time> NUL <task id> -> "" (listing indexes;
//      dim: "a" all, "s" status, "y" type, "x" status+type)
// Applying a batch of records writes the view changes and the partition's next
// offset in one WriteBatch, so a crash never applies a record twice or skips
// one. Writes skip RocksDB's WAL (docs/decisions/0004-views.md): after a crash
// the views fall back to their last flushed, consistent state and catch up
// from the log.
//
// Thread contract: Apply for one partition from one thread at a time (records
// of different partitions touch different tasks); reads from any thread.

#include <rocksdb/db.h>

#include <array>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "events/checkpoint.h"
#include "events/event.h"
#include "events/event_log.h"
#include "events/merkle.h"
#include "events/task.h"
#include "infra/base/result.h"

namespace runlog::projections {

struct ListQuery {
  std::string tenant_id;
  std::vector<std::string> statuses;  // any of these; empty: any
  std::string type;                   // empty: any
  size_t limit = 50;
  std::string cursor;             // from a previous page, or empty
  std::string agent_id;           // empty: any (not indexed: see max_examined)
  int64_t created_after_ms = 0;   // created at or after; 0: no bound
  int64_t created_before_ms = 0;  // created before; 0: no bound
  // With agent_id, at most this many tasks are read for one page: the page
  // may then hold fewer than `limit` and still have a next_cursor.
  size_t max_examined = 5000;
};

// What tasks used, summed over a usage row's tasks (docs/tenancy.md).
struct UsageCounters {
  int64_t tasks_created = 0, tasks_succeeded = 0, tasks_failed = 0, tasks_cancelled = 0;
  int64_t steps = 0, tokens = 0, step_ms = 0, sandbox_ms = 0;
  int64_t input_tokens = 0, output_tokens = 0, sandbox_cpu_ms = 0, cost_nanos = 0;

  static constexpr size_t kFields = 12;
  std::array<int64_t, kFields> Fields() const {
    return {tasks_created, tasks_succeeded, tasks_failed,   tasks_cancelled,
            steps,         tokens,          step_ms,        sandbox_ms,
            input_tokens,  output_tokens,   sandbox_cpu_ms, cost_nanos};
  }
  std::array<int64_t*, kFields> MutableFields() {
    return {&tasks_created, &tasks_succeeded, &tasks_failed,   &tasks_cancelled,
            &steps,         &tokens,          &step_ms,        &sandbox_ms,
            &input_tokens,  &output_tokens,   &sandbox_cpu_ms, &cost_nanos};
  }
  void Add(const UsageCounters& o) {
    auto mine = MutableFields();
    auto theirs = o.Fields();
    for (size_t i = 0; i < mine.size(); ++i) *mine[i] += theirs[i];
  }
  bool operator==(const UsageCounters&) const = default;
};

// One row of the usage view: a day (UTC), a task type and an agent, in one
// partition (a reader sums the partitions' rows).
struct UsageRow {
  std::string day;  // YYYY-MM-DD
  std::string type, agent;
  UsageCounters counters;
};

// An artifact (or output) as its view row holds it; the bytes are in the
// content store under `digest`.
struct Artifact {
  std::string id, task_id, type, digest, content_type;  // task_id empty for outputs
  int64_t size = 0;
  int64_t created_at_ms = 0;
  // Of a type that requires approval: "pending" (until approval_expires_at_ms),
  // "approved" or "rejected"; empty otherwise.
  std::string approval_status;
  int64_t approval_expires_at_ms = 0;
  std::string decided_by, comment;
  int64_t decided_at_ms = 0;
};

struct ListPage {
  std::vector<events::Task> tasks;
  std::string next_cursor;  // empty on the last page
};

class Views {
 public:
  // Opens (creating) DATA_DIR/views.
  [[nodiscard]] static Result<std::unique_ptr<Views>> Open(const std::string& data_dir);
  // Deletes DATA_DIR/views.
  [[nodiscard]] static Status Destroy(const std::string& data_dir);

  [[nodiscard]] Result<uint64_t> NextOffset(uint32_t partition);
  // Called for each task event applied, with the task after it (for metrics).
  using Observer = std::function<void(const events::Event&, const events::Task&)>;
  // Applies consecutive records of one partition, starting at NextOffset.
  [[nodiscard]] Status Apply(uint32_t partition, const std::vector<events::LogRecord>& records,
                             const Observer& observer = nullptr);

  // The task, if it exists and belongs to `tenant_id` (empty: any tenant).
  [[nodiscard]] Result<std::optional<events::Task>> GetTask(const std::string& task_id,
                                                            const std::string& tenant_id);
  // The task's events, read back from the log at the positions the view keeps;
  // none when there is no such task (of `tenant_id`, when given). With `task`,
  // also the task as of those events (one read of the view, so the two agree).
  [[nodiscard]] Result<std::vector<events::LogRecord>> Trace(const std::string& task_id,
                                                             events::EventLog& log,
                                                             events::Task* task = nullptr,
                                                             const std::string& tenant_id = "");
  [[nodiscard]] Result<ListPage> List(const ListQuery& query);
  // How many tasks List would give for `query` with every status named (no paging).
  [[nodiscard]] Result<int64_t> CountListed(const ListQuery& query);
  // The artifact `id` of `tenant`, or none.
  [[nodiscard]] Result<std::optional<Artifact>> GetArtifact(const std::string& tenant,
                                                            const std::string& id);
  // `tenant`'s artifacts in id order (ids are time-sortable), of `task_id`
  // and `type` if given, that `keep` keeps (if given), up to `limit`.
  [[nodiscard]] Result<std::vector<Artifact>> ListArtifacts(
      const std::string& tenant, const std::string& task_id, const std::string& type, size_t limit,
      const std::function<bool(const Artifact&)>& keep = {});
  // Artifacts whose creation is before `cutoff_of(tenant)` (0: none of
  // that tenant's), oldest first within a tenant, at most `limit`.
  [[nodiscard]] Result<std::vector<std::pair<std::string, Artifact>>> ArtifactsOlderThan(
      const std::function<int64_t(const std::string& tenant)>& cutoff_of, size_t limit);
  // A webhook's deliveries (JSON rows: docs/webhooks.md), at most kMaxRows, in id order.
  static constexpr size_t kMaxRows = 10'000;
  [[nodiscard]] Result<std::vector<std::string>> ListDeliveries(const std::string& tenant,
                                                                const std::string& webhook_id);
  [[nodiscard]] Result<std::optional<std::string>> GetDelivery(const std::string& tenant,
                                                               const std::string& webhook_id,
                                                               const std::string& delivery_id);
  // A trigger's fires (JSON rows), at most kMaxRows, in fire id order.
  [[nodiscard]] Result<std::vector<std::string>> ListFires(const std::string& tenant,
                                                           const std::string& trigger_id);
  // The latest scheduled time (ms) a schedule trigger fired for; 0 if none.
  [[nodiscard]] Result<int64_t> LastScheduledFire(const std::string& tenant,
                                                  const std::string& trigger_id);
  // The usage rows of `tenant` for the days from `from_day` to `to_day`
  // (YYYY-MM-DD, both included), in day order.
  [[nodiscard]] Result<std::vector<UsageRow>> Usage(const std::string& tenant,
                                                    const std::string& from_day,
                                                    const std::string& to_day);

  // Each partition's Merkle tree (events/merkle.h, docs/receipts.md), grown
  // by Apply in the same batches: 'T' partition level index -> the hash of
  // that complete subtree (a leaf's followed by its record's offset, u64 BE),
  // 'N' partition -> the tree's size (both u32/u64 BE).
  [[nodiscard]] Result<events::PartitionHead> TreeHead(uint32_t partition);
  // The signed checkpoint (its note) of `total` records, or the newest; none if none.
  // 'C' total (u64 BE) -> the note, from the log's checkpoint.signed records.
  [[nodiscard]] Result<std::optional<std::string>> Checkpoint(
      std::optional<uint64_t> total = std::nullopt);
  [[nodiscard]] Result<std::string> TreeNode(uint32_t partition, int level, uint64_t index);
  // The index of the leaf of the record at `offset` among the first `size`, if any.
  [[nodiscard]] Result<std::optional<uint64_t>> LeafOf(uint32_t partition, uint64_t offset,
                                                       uint64_t size);

  // Every key and value, in order: for comparing two views byte for byte.
  [[nodiscard]] Result<std::vector<std::pair<std::string, std::string>>> Dump();

 private:
  // Every value under `prefix`, at most kMaxRows.
  [[nodiscard]] Result<std::vector<std::string>> Rows(const std::string& prefix);
  // A task as Apply keeps it: the task and its trace positions.
  struct Cached {
    events::Task task;
    std::string positions;
  };
  explicit Views(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}
  // The stored task, from a partition's write-through cache or the DB.
  // The stored positions and task of `id` (either may be null); false if none.
  [[nodiscard]] Result<bool> Read(const std::string& id, std::string* positions,
                                  events::Task* task);
  [[nodiscard]] Result<Cached> Load(std::unordered_map<std::string, Cached>& cache,
                                    const std::string& id);

  // A copy of the partition's tree as applied, loaded on first use.
  [[nodiscard]] Result<events::merkle::Frontier> Tree(uint32_t partition);

  const std::unique_ptr<rocksdb::DB> db_;
  std::mutex tree_mu_;
  std::unordered_map<uint32_t, events::merkle::Frontier> trees_;  // guarded by tree_mu_
  // Live tasks per partition, as last applied, so the events of one task's
  // life do not each re-read and re-parse it. Only Apply of that partition
  // touches it; it is emptied when full.
  static constexpr size_t kCachedTasksPerPartition = 16384;
  std::unordered_map<uint32_t, std::unordered_map<std::string, Cached>> cache_;
  std::mutex cache_mu_;  // guards cache_'s outer map only
};

}  // namespace runlog::projections
