// `runlog bench`: drives a running runlogd's HTTP API with keep-alive
// connections from one epoll thread, in three bounded phases:
//   create          N clients create tasks back to back for S seconds;
//   claim+complete  N workers claim and complete those tasks until none is left (at most S s);
//   e2e@R           producers offer R tasks/s for W + S seconds while workers long-poll;
//                   latency = when the create was due (start + i/R, so a producer
//                   that falls behind does not hide the delay) -> complete
//                   acknowledged; tasks due in the first W seconds (--warmup) are
//                   reported apart, as "warmup".
// Prints one JSON object with --json.

#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>

#include "infra/cli/commands.h"
#include "infra/cli/common.h"
#include "infra/cli/http_load.h"

namespace runlog::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchOptions {
  std::string url = "http://127.0.0.1:8080";
  std::string key;
  int clients = 64;
  double seconds = 5;
  double rate = 2000;
  double warmup = 1;  // seconds of the end-to-end phase kept out of its statistics
  bool json = false;
  std::vector<std::string> phases = {"create", "claim", "e2e"};
  std::string e2e_samples;  // file for one line per e2e task: index, due at (ms), latency (ms)
};

// Busy and total CPU seconds of the whole host so far (/proc/stat), for the
// CPU each task costs server and load generator together: on a shared,
// noisy machine a steadier figure than throughput. Zeros if unreadable.
struct HostCpu {
  double busy = 0, total = 0;
  static HostCpu Now() {
    HostCpu out;
    FILE* f = std::fopen("/proc/stat", "r");
    if (f == nullptr) return out;
    unsigned long long v[8] = {};
    if (std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                    &v[4], &v[5], &v[6], &v[7]) == 8) {
      const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
      for (unsigned long long x : v) out.total += static_cast<double>(x) / tick;
      out.busy = out.total - static_cast<double>(v[3] + v[4]) / tick;  // minus idle and iowait
    }
    std::fclose(f);
    return out;
  }
};

struct Stats {
  std::vector<double> ms;
  uint64_t errors = 0;
  double seconds = 0;
  double host_busy_seconds = 0;  // CPU seconds the host spent busy during the phase
  double Percentile(double p) {
    if (ms.empty()) return 0;
    std::sort(ms.begin(), ms.end());
    return ms[std::min(ms.size() - 1, static_cast<size_t>(p * (ms.size() - 1) + 0.5))];
  }
  std::string Json(const char* name) {
    std::sort(ms.begin(), ms.end());
    char buf[256];
    std::snprintf(
        buf, sizeof buf,
        "\"%s\":{\"n\":%zu,\"per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
        "\"errors\":%llu,\"host_cpu_us_per_task\":%.1f}",
        name, ms.size(), seconds > 0 ? ms.size() / seconds : 0.0, Percentile(0.5), Percentile(0.99),
        ms.empty() ? 0.0 : ms.back(), static_cast<unsigned long long>(errors),
        ms.empty() ? 0.0 : host_busy_seconds * 1e6 / static_cast<double>(ms.size()));
    return buf;
  }
};

double Since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

std::string TaskBody(const std::string& type, uint64_t i) {
  // ~300 bytes, like the peer benchmark's payloads.
  return "{\"type\":\"" + type + "\",\"payload\":{\"i\":" + std::to_string(i) +
         ",\"document_url\":\"https://example.com/documents/" + std::to_string(i) +
         "\",\"note\":\"" + std::string(180, 'x') + "\"}}";
}

// Reads task id, lease id and payload.i from a claim answer; false if no task.
// A SAX pass that copies only those three values: the load generator shares
// the cores with the server it measures, and a DOM of the whole answer (task,
// lease, agent_contract) cost it about 4 us per claim.
class ClaimReader : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, ClaimReader> {
 public:
  ClaimReader(std::string* id, std::string* lease, int64_t* index)
      : id_(id), lease_(lease), index_(index) {}

