#include "api/checkpoints.h"

#include <cstdio>
#include <future>

#include "events/partitioner.h"
#include "events/types.h"
#include "projections/projector.h"
#include "projections/views.h"
#include "services/task_service.h"

namespace runlog::api {

Checkpointer::Checkpointer(Options options)
    : options_(std::move(options)),
      partition_(events::PartitionFor(events::kCheckpointAggregate, options_.partitions)) {}

Checkpointer::~Checkpointer() { Stop(); }

void Checkpointer::Start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "rl-checkpoint");
    Loop();
  });
}

void Checkpointer::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Result<events::Checkpoint> Checkpointer::Current() {
  events::Checkpoint c{options_.signer->key().name, {}};
  for (uint32_t p = 0; p < options_.partitions; ++p) {
    auto head = options_.views->TreeHead(p);
    if (!head) return std::unexpected(head.error());
    c.partitions.push_back(std::move(*head));
  }
  return c;
}

bool Checkpointer::Grew(const events::Checkpoint& now) const {
  if (signed_.empty()) return now.total() > 0;
  for (uint32_t p = 0; p < options_.partitions; ++p) {
    const uint64_t before = signed_[p], after = now.partitions[p].size;
    // The checkpoint's own record adds one to its partition.
    if (after > before + (p == partition_ ? 1 : 0)) return true;
  }
  return false;
}

Result<std::string> Checkpointer::Sign(const events::Checkpoint& c) {
  auto note = options_.signer->Sign(c.Text());
  if (!note) return note;
  events::Event e;
  e.type = "checkpoint.signed";
  e.event_id = options_.ids->Next("evt_");
  e.aggregate_id = events::kCheckpointAggregate;
  e.sequence = 0;
  e.timestamp_ms = options_.clock->NowMillis();
  e.payload =
      events::Encode(events::CheckpointSigned{*note, options_.signer->key().VerifierString()});
  std::promise<Status> appended;
  auto future = appended.get_future();
  options_.tasks->Record(std::move(e), [&appended](Status s) { appended.set_value(std::move(s)); });
  if (Status s = future.get(); !s) return std::unexpected(s.error());
  signed_.clear();
  for (const auto& p : c.partitions) signed_.push_back(p.size);
  return *note;
}

Result<std::string> Checkpointer::SignNow() {
  if (options_.owns && !options_.owns(partition_)) {
    return Fail(codes::kUnavailable, "checkpoints are signed by the owner of partition " +
                                         std::to_string(partition_) + "; retry there or later");
  }
  std::lock_guard lock(sign_mu_);
  auto now = Current();
  if (!now) return std::unexpected(now.error());
  if (signed_.empty()) {  // since start: the newest on the log, if any
    auto latest = options_.views->Checkpoint();
    if (!latest) return std::unexpected(latest.error());
    if (*latest) {
      if (auto c = events::ParseCheckpointText((*latest)->substr(0, (*latest)->find("\n\n") + 1));
          c && c->partitions.size() == options_.partitions) {
        for (const auto& p : c->partitions) signed_.push_back(p.size);
      }
    }
  }
  if (Grew(*now)) {
    auto note = Sign(*now);
    if (!note) return note;
    // Served once the views hold it (they apply the record it was appended as).
    auto end = options_.log->EndOffset(partition_);
    if (end) options_.projector->WaitApplied(partition_, *end, std::chrono::seconds(10));
  }
  auto latest = options_.views->Checkpoint();
  if (!latest) return std::unexpected(latest.error());
  if (!*latest) return Fail(codes::kUnavailable, "no checkpoint signed yet; retry");
  return **latest;
}

void Checkpointer::Loop() {
  auto last = std::chrono::steady_clock::now();
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping_; });
    const bool stopping = stopping_;
    lock.unlock();
    bool due = stopping || std::chrono::steady_clock::now() - last >= options_.interval;
    if (!due) {
      std::lock_guard sign(sign_mu_);
      auto now = Current();
      uint64_t before = 0;
      for (uint64_t s : signed_) before += s;
      due = now && now->total() >= before + options_.every_records;
    }
    if (due && (!options_.owns || options_.owns(partition_))) {
      if (auto note = SignNow(); !note && !stopping) {
        std::fprintf(stderr, "runlog: signing a checkpoint failed: %s\n",
                     note.error().message.c_str());
      }
      last = std::chrono::steady_clock::now();
    }
    lock.lock();
    if (stopping) return;
  }
}

}  // namespace runlog::api
