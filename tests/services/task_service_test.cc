// The task state machine through the TaskService and its partition writers,
// on a real embedded log in a temp dir, with an injected clock and ids.

#include "services/task_service.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <thread>

#include "events/partitioner.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace runlog::services {
namespace {

using namespace std::chrono_literals;
using runlog::testing::WaitFor;

class TaskServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void TearDown() override {
    service_.reset();
    log_.reset();
  }

  void Open() {
    events::LogOptions options;
    options.data_dir = dir_.path();
    options.partitions = 4;
    log_ = std::move(events::OpenEventLog(options).value());
    service_ = std::make_unique<TaskService>(TaskService::Options{log_.get(), &clock_, &ids_});
    ASSERT_TRUE(service_->Recover(nullptr).has_value());
    service_->Start();
  }

  void Restart() {
    service_.reset();
    log_.reset();
    Open();
  }

  template <typename F>
  Result<CommandResult> Call(F&& issue) {
    std::promise<Result<CommandResult>> promise;
    issue([&](Result<CommandResult> r) { promise.set_value(std::move(r)); });
    auto future = promise.get_future();
    if (future.wait_for(10s) != std::future_status::ready) return Fail("TEST", "no answer in 10 s");
    return future.get();
  }

  Result<CommandResult> Create(const std::string& type, const std::string& tenant = "acct_a",
                               int64_t max_attempts = 1, const std::string& key = "",
                               const std::string& input = R"({"n":1})") {
    CreateTask c{{tenant, "key_" + tenant}, "", type, "", input, R"({"max_steps":1})"};
    c.max_attempts = max_attempts;
    c.idempotency_key = key;
    c.request_hash = "hash-of-" + input;
    return Call([&](auto done) { service_->Create(c, done); });
  }

  Result<CommandResult> Claim(std::vector<std::string> types, const std::string& tenant = "acct_a",
                              std::chrono::milliseconds wait = 0ms,
                              const std::string& worker = "w1") {
    ClaimTask c{{tenant, "key_" + tenant}, worker, std::move(types), 30'000};
    return Call([&](auto done) { service_->Claim(c, wait, done); });
  }

  Result<CommandResult> Send(Command command) {
    return Call([&](auto done) { service_->Submit(std::move(command), done); });
  }

  static LeaseRef Ref(const CommandResult& claimed) {
    return {claimed.task.id, claimed.task.lease.lease_id, claimed.task.lease.worker_id};
  }

  std::vector<events::Event> EventsOf(const std::string& task_id) {
    uint32_t p = service_->PartitionOf(task_id);
    auto records = log_->Read(p, 0, 100000).value();
    std::vector<events::Event> out;
    for (auto& r : records) {
      if (r.event.aggregate_id == task_id) out.push_back(r.event);
    }
    return out;
  }

  runlog::testing::TempDir dir_;
  infra::ManualClock clock_;
  infra::SequentialIds ids_;
  std::unique_ptr<events::EventLog> log_;
  std::unique_ptr<TaskService> service_;
};

TEST_F(TaskServiceTest, CreateIsDurableAsCreatedPlannedQueued) {
  auto created = Create("email");
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  EXPECT_EQ(created->task.status, TaskStatus::kQueued);
  auto events = EventsOf(created->task.id);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type, "task.created");
  EXPECT_EQ(events[1].type, "task.planned");
  EXPECT_EQ(events[2].type, "task.queued");
  EXPECT_EQ(events[2].sequence, 3u);
  EXPECT_EQ(
      events[0].payload,
      R"({"input":{"n":1},"limits":{"max_steps":1},"max_attempts":1,"plan":null,"priority":0,"type":"email"})");
  EXPECT_GE(service_->AckedEnd(service_->PartitionOf(created->task.id)), 3u);
}

