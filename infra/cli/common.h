#pragma once
// Pieces several `runlog` subcommands share: the log's options, the disk's raw
// fdatasync rate, and a progress display for long commands.

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <string>

#include "events/event_log.h"

namespace runlog::cli {

// --data, --log, --partitions and --kafka-topic, as runlogd takes them.
void AddLogOptions(CLI::App* sub, events::LogOptions* o);

// Serial 512-byte append + fdatasync of a probe file in `dir` for `seconds`;
// returns operations per second (0 if the file cannot be written or synced).
double MeasureFdatasync(const std::string& dir, double seconds);

// "1,234,567": counts in progress lines and tables.
std::string Grouped(uint64_t n);

// How far a long command is. On a terminal it redraws one line (a bar, the
// percentage, the caller's status and an estimate of the time left) at most
// ten times a second; elsewhere (a pipe, a file, TERM=dumb) it prints a plain
// line every 2 s, so logs stay readable. Writes to stderr by default.
//
// Thread contract: one thread calls it.
class Progress {
 public:
  explicit Progress(std::string title, std::FILE* out = stderr);
  ~Progress();  // ends a drawn line
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Whether Show would draw now: callers in a tight loop ask before they format.
  bool Due() const;
  // `fraction` in [0, 1], or negative when the total is unknown (no bar).
  void Show(double fraction, const std::string& status);
  // The last state, drawn whatever the time (then the line ends on a terminal).
  void Finish(double fraction, const std::string& status);
  bool terminal() const { return terminal_; }

 private:
  void Draw(double fraction, const std::string& status);

  const std::string title_;
  std::FILE* const out_;
  const bool terminal_;
  const bool utf8_;
  const std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;
  bool drawn_ = false;  // a line is open on the terminal
};

}  // namespace runlog::cli
