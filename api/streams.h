#pragma once
// Live progress over server-sent events (docs/api.md, "Live progress"):
// GET /v1/tasks/{id}/events streams one task's events as they are
// appended, GET /v1/events?types= every event of the tenant. Each event goes
// out as `id:` (its log position), `event:` (its type) and `data:` (the
// event as JSON); `Last-Event-ID` resumes right after the event it names.
//
// A task's stream: ids are the event's offset in the task's partition; its
// history comes from the trace view, then the partition is tailed; it ends
// after the task's last event. The tenant's stream: an id is the position
// after the event in every partition ("o0.o1.…"), so one id resumes all of
// them; without Last-Event-ID it starts at the end of the log.
//
// Each stream has a thread; at most kMaxStreams are open. A reader more than
// kMaxUnsent bytes behind is sent `event: overflow` with the id to resume
// from and closed, rather than held in memory. A comment goes out after 15 s
// of silence, so proxies keep the connection.
//
// Lifecycle: Stop() closes every stream and joins the threads.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "api/api.h"
#include "events/event_log.h"
#include "projections/views.h"

namespace runlog::api {

class StreamHub {
 public:
  static constexpr size_t kMaxStreams = 256;
  static constexpr size_t kMaxUnsent = 1 << 20;

  struct Spec {
    std::string tenant_id;
    std::string task_id;          // empty: every event of the tenant
    std::set<std::string> types;  // empty: all
    // Task stream: the offset to start after (-1: from the task's first event).
    int64_t after_offset = -1;
    // Tenant stream: next offset per partition (empty: the end of the log).
    std::vector<uint64_t> from;
  };

  StreamHub(events::EventLog& log, projections::Views& views,
            std::chrono::milliseconds heartbeat = std::chrono::seconds(15))
      : log_(log), views_(views), heartbeat_(heartbeat) {}
  ~StreamHub() { Stop(); }

  // False when kMaxStreams are open (the caller answers 503 before opening).
  bool HasRoom() const { return open_.load() < kMaxStreams; }
  // Fixes where a tenant stream without a resume id starts: the end of the
  // log now, before its answer's headers go out, so that nothing the client
  // writes once it sees them is missed.
  void Pin(Spec* spec) const;
  void Add(Spec spec, std::shared_ptr<Stream> stream);
  void Stop();

  // The tenant stream's id after `record`, given the positions before it.
  static std::string PositionId(const std::vector<uint64_t>& next);
  // Parses a tenant stream id; false if it is not one for `partitions`.
  static bool ParsePositionId(const std::string& id, uint32_t partitions,
                              std::vector<uint64_t>* next);
  // One event as a server-sent event frame.
  static std::string Frame(const std::string& id, const events::LogRecord& record);

 private:
  void RunTask(Spec spec, Stream& stream);
  void RunTenant(Spec spec, Stream& stream);
  // Sends `frame` (empty: only what waits, and a heartbeat when due); false
  // once the stream must end.
  bool Send(Stream& stream, const std::string& frame, const std::string& resume_id,
            std::chrono::steady_clock::time_point& last);

  events::EventLog& log_;
  projections::Views& views_;
  const std::chrono::milliseconds heartbeat_;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> open_{0};
  std::mutex mu_;
  std::condition_variable ended_;  // a stream's thread ended (open_ went down)
};

}  // namespace runlog::api