TEST_F(TaskServiceTest, IdempotencyKeyReplaysOrConflicts) {
  auto first = Create("email", "acct_a", 1, "job-1");
  ASSERT_TRUE(first.has_value());
  EXPECT_FALSE(first->replayed);
  auto again = Create("email", "acct_a", 1, "job-1");
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->task.id, first->task.id);
  auto other_body = Create("email", "acct_a", 1, "job-1", R"({"n":2})");
  ASSERT_FALSE(other_body.has_value());
  EXPECT_EQ(other_body.error().code, codes::kIdempotencyConflict);
  // The same key from another tenant is another task.
  auto other_tenant = Create("email", "acct_b", 1, "job-1");
  ASSERT_TRUE(other_tenant.has_value());
  EXPECT_NE(other_tenant->task.id, first->task.id);
  // And it survives a restart.
  Restart();
  auto after = Create("email", "acct_a", 1, "job-1");
  ASSERT_TRUE(after.has_value());
  EXPECT_TRUE(after->replayed);
  EXPECT_EQ(after->task.id, first->task.id);
}

TEST_F(TaskServiceTest, ClaimsOldestReadyOfTheCallersTenantAndTypes) {
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    ids.push_back(Create(i % 2 ? "odd" : "even").value().task.id);
    clock_.Advance(1);
  }
  EXPECT_TRUE(Claim({}, "acct_other").value().empty);  // tenants are isolated
  EXPECT_TRUE(Claim({"none"}).value().empty);
  EXPECT_EQ(Claim({"odd"}).value().task.id, ids[1]);
  EXPECT_EQ(Claim({}).value().task.id, ids[0]);
  EXPECT_EQ(Claim({"even", "odd"}).value().task.id, ids[2]);
  auto claimed = Claim({"odd"}).value();
  EXPECT_EQ(claimed.task.id, ids[3]);
  EXPECT_EQ(claimed.task.status, TaskStatus::kRunning);
  EXPECT_EQ(claimed.task.attempt, 1);
  EXPECT_EQ(claimed.task.lease.expires_at_ms, clock_.NowMillis() + 30'000);
}

TEST_F(TaskServiceTest, LongPollIsAnsweredWhenWorkArrivesOrTheWaitEnds) {
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(Claim({"x"}, "acct_a", 150ms).value().empty);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);

  // Shared with the callback: if the wait below fails, the test returns while
  // the claim may still be parked, and TearDown's Stop() answers it.
  auto parked = std::make_shared<std::promise<Result<CommandResult>>>();
  service_->Claim(ClaimTask{{"acct_a", "key_acct_a"}, "w", {"x"}, 30'000}, 10s,
                  [parked](Result<CommandResult> r) { parked->set_value(std::move(r)); });
  // The task must arrive while the claim waits for it, not before.
  ASSERT_TRUE(WaitFor([&] { return service_->parked_claims() > 0; }, 5s))
      << "the claim did not park within 5 s";
  auto created = Create("x").value();
  auto future = parked->get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  auto got = future.get();
  ASSERT_TRUE(got.has_value());
  EXPECT_FALSE(got->empty);
  EXPECT_EQ(got->task.id, created.task.id);
}