  bool Key(const char* s, rapidjson::SizeType n, bool) {
    key_.assign(s, n);
    return true;
  }
  // Depth 1 is the answer, 2 inside "task", 3 inside "task.payload".
  bool StartObject() {
    if (depth_ == 1) in_task_ = key_ == "task";
    if (depth_ == 2 && in_task_) in_payload_ = key_ == "payload";
    ++depth_;
    key_.clear();
    return true;
  }
  bool EndObject(rapidjson::SizeType) {
    --depth_;
    if (depth_ == 1) in_task_ = false;
    if (depth_ == 2) in_payload_ = false;
    return true;
  }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    if (depth_ == 2 && in_task_ && key_ == "id") id_->assign(s, n), found_ = true;
    if (depth_ == 2 && in_task_ && key_ == "lease_id") lease_->assign(s, n);
    return true;
  }
  bool Int(int v) { return Int64(v); }
  bool Uint(unsigned v) { return Int64(v); }
  bool Uint64(uint64_t v) { return Int64(static_cast<int64_t>(v)); }
  bool Int64(int64_t v) {
    if (depth_ == 3 && in_payload_ && key_ == "i") {
      *index_ = v;
      // The answer's keys are sorted, and "payload" comes after the task's
      // "id" and "lease_id": the rest need not be read.
      if (found_ && !lease_->empty()) return false;
    }
    return true;
  }
  bool Default() { return true; }
  bool found() const { return found_; }

 private:
  std::string* id_;
  std::string* lease_;
  int64_t* index_;
  std::string key_;
  int depth_ = 0;
  bool in_task_ = false, in_payload_ = false, found_ = false;
};

bool ParseClaim(std::string_view body, std::string* id, std::string* lease, int64_t* index) {
  *index = -1;
  ClaimReader handler(id, lease, index);
  rapidjson::Reader reader;
  rapidjson::MemoryStream stream(body.data(), body.size());
  const rapidjson::ParseResult parsed = reader.Parse(stream, handler);
  if (parsed.IsError() && parsed.Code() != rapidjson::kParseErrorTermination) return false;
  return handler.found() && !lease->empty();
}

class Bench {
 public:
  Bench(const BenchOptions& o, std::string host, uint16_t port)
      : o_(o),
        load_(host, port, "Authorization: Bearer " + o.key + "\r\n"),
        type_("bench-" + std::to_string(::getpid())) {}

