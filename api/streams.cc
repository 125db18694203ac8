#include "api/streams.h"

#include <charconv>

#include "events/payload.h"

namespace runlog::api {
namespace {

constexpr size_t kBatch = 256;
constexpr auto kWait = std::chrono::milliseconds(500);

// Records a tenant stream does not show: keys (their hashes), and webhooks'
// and triggers' registrations (URLs that may hold credentials, sealed secrets).
bool Private(const std::string& type) {
  return type.starts_with("key.") || type == "webhook.registered" || type == "trigger.created";
}

bool Terminal(const std::string& type) {
  return type == "task.succeeded" || type == "task.failed" || type == "task.cancelled";
}

}  // namespace

std::string StreamHub::PositionId(const std::vector<uint64_t>& next) {
  std::string id;
  for (size_t p = 0; p < next.size(); ++p) {
    if (p > 0) id += '.';
    id += std::to_string(next[p]);
  }
  return id;
}

bool StreamHub::ParsePositionId(const std::string& id, uint32_t partitions,
                                std::vector<uint64_t>* next) {
  next->clear();
  const char* at = id.data();
  const char* end = id.data() + id.size();
  while (at < end) {
    uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(at, end, v);
    if (ec != std::errc()) return false;
    next->push_back(v);
    if (ptr == end) break;
    if (*ptr != '.') return false;
    at = ptr + 1;
  }
  return next->size() == partitions;
}

std::string StreamHub::Frame(const std::string& id, const events::LogRecord& r) {
  const events::Event& e = r.event;
  std::string data = events::Payload()
                         .Str("event_id", e.event_id)
                         .Str("type", e.type)
                         .Str("aggregate_id", e.aggregate_id)
                         .Int("sequence", static_cast<int64_t>(e.sequence))
                         .Int("timestamp_ms", e.timestamp_ms)
                         .Int("partition", r.partition)
                         .Int("offset", static_cast<int64_t>(r.offset))
                         .Raw("payload", e.payload)
                         .Build();
  return "id: " + id + "\nevent: " + e.type + "\ndata: " + data + "\n\n";
}

void StreamHub::Add(Spec spec, std::shared_ptr<Stream> stream) {
  open_.fetch_add(1);
  std::thread([this, spec = std::move(spec), stream = std::move(stream)]() mutable {
    if (spec.task_id.empty()) {
      RunTenant(std::move(spec), *stream);
    } else {
      RunTask(std::move(spec), *stream);
    }
    stream->Close();
    stream.reset();
    std::lock_guard lock(mu_);
    open_.fetch_sub(1);
    ended_.notify_all();
  }).detach();
}

void StreamHub::Stop() {
  stopping_.store(true);
  std::unique_lock lock(mu_);
  ended_.wait(lock, [this] { return open_.load() == 0; });
}

bool StreamHub::Send(Stream& stream, const std::string& frame, const std::string& resume_id,
                     std::chrono::steady_clock::time_point& last) {
  const auto now = std::chrono::steady_clock::now();
  if (!frame.empty()) {
    if (stream.unsent() > kMaxUnsent) {
      // Too far behind: say where to resume, then end, instead of buffering more.
      stream.Write("event: overflow\ndata: {\"resume_id\":\"" + resume_id + "\"}\n\n");
      const auto deadline = now + std::chrono::seconds(5);
      while (stream.unsent() > 0 && stream.Flush() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      return false;
    }
    stream.Write(frame);
    last = now;
  } else if (now - last >= heartbeat_) {
    stream.Write(": heartbeat\n\n");
    last = now;
  }
  return stream.Flush() && !stopping_.load();
}

void StreamHub::RunTask(Spec spec, Stream& stream) {
  auto last = std::chrono::steady_clock::now();
  if (!Send(stream, ": " + spec.task_id + "\n\n", "", last)) return;
  // Its history, from the trace view; then the partition, tailed.
  auto trace = views_.Trace(spec.task_id, log_);
  if (!trace || trace->empty()) return;
  const uint32_t partition = trace->front().partition;
  uint64_t next = 0;
  std::string resume = spec.after_offset >= 0 ? std::to_string(spec.after_offset) : "";
  for (const events::LogRecord& r : *trace) {
    next = r.offset + 1;
    if (static_cast<int64_t>(r.offset) <= spec.after_offset) continue;
    if (!spec.types.empty() && !spec.types.contains(r.event.type)) continue;
    if (!Send(stream, Frame(std::to_string(r.offset), r), resume, last)) return;
    resume = std::to_string(r.offset);
    if (Terminal(r.event.type)) return;
  }
  if (!trace->empty() && Terminal(trace->back().event.type)) return;
  next = std::max<uint64_t>(next, static_cast<uint64_t>(spec.after_offset + 1));
  while (!stopping_.load()) {
    auto records = log_.Tail(partition, next, kBatch, kWait);
    if (!records) return;
    for (const events::LogRecord& r : *records) {
      next = r.offset + 1;
      if (r.event.aggregate_id != spec.task_id) continue;
      if (spec.types.empty() || spec.types.contains(r.event.type)) {
        if (!Send(stream, Frame(std::to_string(r.offset), r), resume, last)) return;
        resume = std::to_string(r.offset);
      }
      if (Terminal(r.event.type)) {
        // Let the last frame reach the client before the end.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (stream.unsent() > 0 && stream.Flush() &&
               std::chrono::steady_clock::now() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return;
      }
    }
    if (!Send(stream, "", resume, last)) return;
  }
}

void StreamHub::Pin(Spec* spec) const {
  if (!spec->task_id.empty() || spec->from.size() == log_.partition_count()) return;
  spec->from.assign(log_.partition_count(), 0);
  for (uint32_t p = 0; p < spec->from.size(); ++p) {
    spec->from[p] = log_.EndOffset(p).value_or(0);
  }
}

void StreamHub::RunTenant(Spec spec, Stream& stream) {
  auto last = std::chrono::steady_clock::now();
  Pin(&spec);
  std::vector<uint64_t> next = spec.from;
  std::string resume = PositionId(next);
  if (!Send(stream, ": " + resume + "\n\n", resume, last)) return;
  while (!stopping_.load()) {
    size_t read = 0;
    for (uint32_t p = 0; p < next.size(); ++p) {
      auto records = log_.Read(p, next[p], kBatch);
      if (!records) return;
      read += records->size();
      for (const events::LogRecord& r : *records) {
        next[p] = r.offset + 1;
        if (r.event.tenant_id != spec.tenant_id || Private(r.event.type)) continue;
        if (!spec.types.empty() && !spec.types.contains(r.event.type)) continue;
        const std::string id = PositionId(next);
        if (!Send(stream, Frame(id, r), resume, last)) return;
        resume = id;
      }
    }
    if (read > 0) continue;
    if (!Send(stream, "", resume, last)) return;
    if (log_.CanWaitAny()) {
      log_.WaitAny(next, kWait);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

}  // namespace runlog::api
