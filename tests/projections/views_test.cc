// Views built by the projector as commands flow, against views rebuilt from
// the log: byte for byte the same. Plus listing, filters, pagination, tenant
// isolation and traces.

#include "projections/views.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <future>
#include <thread>

#include "projections/projector.h"
#include "services/task_service.h"
#include "tests/testing/temp_dir.h"

namespace runlog::projections {
namespace {

using namespace std::chrono_literals;
using events::TaskStatus;
using services::CommandResult;

class ViewsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    events::LogOptions options;
    options.data_dir = dir_.path();
    options.partitions = 4;
    log_ = std::move(events::OpenEventLog(options).value());
    service_ = std::make_unique<services::TaskService>(
        services::TaskService::Options{log_.get(), &clock_, &ids_});
    ASSERT_TRUE(service_->Recover(nullptr).has_value());
    service_->Start();
    views_ = std::move(Views::Open(dir_.path()).value());
    projector_ = std::make_unique<Projector>(*log_, *views_);
    ASSERT_TRUE(projector_->CatchUp().has_value());
    projector_->Start();
  }
  void TearDown() override {
    projector_.reset();
    service_.reset();
  }

  template <typename F>
  CommandResult Call(F&& issue) {
    std::promise<Result<CommandResult>> promise;
    issue([&](Result<CommandResult> r) { promise.set_value(std::move(r)); });
    auto r = promise.get_future().get();
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return r.value_or(CommandResult{});
  }

  std::string Create(const std::string& tenant, const std::string& type,
                     const std::string& agent = "") {
    clock_.Advance(1);
    services::CreateTask c{{tenant, "k"}, "", type, agent, R"({"x":1})", "{}", ""};
    return Call([&](auto done) { service_->Create(c, done); }).task.id;
  }

  void WaitAllApplied() {
    for (uint32_t p = 0; p < 4; ++p)
      ASSERT_TRUE(projector_->WaitApplied(p, service_->AckedEnd(p), 5s));
  }

  std::vector<std::string> Ids(const ListPage& page) {
    std::vector<std::string> ids;
    for (auto& t : page.tasks) ids.push_back(t.id);
    return ids;
  }

  runlog::testing::TempDir dir_;
  infra::ManualClock clock_;
  infra::SequentialIds ids_;
  std::unique_ptr<events::EventLog> log_;
  std::unique_ptr<services::TaskService> service_;
  std::unique_ptr<Views> views_;
  std::unique_ptr<Projector> projector_;
};

TEST_F(ViewsTest, ReadYourWritesThroughTheProjector) {
  std::string id = Create("acct_a", "t");
  uint32_t p = service_->PartitionOf(id);
  ASSERT_TRUE(projector_->WaitApplied(p, service_->AckedEnd(p), 5s));
  auto task = views_->GetTask(id, "acct_a").value();
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(task->status, TaskStatus::kQueued);
  EXPECT_EQ(task->input, R"({"x":1})");
  EXPECT_FALSE(views_->GetTask(id, "acct_b").value().has_value());  // another tenant: not found
  auto trace = views_->Trace(id, *log_).value();
  ASSERT_EQ(trace.size(), 3u);
  EXPECT_EQ(trace[0].event.type, "task.created");
  EXPECT_EQ(trace[2].event.type, "task.queued");
  EXPECT_EQ(trace[2].event.sequence, 3u);
}

// The non-blocking wait for a reader's own writes: at once when applied, on a
// projector thread once the records are applied, false after the timeout or
// when the projector stops.
TEST_F(ViewsTest, WhenAppliedAnswersAtOnceLaterOrFalse) {
  const std::string first = Create("acct_a", "t");
  const uint32_t p = service_->PartitionOf(first);
  WaitAllApplied();
  std::vector<uint64_t> ends(4, 0);
  ends[p] = service_->AckedEnd(p);
  bool at_once = false;
  projector_->WhenApplied(ends, 5s, [&](bool applied) { at_once = applied; });
  EXPECT_TRUE(at_once);  // already applied: answered before WhenApplied returned

  // The next task of partition p: its three events are not in the log yet.
  ends[p] = service_->AckedEnd(p) + 3;
  std::promise<std::pair<bool, std::thread::id>> later;
  projector_->WhenApplied(ends, 5s, [&](bool applied) {
    later.set_value({applied, std::this_thread::get_id()});
  });
  auto answer = later.get_future();
  EXPECT_EQ(answer.wait_for(0ms), std::future_status::timeout);
  while (service_->PartitionOf(Create("acct_a", "t")) != p) {
  }
  ASSERT_EQ(answer.wait_for(5s), std::future_status::ready);
  const auto [applied, thread] = answer.get();
  EXPECT_TRUE(applied);
  EXPECT_NE(thread, std::this_thread::get_id());

  // Records that never come: false once the timeout has passed.
  ends[p] = service_->AckedEnd(p) + 1000;
  std::promise<bool> timed_out;
  const auto asked = std::chrono::steady_clock::now();
  projector_->WhenApplied(ends, 100ms, [&](bool applied) { timed_out.set_value(applied); });
  auto late = timed_out.get_future();
  ASSERT_EQ(late.wait_for(5s), std::future_status::ready);
  EXPECT_FALSE(late.get());
  EXPECT_GE(std::chrono::steady_clock::now() - asked, 100ms);

  // Waiting when the projector stops: false.
  std::promise<bool> stopped;
  projector_->WhenApplied(ends, 60s, [&](bool applied) { stopped.set_value(applied); });
  projector_->Stop();
  auto at_stop = stopped.get_future();
  ASSERT_EQ(at_stop.wait_for(0ms), std::future_status::ready);
  EXPECT_FALSE(at_stop.get());
}

