// Writer checkpoints (services/writer/snapshot_store.h): a writer recovered
// from its checkpoint and the log after it holds exactly the state of one
// that read the whole log, records of keys and manifests included; a
// checkpoint that cannot be used (damaged, of another version, ahead of the
// log) is dropped with a note, and the whole log is read instead.

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "events/partitioner.h"
#include "services/task_service.h"
#include "services/writer/snapshot_store.h"
#include "tests/testing/temp_dir.h"

namespace runlog::services {
namespace {

using namespace std::chrono_literals;

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    events::LogOptions options;
    options.data_dir = dir_.path();
    options.partitions = 4;
    log_ = std::move(events::OpenEventLog(options).value());
    snapshots_ = std::move(SnapshotStore::Open(dir_.path()).value());
    live_ = Recovered(snapshots_.get());
    live_->Start();
  }

  // A service recovered from the log (and from checkpoints, if given), not started.
  std::unique_ptr<TaskService> Recovered(SnapshotStore* snapshots, int* records = nullptr,
                                         std::vector<std::string>* notes = nullptr) {
    auto service = std::make_unique<TaskService>(
        TaskService::Options{log_.get(), &clock_, &ids_, nullptr, nullptr, snapshots});
    events::ReadWatch watch;
    if (notes != nullptr) watch.note = [notes](const std::string& line) { notes->push_back(line); };
    auto recovered = service->Recover(
        [records](const events::Event&) {
          if (records != nullptr) ++*records;
        },
        watch);
    EXPECT_TRUE(recovered.has_value()) << recovered.error().ToString();
    return service;
  }

  template <typename F>
  Result<CommandResult> Call(F&& issue) {
    std::promise<Result<CommandResult>> promise;
    issue([&](Result<CommandResult> r) { promise.set_value(std::move(r)); });
    return promise.get_future().get();
  }

  // A mix of every kind of change: keyed and plain creates, claims,
  // heartbeats, completions, retried and final failures, cancels, leases
  // expiring, records of another aggregate.
  void Work(int rounds, uint32_t seed) {
    std::mt19937 rng(seed);
    for (int i = 0; i < rounds; ++i) {
      const std::string tenant = rng() % 3 == 0 ? "acct_b" : "acct_a";
      switch (rng() % 7) {
        case 0:
        case 1: {
          CreateTask c{{tenant, "key_" + tenant}, "", "t", "", R"({"n":1})", "{}"};
          c.max_attempts = 1 + rng() % 2;
          if (rng() % 2) c.idempotency_key = "k" + std::to_string(rng() % 50);
          c.request_hash = "h";
          (void)Call([&](auto done) { live_->Create(c, done); });
          break;
        }
        case 2:
        case 3: {
          ClaimTask c{
              {tenant, "key_" + tenant}, "w", {}, static_cast<int64_t>(1000 + rng() % 5000)};
          auto claimed = Call([&](auto done) { live_->Claim(c, 0ms, done); });
          if (!claimed || claimed->empty) break;
          LeaseRef ref{claimed->task.id, claimed->task.lease.lease_id, ""};
          const Caller caller{tenant, "key_" + tenant};
          switch (rng() % 4) {
            case 0:
              (void)Call([&](auto d) { live_->Submit(CompleteTask{caller, ref, "{}"}, d); });
              break;
            case 1:
              (void)Call([&](auto d) {
                live_->Submit(FailTask{caller, ref, R"({"code":"X","message":"m"})", true}, d);
              });
              break;
            case 2:
              (void)Call([&](auto d) { live_->Submit(Heartbeat{caller, ref}, d); });
              break;
            default:
              break;  // left running: its lease may expire
          }
          break;
        }
        case 4: {
          ClaimTask c{{tenant, "key_" + tenant}, "w", {}, 1000};
          auto claimed = Call([&](auto done) { live_->Claim(c, 0ms, done); });
          if (claimed && !claimed->empty) {
            (void)Call([&](auto d) {
              live_->Submit(CancelTask{{tenant, "key_" + tenant}, claimed->task.id, "no"}, d);
            });
          }
          break;
        }
        case 5: {
          events::Event e;
          e.type = "key.registered";
          e.event_id = ids_.Next("evt_");
          e.aggregate_id = ids_.Next("key_");
          e.tenant_id = tenant;
          e.sequence = 1;
          e.timestamp_ms = clock_.NowMillis();
          e.payload = R"({"hash":"x"})";
          std::promise<Status> done;
          live_->Record(e, [&](Status s) { done.set_value(s); });
          EXPECT_TRUE(done.get_future().get().has_value());
          break;
        }
        default:
          clock_.Advance(700);  // leases run out; the reaper or the next command expires them
          for (uint32_t p = 0; p < 4; ++p) {
            (void)Call([&](auto done) {
              live_->Submit(Heartbeat{{"acct_a", "key_acct_a"}, {"task_none", "", ""}}, done);
            });
          }
          break;
      }
    }
  }

  runlog::testing::TempDir dir_;
  infra::ManualClock clock_;
  infra::SequentialIds ids_;
  std::unique_ptr<events::EventLog> log_;
  std::unique_ptr<SnapshotStore> snapshots_;
  std::unique_ptr<TaskService> live_;
};