  // Waits (up to 10 s) until GET /readyz answers 200, i.e. the views have
  // caught up: each phase then measures its own load, not the previous
  // phase's projection backlog. Returns the seconds waited.
  double Settle(HttpLoad::Conn* c) {
    const auto start = Clock::now();
    bool ready = false;
    while (!ready && Clock::now() < start + std::chrono::seconds(10)) {
      bool answered = false;
      if (!load_.Send(c, "GET", "/readyz", "", [&](int st, auto) {
            answered = true;
            ready = st == 200;
          })) {
        break;
      }
      while (!answered) load_.Poll(100);
      if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::chrono::duration<double>(Clock::now() - start).count();
  }

  // Starts `next` on every connection (it chains the following request
  // itself), serves answers until all are idle; returns seconds since `start`.
  double RunUntilIdle(const std::vector<HttpLoad::Conn*>& conns,
                      const std::function<void(HttpLoad::Conn*)>& next, Clock::time_point start,
                      const char* phase, const Stats& s) {
    Progress progress(std::string("runlog bench: ") + phase);
    for (auto* c : conns) next(c);
    while (std::any_of(conns.begin(), conns.end(), [&](auto* c) { return load_.Busy(c); })) {
      load_.Poll(100);
      if (progress.Due()) progress.Show(Elapsed(start) / o_.seconds, Status(s, start));
    }
    progress.Finish(1.0, Status(s, start));
    return Elapsed(start);
  }

  static double Elapsed(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
  }
  // "12,345 done, 2,469/s, 0 errors"
  static std::string Status(const Stats& s, Clock::time_point start) {
    return Grouped(s.ms.size()) + " done, " +
           Grouped(static_cast<uint64_t>(s.ms.size() / std::max(Elapsed(start), 1e-9))) + "/s, " +
           Grouped(s.errors) + " errors";
  }

  // Claims a task with `claim` and completes it under its lease. `done` gets
  // the claim's status, the complete's status (-1 if no task was claimed, 0
  // if the connection failed) and the task's payload.i.
  void ClaimAndComplete(HttpLoad::Conn* c, const std::string& claim,
                        std::function<void(int claimed, int completed, int64_t index)> done) {
    load_.Send(c, "POST", "/v1/tasks/claim", claim,
               [this, c, done = std::move(done)](int st, std::string_view body) {
                 std::string id, lease;
                 int64_t index;
                 if (st != 200 || !ParseClaim(body, &id, &lease, &index)) return done(st, -1, -1);
                 load_.Send(c, "POST", "/v1/tasks/" + id + "/complete",
                            "{\"lease_id\":\"" + lease +
                                "\",\"result\":{\"ok\":true,\"i\":" + std::to_string(index) + "}}",
                            [done, index](int st2, auto) { done(200, st2, index); });
               });
  }

  bool Connect(int n, std::vector<HttpLoad::Conn*>* out) {
    for (int i = 0; i < n; ++i) {
      std::string error;
      auto* c = load_.Connect(&error);
      if (c == nullptr) {
        std::fprintf(stderr, "runlog bench: %s\n", error.c_str());
        return false;
      }
      out->push_back(c);
    }
    return true;
  }

  Stats Creates(const std::vector<HttpLoad::Conn*>& conns) {
    Stats s;
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(o_.seconds);
    std::function<void(HttpLoad::Conn*)> next = [&](HttpLoad::Conn* c) {
      if (Clock::now() >= end) return;
      const auto t0 = Clock::now();
      load_.Send(c, "POST", "/v1/tasks", TaskBody(type_, created_++), [&, c, t0](int st, auto) {
        if (st == 201) {
          s.ms.push_back(Since(t0));
        } else {
          ++s.errors;
        }
        next(c);
      });
    };
    s.seconds = RunUntilIdle(conns, next, start, "create", s);
    return s;
  }

  Stats ClaimComplete(const std::vector<HttpLoad::Conn*>& conns) {
    Stats s;
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(o_.seconds);
    const std::string claim = "{\"types\":[\"" + type_ + "\"]}";
    std::function<void(HttpLoad::Conn*)> next = [&](HttpLoad::Conn* c) {
      if (Clock::now() >= end || s.ms.size() >= created_) return;
      const auto t0 = Clock::now();
      ClaimAndComplete(c, claim, [&, c, t0](int claimed, int completed, int64_t) {
        if (claimed != 200) ++s.errors;
        if (completed < 0) return;  // drained
        if (completed == 200) {
          s.ms.push_back(Since(t0));
        } else {
          ++s.errors;
        }
        next(c);
      });
    };
    s.seconds = RunUntilIdle(conns, next, start, "claim+complete", s);
    return s;
  }

  // Open-loop producers at o_.rate, long-polling workers; latency per task.
  Stats EndToEnd(const std::vector<HttpLoad::Conn*>& producers,
                 const std::vector<HttpLoad::Conn*>& workers, uint64_t* offered, Stats* warm) {
    Stats s;
    std::FILE* samples = o_.e2e_samples.empty() ? nullptr : std::fopen(o_.e2e_samples.c_str(), "w");
    const std::string type = type_ + "-e2e";
    const uint64_t warm_tasks = static_cast<uint64_t>(o_.rate * o_.warmup);
    const uint64_t total = warm_tasks + static_cast<uint64_t>(o_.rate * o_.seconds);
    std::vector<Clock::time_point> sent(total);
    std::vector<bool> done(total, false);
    uint64_t next_task = 0, completed = 0;
    const auto start = Clock::now();
    const auto stop_workers = start + std::chrono::duration<double>(o_.warmup + o_.seconds + 10);
    const std::string claim = "{\"types\":[\"" + type + "\"],\"wait_seconds\":1}";
    std::function<void(HttpLoad::Conn*)> work = [&](HttpLoad::Conn* c) {
      if (completed >= total || Clock::now() >= stop_workers) return;
      ClaimAndComplete(c, claim, [&, c](int claimed, int st, int64_t index) {
        if (claimed != 200) ++s.errors;
        if (st == 200 && index >= 0 && static_cast<uint64_t>(index) < total && !done[index]) {
          done[index] = true;
          ++completed;
          const double ms = Since(sent[index]);
          (static_cast<uint64_t>(index) < warm_tasks ? warm->ms : s.ms).push_back(ms);
          if (samples != nullptr) {
            std::fprintf(samples, "%lld %.3f %.3f\n", static_cast<long long>(index),
                         std::chrono::duration<double, std::milli>(sent[index] - start).count(),
                         ms);
          }
        } else if (st != 200 && st >= 0) {
          ++s.errors;
        }
        work(c);
      });
    };
    Progress progress("runlog bench: e2e");
    const auto status = [&] {
      return Grouped(completed) + "/" + Grouped(total) + " done, " + Grouped(next_task) +
             " offered, " + Grouped(s.errors) + " errors";
    };
    for (auto* c : workers) work(c);
    while (completed < total && Clock::now() < stop_workers) {
      if (progress.Due())
        progress.Show(static_cast<double>(completed) / std::max<uint64_t>(total, 1), status());
      // Send every task that is due on a free producer connection.
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      const uint64_t due = std::min<uint64_t>(total, static_cast<uint64_t>(elapsed * o_.rate) + 1);
      for (auto* p : producers) {
        if (next_task >= due) break;
        if (load_.Busy(p)) continue;
        const uint64_t i = next_task++;
        sent[i] = start + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(static_cast<double>(i) / o_.rate));
        load_.Send(p, "POST", "/v1/tasks", TaskBody(type, i), [&](int st, auto) {
          if (st != 201) ++s.errors;
        });
      }
      // Wait for answers until the next task is due, not spinning: the load
      // generator shares the server's cores.
      load_.Poll(next_task < total ? 1 : 100);
    }
    progress.Finish(static_cast<double>(completed) / std::max<uint64_t>(total, 1), status());
    *offered = next_task;
    s.seconds = std::chrono::duration<double>(Clock::now() - start).count() - o_.warmup;
    warm->seconds = o_.warmup;
    if (samples != nullptr) std::fclose(samples);
    samples = nullptr;  // completions during the drain below are not written
    // Let the long polls end before the connections go away.
    auto all = producers;
    all.insert(all.end(), workers.begin(), workers.end());
    const auto drain = Clock::now() + std::chrono::seconds(3);
    while (std::any_of(all.begin(), all.end(), [&](auto* c) { return load_.Busy(c); }) &&
           Clock::now() < drain) {
      load_.Poll(50);
    }
    return s;
  }