TEST_F(ViewsTest, ListsNewestFirstWithFiltersAndCursor) {
  std::vector<std::string> a_ids;
  for (int i = 0; i < 7; ++i) a_ids.push_back(Create("acct_a", i % 2 ? "odd" : "even"));
  Create("acct_b", "odd");
  auto claimed = Call([&](auto done) {
    service_->Claim({{"acct_a", "k"}, "w", {"even"}, 60'000}, 0ms, done);
  });
  EXPECT_EQ(claimed.task.id, a_ids[0]);
  WaitAllApplied();

  auto all = views_->List({"acct_a", {}, "", 50, ""}).value();
  EXPECT_EQ(Ids(all), (std::vector<std::string>{a_ids[6], a_ids[5], a_ids[4], a_ids[3], a_ids[2],
                                                a_ids[1], a_ids[0]}));
  EXPECT_TRUE(all.next_cursor.empty());
  EXPECT_EQ(Ids(views_->List({"acct_a", {"running"}, "", 50, ""}).value()),
            std::vector<std::string>{a_ids[0]});
  EXPECT_EQ(Ids(views_->List({"acct_a", {"queued"}, "even", 50, ""}).value()),
            (std::vector<std::string>{a_ids[6], a_ids[4], a_ids[2]}));
  EXPECT_EQ(Ids(views_->List({"acct_a", {}, "odd", 50, ""}).value()),
            (std::vector<std::string>{a_ids[5], a_ids[3], a_ids[1]}));
  EXPECT_EQ(views_->List({"acct_b", {}, "", 50, ""}).value().tasks.size(), 1u);

  std::vector<std::string> paged;
  std::string cursor;
  int pages = 0;
  do {
    auto page = views_->List({"acct_a", {}, "", 3, cursor}).value();
    for (auto& id : Ids(page)) paged.push_back(id);
    cursor = page.next_cursor;
    ++pages;
  } while (!cursor.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(paged, Ids(all));

  // Several statuses: their index scans merged in the same order, paged too.
  EXPECT_EQ(Ids(views_->List({"acct_a", {"running", "queued"}, "", 50, ""}).value()), Ids(all));
  paged.clear();
  cursor.clear();
  pages = 0;
  do {
    auto page = views_->List({"acct_a", {"queued", "running"}, "even", 1, cursor}).value();
    for (auto& id : Ids(page)) paged.push_back(id);
    cursor = page.next_cursor;
    ++pages;
  } while (!cursor.empty() && pages < 10);
  EXPECT_EQ(paged, (std::vector<std::string>{a_ids[6], a_ids[4], a_ids[2], a_ids[0]}));
}

// Time bounds are ranges of the newest-first index; the agent is checked on
// each task read, and a page that has read max_examined tasks ends with a
// cursor after the last one read, so paging finds every match once.
TEST_F(ViewsTest, FiltersByAgentAndCreationTimeAndPagesPastTasksThatDoNotMatch) {
  std::vector<std::string> ids;
  std::vector<int64_t> at;
  for (int i = 0; i < 12; ++i) {
    ids.push_back(Create("acct_a", i % 2 ? "odd" : "even", i % 3 == 0 ? "scout" : "writer"));
    at.push_back(clock_.NowMillis());
  }
  Create("acct_b", "even", "scout");
  WaitAllApplied();
  auto list = [&](ListQuery q) {
    q.tenant_id = "acct_a";
    return Ids(views_->List(q).value());
  };
  ListQuery scouts;
  scouts.agent_id = "scout";
  EXPECT_EQ(list(scouts), (std::vector<std::string>{ids[9], ids[6], ids[3], ids[0]}));
  ListQuery window;
  window.created_after_ms = at[4];   // inclusive
  window.created_before_ms = at[8];  // exclusive
  EXPECT_EQ(list(window), (std::vector<std::string>{ids[7], ids[6], ids[5], ids[4]}));
  ListQuery both = window;
  both.agent_id = "scout";
  EXPECT_EQ(list(both), std::vector<std::string>{ids[6]});
  ListQuery odd_window = window;
  odd_window.type = "odd";
  odd_window.statuses = {"queued"};
  EXPECT_EQ(list(odd_window), (std::vector<std::string>{ids[7], ids[5]}));
  ListQuery after_all;
  after_all.created_after_ms = at[11] + 1;
  EXPECT_TRUE(list(after_all).empty());

  // Two tasks read per page: pages may be empty, and together they are the scouts.
  std::vector<std::string> paged;
  ListQuery q = scouts;
  q.tenant_id = "acct_a";
  q.max_examined = 2;
  int pages = 0;
  do {
    auto page = views_->List(q).value();
    EXPECT_LE(page.tasks.size(), 2u);
    for (auto& id : Ids(page)) paged.push_back(id);
    q.cursor = page.next_cursor;
    ++pages;
  } while (!q.cursor.empty() && pages < 20);
  EXPECT_EQ(paged, (std::vector<std::string>{ids[9], ids[6], ids[3], ids[0]}));
  EXPECT_EQ(pages, 6);  // 12 tasks, 2 a page
}

TEST_F(ViewsTest, IncrementalViewsEqualARebuildByteForByte) {
  for (int i = 0; i < 40; ++i) Create(i % 3 ? "acct_a" : "acct_b", i % 4 ? "x" : "y");
  for (int i = 0; i < 15; ++i) {
    auto c = Call([&](auto done) {
      service_->Claim({{"acct_a", "k"}, "w", {}, 60'000}, 0ms, done);
    });
    services::LeaseRef ref{c.task.id, c.task.lease.lease_id, "w"};
    if (i % 3 == 0) {
      Call([&](auto done) {
        services::CompleteTask done_task{{"acct_a", "k"}, ref, R"({"i":1})"};
        done_task.usage = {.tokens = 30, .input_tokens = 20, .output_tokens = 10, .model = "m"};
        service_->Submit(std::move(done_task), done);
      });
    } else if (i % 3 == 1) {
      Call([&](auto done) {
        service_->Submit(services::CancelTask{{"acct_a", "k"}, c.task.id, "stop"}, done);
      });
    }
  }
  WaitAllApplied();
  projector_->Stop();
  auto incremental = views_->Dump().value();
  views_.reset();

  ASSERT_TRUE(Views::Destroy(dir_.path()).has_value());
  auto rebuilt_views = Views::Open(dir_.path()).value();
  Projector rebuild(*log_, *rebuilt_views);
  ASSERT_TRUE(rebuild.CatchUp().has_value());
  auto rebuilt = rebuilt_views->Dump().value();
  EXPECT_GT(incremental.size(), 200u);
  // The usage view is among them: rows of both tenants and both types.
  size_t usage_rows = 0;
  for (const auto& [key, value] : incremental) usage_rows += key.starts_with("u");
  EXPECT_GE(usage_rows, 4u);
  ASSERT_EQ(incremental.size(), rebuilt.size());
  for (size_t i = 0; i < incremental.size(); ++i) {
    ASSERT_EQ(incremental[i], rebuilt[i]) << "first difference at key #" << i;
  }
}

// Views of an older layout (no "v" key, or another version) are dropped at
// Open and rebuilt from the log, not misread.
TEST_F(ViewsTest, ViewsOfAnotherLayoutAreRebuiltFromTheLog) {
  for (int i = 0; i < 5; ++i) Create("acct_a", "x");
  WaitAllApplied();
  projector_->Stop();
  auto before = views_->Dump().value();
  views_.reset();
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir_.path() + "/views", &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), "v").ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "etask_old_layout", "positions").ok());
  }
  auto reopened = Views::Open(dir_.path()).value();
  EXPECT_EQ(reopened->NextOffset(0).value(), 0u) << "the old views were not dropped";
  Projector rebuild(*log_, *reopened);
  ASSERT_TRUE(rebuild.CatchUp().has_value());
  EXPECT_EQ(reopened->Dump().value(), before);
}

}  // namespace
}  // namespace runlog::projections