TEST_F(SnapshotTest, ACheckpointAndTheTailRecoverWhatTheWholeLogDoes) {
  Work(400, 1);
  ASSERT_TRUE(live_->CheckpointAll().has_value());
  Work(400, 2);  // the tail, after the checkpoint
  ASSERT_TRUE(live_->CheckpointAll().has_value());
  Work(300, 3);
  // Two minutes on: tasks without a key that ended are past their retention,
  // so recovery forgets them (and must still delete their checkpoint entries).
  clock_.Advance(120'000);
  // The leases that ran out meanwhile are expired by the live service's
  // reaper thread, at its own time: the state to compare is the one after
  // it has passed (it wakes at least once a second) and its appends are in.
  std::string live = live_->StateForTest();
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    std::string now = live_->StateForTest();
    if (now == live) break;
    live = std::move(now);
  }

  int records_full = 0, records_resumed = 0;
  std::vector<std::string> notes;
  auto full = Recovered(nullptr, &records_full);
  auto resumed = Recovered(snapshots_.get(), &records_resumed, &notes);
  EXPECT_EQ(full->StateForTest(), live);
  EXPECT_EQ(resumed->StateForTest(), live);
  EXPECT_EQ(records_resumed, records_full) << "records of other aggregates lost or doubled";
  EXPECT_GT(records_full, 10);
  ASSERT_EQ(notes.size(), 4u);  // one per partition: where its checkpoint let it start
  for (const std::string& n : notes) {
    EXPECT_NE(n.find("checkpoint covers offset"), std::string::npos) << n;
  }
  EXPECT_GT(live.size(), 1000u) << "too little state to prove anything";
  // A writer that recovered from a checkpoint and its tail checkpoints what
  // the tail changed: tasks live in the old checkpoint that ended since are
  // deleted or rewritten, or the next recovery would bring them back.
  ASSERT_TRUE(resumed->CheckpointAll().has_value());
  EXPECT_EQ(Recovered(snapshots_.get())->StateForTest(), live);
  ASSERT_TRUE(full->CheckpointAll().has_value());  // one recovered from the whole log too
  EXPECT_EQ(Recovered(snapshots_.get())->StateForTest(), live);
}

TEST_F(SnapshotTest, AnUnusableCheckpointIsDroppedAndTheWholeLogRead) {
  Work(300, 4);
  ASSERT_TRUE(live_->CheckpointAll().has_value());
  Work(100, 5);
  const std::string live = live_->StateForTest();
  // Partition 1: an entry that is not a task. Partition 2: a checkpoint that
  // claims more of the log than there is.
  SnapshotStore::Checkpoint damaged{1, 0, {{"t/task_x", "not json"}}, {}};
  auto end2 = log_->EndOffset(2).value();
  SnapshotStore::Checkpoint ahead{2, end2 + 10, {}, {}};
  // Written after the real ones, so they replace their meta (offset 0 for 1).
  auto read1 = snapshots_->Read(1, [](auto, auto) -> Status { return {}; });
  ASSERT_TRUE(read1.has_value());
  damaged.offset = *read1;
  ASSERT_TRUE(snapshots_->Write(damaged).has_value());
  ASSERT_TRUE(snapshots_->Write(ahead).has_value());

  std::vector<std::string> notes;
  auto resumed = Recovered(snapshots_.get(), nullptr, &notes);
  EXPECT_EQ(resumed->StateForTest(), live);
  std::string all;
  for (const std::string& n : notes) all += n + "\n";
  EXPECT_NE(all.find("partition 1: the writer's snapshot is not used"), std::string::npos) << all;
  EXPECT_NE(all.find("partition 2: the writer's snapshot is not used (it covers offset"),
            std::string::npos)
      << all;
  // Dropped: the next recovery reads those partitions whole without a word.
  notes.clear();
  auto again = Recovered(snapshots_.get(), nullptr, &notes);
  EXPECT_EQ(again->StateForTest(), live);
  for (const std::string& n : notes) EXPECT_EQ(n.find("not used"), std::string::npos) << n;
}