 private:
  const BenchOptions& o_;
  HttpLoad load_;
  std::string type_;
  uint64_t created_ = 0;
};

int RunBench(BenchOptions o) {
  if (o.key.empty() && std::getenv("RUNLOG_ADMIN_KEY") != nullptr)
    o.key = std::getenv("RUNLOG_ADMIN_KEY");
  if (o.key.empty()) {
    std::fprintf(stderr,
                 "runlog bench: give --key or set RUNLOG_ADMIN_KEY (an internal-plan key)\n");
    return 2;
  }
  if (o.clients < 2 || o.clients > 1024 || o.seconds <= 0 || o.seconds > 300 || o.rate <= 0 ||
      o.rate > 100000) {
    std::fprintf(stderr, "runlog bench: need 2-1024 clients, 0-300 seconds, rate 0-100000/s\n");
    return 2;
  }
  if (!o.url.starts_with("http://")) return std::fprintf(stderr, "runlog bench: http:// only\n"), 2;
  std::string hostport = o.url.substr(7);
  if (auto slash = hostport.find('/'); slash != std::string::npos) hostport.resize(slash);
  const size_t colon = hostport.rfind(':');
  const std::string host = colon == std::string::npos ? hostport : hostport.substr(0, colon);
  const uint16_t port = colon == std::string::npos
                            ? 80
                            : static_cast<uint16_t>(std::atoi(hostport.c_str() + colon + 1));

  Bench bench(o, host, port);
  std::vector<HttpLoad::Conn*> conns, producers, workers;
  const int e2e_producers = std::max(1, o.clients / 4);
  if (!bench.Connect(o.clients, &conns) || !bench.Connect(e2e_producers, &producers) ||
      !bench.Connect(std::max(1, o.clients / 4), &workers)) {
    return 1;
  }
  auto wanted = [&](const char* phase) {
    return std::find(o.phases.begin(), o.phases.end(), phase) != o.phases.end();
  };
  Stats create, claim_complete, e2e;
  double settled = 0;
  auto measured = [](auto phase) {
    const HostCpu before = HostCpu::Now();
    Stats stats = phase();
    stats.host_busy_seconds = HostCpu::Now().busy - before.busy;
    return stats;
  };
  if (wanted("create")) {
    create = measured([&] { return bench.Creates(conns); });
    settled += bench.Settle(conns[0]);
  }
  if (wanted("claim")) {
    claim_complete = measured([&] { return bench.ClaimComplete(conns); });
    settled += bench.Settle(conns[0]);
  }
  uint64_t offered = 0;
  Stats warm;
  if (wanted("e2e")) {
    e2e = measured([&] { return bench.EndToEnd(producers, workers, &offered, &warm); });
  }
  const uint64_t errors = create.errors + claim_complete.errors + e2e.errors;
  // The host CPU of the phase is spread over every task of it, warm-up too.
  e2e.host_busy_seconds *= static_cast<double>(e2e.ms.size()) /
                           static_cast<double>(std::max<size_t>(1, e2e.ms.size() + warm.ms.size()));
  char e2e_extra[200];
  std::snprintf(e2e_extra, sizeof e2e_extra,
                ",\"rate\":%.0f,\"offered\":%llu,\"completed\":%zu,\"producers\":%d,"
                "\"workers\":%zu,\"warmup_seconds\":%.1f,",
                o.rate, static_cast<unsigned long long>(offered), e2e.ms.size() + warm.ms.size(),
                e2e_producers, workers.size(), o.warmup);
  std::string e2e_json = e2e.Json("e2e");
  e2e_json.insert(e2e_json.size() - 1, e2e_extra + warm.Json("warmup"));
  std::printf(
      "{\"url\":\"%s\",\"clients\":%d,\"seconds\":%.1f,%s,%s,%s,\"settle_seconds\":%.2f,"
      "\"errors\":%llu}\n",
      o.url.c_str(), o.clients, o.seconds, create.Json("create").c_str(),
      claim_complete.Json("claim_complete").c_str(), e2e_json.c_str(), settled,
      static_cast<unsigned long long>(errors));
  return errors == 0 ? 0 : 1;
}

}  // namespace