TEST_F(TaskServiceTest, OnlyTheLeaseHolderHeartbeatsAndCompletes) {
  Create("t");
  auto claimed = Claim({"t"}).value();
  clock_.Advance(10'000);
  auto beat = Send(Heartbeat{{"acct_a", "key_acct_a"}, Ref(claimed)});
  ASSERT_TRUE(beat.has_value()) << beat.error().ToString();
  EXPECT_EQ(beat->task.lease.expires_at_ms, clock_.NowMillis() + 30'000);

  LeaseRef wrong = Ref(claimed);
  wrong.lease_id = "lease_other";
  EXPECT_EQ(Send(CompleteTask{{"acct_a", "key_acct_a"}, wrong, "{}"}).error().code,
            codes::kLeaseMismatch);
  LeaseRef by_worker{claimed.task.id, "", "w2"};  // no lease id: key and worker must match
  EXPECT_EQ(Send(CompleteTask{{"acct_a", "key_acct_a"}, by_worker, "{}"}).error().code,
            codes::kLeaseMismatch);
  EXPECT_EQ(Send(CompleteTask{{"acct_b", "key_acct_b"}, Ref(claimed), "{}"}).error().code,
            codes::kTaskNotFound);

  auto done = Send(CompleteTask{{"acct_a", "key_acct_a"}, Ref(claimed), R"({"ok":true})"});
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->task.status, TaskStatus::kSucceeded);
  EXPECT_EQ(done->task.result, R"({"ok":true})");
  EXPECT_EQ(Send(CompleteTask{{"acct_a", "key_acct_a"}, Ref(claimed), "{}"}).error().code,
            codes::kTaskTerminal);
}

TEST_F(TaskServiceTest, ExpiredLeaseRetriesWhileAttemptsRemainThenFails) {
  Create("t", "acct_a", /*max_attempts=*/2);
  auto first = Claim({"t"}).value();
  clock_.Advance(30'001);
  // The stale holder learns its lease is gone; the task is claimable again.
  EXPECT_EQ(Send(Heartbeat{{"acct_a", "key_acct_a"}, Ref(first)}).error().code,
            codes::kLeaseExpired);
  auto second = Claim({"t"}).value();
  ASSERT_FALSE(second.empty);
  EXPECT_EQ(second.task.id, first.task.id);
  EXPECT_EQ(second.task.attempt, 2);
  EXPECT_EQ(second.task.retry_count, 1);
  EXPECT_NE(second.task.lease.lease_id, first.task.lease.lease_id);
  EXPECT_EQ(Send(CompleteTask{{"acct_a", "key_acct_a"}, Ref(first), "{}"}).error().code,
            codes::kLeaseMismatch);
  clock_.Advance(30'001);
  auto late = Send(CompleteTask{{"acct_a", "key_acct_a"}, Ref(second), "{}"});
  EXPECT_EQ(late.error().code, codes::kLeaseExpired);
  std::vector<std::string> types;
  for (auto& e : EventsOf(first.task.id)) types.push_back(e.type);
  EXPECT_EQ(types,
            (std::vector<std::string>{"task.created", "task.planned", "task.queued", "task.claimed",
                                      "task.lease_expired", "task.retry_scheduled", "task.queued",
                                      "task.claimed", "task.lease_expired", "task.failed"}));
}

TEST_F(TaskServiceTest, LeaseExpiresOnTheWritersTimerToo) {
  Create("t");
  auto claimed = Claim({"t"}).value();
  clock_.Advance(30'001);
  // No command touches the task: the writer's timer (at most 1 s) must expire it.
  ASSERT_TRUE(
      WaitFor([&] { return EventsOf(claimed.task.id).back().type == "task.failed"; }, 5s, 20ms))
      << "the writer's timer did not end the task within 5 s; its last event is "
      << EventsOf(claimed.task.id).back().type;
  auto events = EventsOf(claimed.task.id);
  EXPECT_EQ(events.back().type, "task.failed");
  EXPECT_NE(events.back().payload.find("LEASE_EXPIRED"), std::string::npos);
}

TEST_F(TaskServiceTest, FailRetriesOnlyWhenRetryableAndAttemptsRemain) {
  Create("t", "acct_a", 2);
  auto first = Claim({"t"}).value();
  auto retried = Send(
      FailTask{{"acct_a", "key_acct_a"}, Ref(first), R"({"code":"BUSY","message":"later"})", true});
  ASSERT_TRUE(retried.has_value());
  EXPECT_EQ(retried->task.status, TaskStatus::kQueued);
  EXPECT_EQ(retried->task.retry_count, 1);
  auto second = Claim({"t"}).value();
  auto failed = Send(FailTask{
      {"acct_a", "key_acct_a"}, Ref(second), R"({"code":"BUSY","message":"again"})", true});
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->task.status, TaskStatus::kFailed);
  EXPECT_EQ(failed->task.error_code, "BUSY");
}

TEST_F(TaskServiceTest, CancelRevokesTheLeaseAndTerminalTasksRefuse) {
  auto queued = Create("t").value();
  auto cancelled = Send(CancelTask{{"acct_a", "key_acct_a"}, queued.task.id, "no longer needed"});
  ASSERT_TRUE(cancelled.has_value());
  EXPECT_EQ(cancelled->task.status, TaskStatus::kCancelled);
  EXPECT_TRUE(Claim({"t"}).value().empty);
  EXPECT_EQ(Send(CancelTask{{"acct_a", "key_acct_a"}, queued.task.id, ""}).error().code,
            codes::kTaskTerminal);

  Create("t");
  auto running = Claim({"t"}).value();
  ASSERT_TRUE(Send(CancelTask{{"acct_a", "key_acct_a"}, running.task.id, ""}).has_value());
  EXPECT_EQ(Send(Heartbeat{{"acct_a", "key_acct_a"}, Ref(running)}).error().code,
            codes::kTaskCancelled);
  EXPECT_EQ(Send(CancelTask{{"acct_b", "key_acct_b"}, running.task.id, ""}).error().code,
            codes::kTaskNotFound);
}

TEST_F(TaskServiceTest, EndedTasksLeaveTheLiveStateAndAreRememberedAMinuteOrWithAKey25Hours) {
  auto keyed = Create("t", "acct_a", 1, "job-9").value();
  auto claimed = Claim({"t"}).value();
  ASSERT_EQ(claimed.task.id, keyed.task.id);
  ASSERT_TRUE(Send(CompleteTask{{"acct_a", "key_acct_a"}, Ref(claimed), R"({"ok":1})"}));
  auto plain = Create("t").value();
  ASSERT_TRUE(Send(CancelTask{{"acct_a", "key_acct_a"}, plain.task.id, ""}));
  auto check = [&](const std::string& when) {
    // Late commands: 409s from what is kept of ended tasks, not 404s.
    EXPECT_EQ(Send(CompleteTask{{"acct_a", "key_acct_a"}, Ref(claimed), "{}"}).error().code,
              codes::kTaskTerminal)
        << when;
    EXPECT_EQ(Send(CancelTask{{"acct_a", "key_acct_a"}, plain.task.id, ""}).error().code,
              codes::kTaskTerminal)
        << when;
    EXPECT_EQ(Send(CancelTask{{"acct_b", "key_acct_b"}, plain.task.id, ""}).error().code,
              codes::kTaskNotFound)
        << when;
    // The key still answers with the whole ended task.
    auto again = Create("t", "acct_a", 1, "job-9");
    ASSERT_TRUE(again.has_value()) << when;
    EXPECT_TRUE(again->replayed);
    EXPECT_EQ(again->task.status, TaskStatus::kSucceeded);
    EXPECT_EQ(again->task.result, R"({"ok":1})");
    EXPECT_EQ(Create("t", "acct_a", 1, "job-9", R"({"n":2})").error().code,
              codes::kIdempotencyConflict);
  };
  check("live");
  Restart();
  check("after a restart");
  EXPECT_EQ(service_->remembered_ended(), 2u);
  // A minute on, the writer forgets the plain task (the API then answers late
  // commands from the task view) and keeps the keyed one whole for 25 hours.
  clock_.Advance(60'001);
  EXPECT_EQ(Send(CancelTask{{"acct_a", "key_acct_a"}, plain.task.id, ""}).error().code,
            codes::kTaskNotFound);
  EXPECT_EQ(Send(CompleteTask{{"acct_a", "key_acct_a"}, Ref(claimed), "{}"}).error().code,
            codes::kTaskTerminal);
  EXPECT_TRUE(Create("t", "acct_a", 1, "job-9")->replayed);
  Restart();  // recovery keeps no stub of a task that ended over a minute ago
  EXPECT_EQ(service_->remembered_ended(), 1u);
  // Past 25 hours the keyed task is forgotten too: its id is unknown again.
  clock_.Advance(25LL * 3600 * 1000 + 1);
  EXPECT_EQ(Send(CompleteTask{{"acct_a", "key_acct_a"}, Ref(claimed), "{}"}).error().code,
            codes::kTaskNotFound);
}

TEST_F(TaskServiceTest, ConcurrentCompletesOfOneTaskHaveOneWinner) {
  Create("t");
  auto claimed = Claim({"t"}).value();
  std::vector<std::future<Result<CommandResult>>> results;
  for (int i = 0; i < 8; ++i) {
    results.push_back(std::async(std::launch::async, [&] {
      return Send(CompleteTask{{"acct_a", "key_acct_a"}, Ref(claimed), "{}"});
    }));
  }
  int ok = 0, terminal = 0;
  for (auto& f : results) {
    auto r = f.get();
    if (r) {
      ++ok;
    } else if (r.error().code == codes::kTaskTerminal) {
      ++terminal;
    }
  }
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(terminal, 7);
}

TEST_F(TaskServiceTest, RecoveryRestoresQueuesAndLeases) {
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(Create("t").value().task.id);
    clock_.Advance(1);
  }
  auto claimed = Claim({"t"}).value();
  Restart();
  // The lease survives, and the queue resumes in order.
  auto beat = Send(Heartbeat{{"acct_a", "key_acct_a"}, Ref(claimed)});
  ASSERT_TRUE(beat.has_value()) << beat.error().ToString();
  EXPECT_EQ(Claim({"t"}).value().task.id, ids[1]);
  EXPECT_EQ(Claim({"t"}).value().task.id, ids[2]);
  EXPECT_TRUE(Claim({"t"}).value().empty);
}

// The real embedded log, except that once `refuse` is set every append is
// refused at once, on the appending thread, the way a latched log refuses.
class RefusingLog final : public events::EventLog {
 public:
  explicit RefusingLog(events::EventLog& log) : log_(log) {}
  std::atomic<bool> refuse{false};

  uint32_t partition_count() const override { return log_.partition_count(); }
  std::string Describe() const override { return log_.Describe(); }
  Status AppendAsync(uint32_t partition, std::span<const events::Event> events,
                     AppendCallback done) override {
    if (refuse.load()) return Fail(runlog::codes::kLogLatched, "refused for the test");
    return log_.AppendAsync(partition, events, std::move(done));
  }
  Result<std::vector<events::LogRecord>> Read(uint32_t p, uint64_t from, size_t max) override {
    return log_.Read(p, from, max);
  }
  Result<std::vector<events::LogRecord>> Tail(uint32_t p, uint64_t from, size_t max,
                                              std::chrono::milliseconds wait) override {
    return log_.Tail(p, from, max, wait);
  }
  Result<uint64_t> EndOffset(uint32_t p) override { return log_.EndOffset(p); }

 private:
  events::EventLog& log_;
};

// An append the log refuses at once: the answer must still come, after the
// writer's lock is released (no deadlock), say WRITER_FAILED, and latch the
// writer of that partition only.
TEST_F(TaskServiceTest, RefusedAppendLatchesItsWriterAndAnswersWriterFailed) {
  service_.reset();
  RefusingLog refusing(*log_);
  service_ = std::make_unique<TaskService>(TaskService::Options{&refusing, &clock_, &ids_});
  ASSERT_TRUE(service_->Recover(nullptr).has_value());
  service_->Start();
  auto created = Create("t", "acct_a", 1, "first");
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  refusing.refuse.store(true);
  auto refused = Create("t", "acct_a", 1, "second");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, codes::kWriterFailed);
  EXPECT_FALSE(service_->healthy());
  // Latched: the partition refuses even commands that would need no append.
  const uint32_t p = service_->PartitionOf(TaskService::TaskIdFor("acct_a", "second"));
  refusing.refuse.store(false);
  auto again = Create("t", "acct_a", 1, "second");
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, codes::kWriterFailed);
  // Another partition still works.
  for (int i = 0; i < 64; ++i) {
    const std::string key = "other-" + std::to_string(i);
    if (service_->PartitionOf(TaskService::TaskIdFor("acct_a", key)) == p) continue;
    auto other = Create("t", "acct_a", 1, key);
    EXPECT_TRUE(other.has_value()) << other.error().ToString();
    break;
  }
  service_.reset();  // before `refusing` goes away
}

// A caller that prepares its answer gets the whole task once, on the deciding
// thread, and then a result with only the task's id, tenant and status; never
// for an empty claim; and if the append fails, the answer is WRITER_FAILED.
TEST_F(TaskServiceTest, PreparedAnswersSeeTheWholeTaskOnceAndGiveWayToAFailedAppend) {
  std::vector<events::Task> prepared;
  auto prepare = [&](const events::Task& t, bool) { prepared.push_back(t); };
  CreateTask c{{"acct_a", "key_acct_a"}, "", "t", "", R"({"n":1})", R"({"max_steps":1})"};
  auto created = Call([&](auto done) { service_->Create(c, done, prepare); });
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  ASSERT_EQ(prepared.size(), 1u);
  EXPECT_EQ(prepared[0].id, created->task.id);
  EXPECT_EQ(prepared[0].type, "t");
  EXPECT_EQ(prepared[0].input, R"({"n":1})");
  EXPECT_EQ(prepared[0].status, events::TaskStatus::kQueued);
  EXPECT_EQ(created->task.tenant_id, "acct_a");
  EXPECT_EQ(created->task.status, events::TaskStatus::kQueued);
  EXPECT_TRUE(created->task.input.empty());  // not copied: the answer was rendered

  ClaimTask claim{{"acct_a", "key_acct_a"}, "w1", {"t"}, 30'000};
  auto claimed = Call([&](auto done) { service_->Claim(claim, 0ms, done, prepare); });
  ASSERT_TRUE(claimed.has_value() && !claimed->empty);
  ASSERT_EQ(prepared.size(), 2u);
  EXPECT_EQ(prepared[1].status, events::TaskStatus::kRunning);
  EXPECT_FALSE(prepared[1].lease.lease_id.empty());
  auto none = Call([&](auto done) { service_->Claim(claim, 0ms, done, prepare); });
  ASSERT_TRUE(none.has_value() && none->empty);
  EXPECT_EQ(prepared.size(), 2u);

  service_.reset();
  RefusingLog refusing(*log_);
  service_ = std::make_unique<TaskService>(TaskService::Options{&refusing, &clock_, &ids_});
  ASSERT_TRUE(service_->Recover(nullptr).has_value());
  service_->Start();
  refusing.refuse.store(true);
  CreateTask second{{"acct_a", "key_acct_a"}, "", "t", "", R"({"n":2})", R"({"max_steps":1})"};
  auto refused = Call([&](auto done) { service_->Create(second, done, prepare); });
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, codes::kWriterFailed);
  EXPECT_EQ(prepared.size(), 3u);  // rendered at the decision, then not used
  service_.reset();                // before `refusing` goes away
}

// Cluster mode: a node writes only the partitions it acquired; the others'
// commands answer NOT_OWNER (with the partition, for forwarding), and a
// partition's share of the quotas leaves with it and comes back once.
TEST_F(TaskServiceTest, AClusterNodeWritesOnlyWhatItAcquiredAndItsQuotasMoveWithIt) {
  service_.reset();
  TaskService::Options options{log_.get(), &clock_, &ids_};
  options.cluster = true;
  service_ = std::make_unique<TaskService>(options);
  ASSERT_TRUE(service_->Recover(nullptr).has_value());
  service_->Start();
  const std::string id = TaskService::TaskIdFor("acct_a", "k1");
  const uint32_t p = service_->PartitionOf(id);
  for (uint32_t q = 0; q < 4; ++q) EXPECT_FALSE(service_->owns(q));
  auto refused = Create("t", "acct_a", 1, "k1");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, codes::kNotOwner);
  EXPECT_EQ(refused.error().details, R"({"partition":)" + std::to_string(p) + "}");

  ASSERT_TRUE(service_->Acquire(p).has_value());
  EXPECT_TRUE(service_->owns(p));
  ASSERT_TRUE(Create("t", "acct_a", 1, "k1").has_value());
  auto claimed = Claim({"t"});
  ASSERT_TRUE(claimed.has_value() && !claimed->empty);
  const int64_t now = clock_.NowMillis();
  EXPECT_EQ(service_->quotas().Count("acct_a", Quotas::kTasksPerMonth, now), 1);
  EXPECT_EQ(service_->quotas().WorkersInUse("acct_a"), 1);

  service_->Release(p);
  EXPECT_FALSE(service_->owns(p));
  EXPECT_EQ(service_->quotas().Count("acct_a", Quotas::kTasksPerMonth, now), 0);
  EXPECT_EQ(service_->quotas().WorkersInUse("acct_a"), 0);
  auto moved = Send(Heartbeat{{"acct_a", "key_acct_a"}, Ref(*claimed)});
  ASSERT_FALSE(moved.has_value());
  EXPECT_EQ(moved.error().code, codes::kNotOwner);

  // Taken again (from the log): the task, its lease and its counts, once.
  ASSERT_TRUE(service_->Acquire(p).has_value());
  EXPECT_EQ(service_->quotas().Count("acct_a", Quotas::kTasksPerMonth, now), 1);
  EXPECT_EQ(service_->quotas().WorkersInUse("acct_a"), 1);
  auto beat = Send(Heartbeat{{"acct_a", "key_acct_a"}, Ref(*claimed)});
  EXPECT_TRUE(beat.has_value()) << beat.error().ToString();
}

}  // namespace
}  // namespace runlog::services