// A queued task whose checkpoint entry is current is spilled: the writer
// keeps its index entry, under 300 bytes, and reads the body back when a
// command needs it. Claims still take the best task whole, highest priority
// first, before and after a restart; a cancel, an idempotent create and a
// recovery's tail reach spilled tasks too.
TEST_F(SnapshotTest, QueuedTasksAreSpilledAndReadBackWhole) {
  const Caller a{"acct_a", "key_a"};
  constexpr int kTasks = 2000;
  const std::string pad(200, 'x');
  std::vector<std::string> ids;
  for (int i = 0; i < kTasks; ++i) {
    CreateTask c{a,   "", "t", "", R"({"n":)" + std::to_string(i) + R"(,"pad":")" + pad + "\"}",
                 "{}"};
    c.priority = i % 10 == 0 ? 5 : 0;  // every tenth is claimed first
    if (i == 7) {
      c.idempotency_key = "seven";
      c.request_hash = "h7";
    }
    auto created = Call([&](auto done) { live_->Create(c, done); });
    ASSERT_TRUE(created.has_value());
    ids.push_back(created->task.id);
    clock_.Advance(1);
  }
  const int64_t before = live_->HeldNow().memory_bytes;
  ASSERT_TRUE(live_->CheckpointAll().has_value());
  const PartitionWriter::Held spilled = live_->HeldNow();
  EXPECT_EQ(spilled.tasks.at("queued"), kTasks);
  EXPECT_LE(spilled.memory_bytes, 300 * kTasks) << "before spilling: " << before;
  EXPECT_GT(before, 3 * spilled.memory_bytes);

  // The idempotent create finds its spilled task; a cancel reaches one.
  CreateTask again{a, "", "t", "", "{}", "{}"};
  again.idempotency_key = "seven";
  again.request_hash = "h7";
  auto replayed = Call([&](auto done) { live_->Create(again, done); });
  ASSERT_TRUE(replayed.has_value());
  EXPECT_TRUE(replayed->replayed);
  EXPECT_EQ(replayed->task.id, ids[7]);
  EXPECT_NE(replayed->task.input.find(R"("n":7)"), std::string::npos) << replayed->task.input;
  auto cancelled = Call([&](auto d) { live_->Submit(CancelTask{a, ids[1999], "no"}, d); });
  ASSERT_TRUE(cancelled.has_value());
  EXPECT_EQ(cancelled->task.status, events::TaskStatus::kCancelled);

  // Half claimed before a restart, the rest after; every claim whole.
  std::vector<std::string> order;
  auto claim_some = [&](TaskService& service, int n) {
    for (int i = 0; i < n; ++i) {
      ClaimTask c{a, "w", {}, 60'000};
      auto claimed = Call([&](auto done) { service.Claim(c, 0ms, done); });
      ASSERT_TRUE(claimed.has_value() && !claimed->empty) << i;
      ASSERT_EQ(claimed->task.status, events::TaskStatus::kRunning);
      ASSERT_NE(claimed->task.input.find(pad), std::string::npos);
      order.push_back(claimed->task.id);
    }
  };
  claim_some(*live_, 150);
  // A restart from the checkpoint: the claims since are the log's tail (live_
  // is not stopped, which would checkpoint them).
  const std::string state = live_->StateForTest();
  auto resumed = Recovered(snapshots_.get());
  EXPECT_EQ(resumed->StateForTest(), state);
  resumed->Start();
  claim_some(*resumed, kTasks - 151);
  ClaimTask last{a, "w", {}, 60'000};
  auto none = Call([&](auto done) { resumed->Claim(last, 0ms, done); });
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty);
  resumed->Stop();

  // Each task once; the 200 of priority 5 first, then the rest oldest first.
  std::map<std::string, int> index;
  for (int i = 0; i < kTasks; ++i) index[ids[i]] = i;
  ASSERT_EQ(order.size(), static_cast<size_t>(kTasks - 1));
  std::set<std::string> once(order.begin(), order.end());
  EXPECT_EQ(once.size(), order.size());
  for (size_t k = 0; k < order.size(); ++k) {
    const int i = index.at(order[k]);
    EXPECT_EQ(i % 10 == 0, k < 200) << "claim " << k << " took task " << i;
    if (k > 0 && k != 200) {
      EXPECT_GT(i, index.at(order[k - 1])) << "claim " << k;
    }
  }
}

// A writer whose recovery did not finish (cancelled by a stop signal, or a
// read that failed) holds part of the log and knows no offset: it must not
// checkpoint, or the next start would replay the log over that part.
TEST_F(SnapshotTest, AWriterThatDidNotFinishRecoveringDoesNotCheckpoint) {
  Work(200, 8);
  PartitionWriter writer({1, log_.get(), &clock_, &ids_}, nullptr);
  auto records = log_->Read(1, 0, 100000).value();
  ASSERT_GT(records.size(), 10u);
  for (const auto& r : records) ASSERT_TRUE(writer.Recover(r.event).has_value());
  EXPECT_FALSE(writer.PrepareCheckpoint().has_value());
  writer.FinishRecovery(records.back().offset + 1);
  auto checkpoint = writer.PrepareCheckpoint();
  ASSERT_TRUE(checkpoint.has_value());
  EXPECT_EQ(checkpoint->offset, records.back().offset + 1);
  EXPECT_FALSE(checkpoint->puts.empty());
  // One that could not be written goes back to be written by the next.
  writer.CheckpointFailed(*checkpoint);
  auto again = writer.PrepareCheckpoint();
  ASSERT_TRUE(again.has_value());
  // The same entries; records keep their order under new numbers.
  auto split = [](const SnapshotStore::Checkpoint& cp) {
    std::map<std::string, std::string> tasks;
    std::vector<std::string> records;
    for (const auto& [key, value] : cp.puts) {
      if (key.starts_with("r/")) {
        records.push_back(value);
      } else {
        tasks[key] = value;
      }
    }
    return std::make_pair(tasks, records);
  };
  EXPECT_EQ(split(*again), split(*checkpoint)) << "a failed checkpoint's changes were lost";
}

}  // namespace
}  // namespace runlog::services