Runner AddBench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  auto* sub = app.add_subcommand("bench", "load-test a running runlogd over HTTP (keep-alive)");
  sub->add_option("--url", o->url, "server base URL")->capture_default_str();
  sub->add_option("--key", o->key, "API key (default: $RUNLOG_ADMIN_KEY)");
  sub->add_option("--clients", o->clients, "concurrent connections")->capture_default_str();
  sub->add_option("--seconds", o->seconds, "length of each phase (at most 300)")
      ->capture_default_str();
  sub->add_option("--rate", o->rate, "offered tasks/s in the end-to-end phase")
      ->capture_default_str();
  sub->add_option("--warmup", o->warmup,
                  "seconds at the start of the end-to-end phase whose tasks are reported apart "
                  "(\"warmup\"), not in its statistics")
      ->check(CLI::Range(0.0, 60.0))
      ->capture_default_str();
  sub->add_flag("--json", o->json, "print one JSON object (always JSON for now)");
  sub->add_option("--phases", o->phases,
                  "phases to run, in this order: create, claim (claim+complete of what create "
                  "left), e2e")
      ->delimiter(',')
      ->check(CLI::IsMember({"create", "claim", "e2e"}))
      ->capture_default_str();
  sub->add_option("--e2e-samples", o->e2e_samples,
                  "write each end-to-end task to this file: index, due at (ms from the phase's "
                  "start), create-to-complete latency (ms)");
  return [o] { return RunBench(*o); };
}

}  // namespace runlog::cli
