// The crash test's child: appends to the embedded log from many async
// appenders until it is killed, printing one line per acknowledged record on
// stdout: "<partition> <offset> <event_id>". The line is written from the
// acknowledgement callback itself, so it is out before the next step of the
// log runs: with --ack-before-write that is before the record is written.
//   crash_child DATA_DIR [--ack-before-write]

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include "events/event_log.h"
#include "events/partitioner.h"

using runlog::events::Event;

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  runlog::events::LogOptions options;
  options.data_dir = argv[1];
  options.partitions = 4;
  options.unsafe_ack_before_write_for_test =
      argc > 2 && std::strcmp(argv[2], "--ack-before-write") == 0;
  auto log = runlog::events::OpenEventLog(options);
  if (!log) {
    std::fprintf(stderr, "crash_child: %s\n", log.error().ToString().c_str());
    return 1;
  }
  const std::string run = std::to_string(::getpid());
  constexpr int kAppenders = 32;
  std::function<void(int, uint64_t)> issue = [&](int a, uint64_t n) {
    Event e;
    e.type = "test.appended";
    e.event_id = "evt_" + run + "_" + std::to_string(a) + "_" + std::to_string(n);
    e.aggregate_id = "agg_" + run + "_" + std::to_string(a) + "_" + std::to_string(n);
    e.sequence = 1;
    e.timestamp_ms = 1;
    e.payload = "{\"id\":\"" + e.event_id + "\"}";
    uint32_t p = runlog::events::PartitionFor(e.aggregate_id, options.partitions);
    std::string id = e.event_id;
    auto appended = (*log)->AppendAsync(p, std::span(&e, 1), [&, a, n, p, id](auto r) {
      if (!r) {
        std::fprintf(stderr, "crash_child: %s\n", r.error().ToString().c_str());
        std::_Exit(1);
      }
      std::string line = std::to_string(p) + " " + std::to_string(r->front()) + " " + id + "\n";
      if (::write(1, line.data(), line.size()) != static_cast<ssize_t>(line.size())) std::_Exit(1);
      issue(a, n + 1);
    });
    if (!appended) {
      std::fprintf(stderr, "crash_child: %s\n", appended.error().ToString().c_str());
      std::_Exit(1);
    }
  };
  for (int a = 0; a < kAppenders; ++a) issue(a, 0);
  std::this_thread::sleep_for(std::chrono::seconds(60));  // bounded: the test kills it long before
  std::_Exit(3);
}
