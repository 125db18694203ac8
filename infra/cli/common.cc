#include "infra/cli/common.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace runlog::cli {
namespace {

using Clock = std::chrono::steady_clock;

bool IsTerminal(std::FILE* out) {
  const char* term = std::getenv("TERM");
  return ::isatty(::fileno(out)) == 1 && (term == nullptr || std::string(term) != "dumb");
}

bool Utf8Locale() {
  for (const char* name : {"LC_ALL", "LC_CTYPE", "LANG"}) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') continue;
    std::string s(v);
    std::transform(s.begin(), s.end(), s.begin(), ::tolower);
    return s.find("utf-8") != std::string::npos || s.find("utf8") != std::string::npos;
  }
  return false;
}

int Columns(std::FILE* out) {
  winsize ws{};
  if (::ioctl(::fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
  return 80;
}

std::string Duration(double seconds) {
  const long s = std::lround(seconds);
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%lds", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  }
  return buf;
}

}  // namespace

void AddLogOptions(CLI::App* sub, events::LogOptions* o) {
  sub->add_option("--data", o->data_dir, "data directory")->capture_default_str();
  sub->add_option("--log", o->uri, "embedded, or kafka://HOST:PORT[,HOST:PORT]")
      ->capture_default_str();
  sub->add_option("--partitions", o->partitions, "log partitions")->capture_default_str();
  sub->add_option("--kafka-topic", o->kafka_topic, "Kafka topic of the log")->capture_default_str();
}

double MeasureFdatasync(const std::string& dir, double seconds) {
  const std::string path = dir + "/fdatasync-probe";
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0) return 0;
  char block[512];
  std::fill(std::begin(block), std::end(block), 'x');
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  long ops = 0;
  bool failed = false;
  while (Clock::now() < end) {
    if (::write(fd, block, sizeof block) != static_cast<ssize_t>(sizeof block) ||
        ::fdatasync(fd) != 0) {
      failed = true;
      break;
    }
    ++ops;
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  ::close(fd);
  ::unlink(path.c_str());
  return failed && ops == 0 ? 0 : ops / elapsed;
}

std::string Grouped(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

Progress::Progress(std::string title, std::FILE* out)
    : title_(std::move(title)),
      out_(out),
      terminal_(IsTerminal(out)),
      utf8_(Utf8Locale()),
      start_(Clock::now()),
      // A terminal gets its bar at once; plain lines start after 2 s, so a
      // short command prints none.
      last_(terminal_ ? start_ - std::chrono::hours(1) : start_) {}

Progress::~Progress() {
  if (drawn_) std::fputc('\n', out_);
}

bool Progress::Due() const {
  return Clock::now() - last_ >=
         (terminal_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(2000));
}

void Progress::Show(double fraction, const std::string& status) {
  if (Due()) Draw(fraction, status);
}

void Progress::Finish(double fraction, const std::string& status) {
  if (terminal_) {
    Draw(fraction, status);
    std::fputc('\n', out_);
    drawn_ = false;
  }
}

void Progress::Draw(double fraction, const std::string& status) {
  last_ = Clock::now();
  const double elapsed = std::chrono::duration<double>(last_ - start_).count();
  std::string eta;
  if (fraction > 0.02 && fraction < 1 && elapsed > 1) {
    eta = "  ETA " + Duration(elapsed * (1 - fraction) / fraction);
  }
  char pct[16] = "";
  if (fraction >= 0) std::snprintf(pct, sizeof pct, "%3.0f%%", std::min(fraction, 1.0) * 100);
  if (!terminal_) {
    std::fprintf(out_, "%s: %s%s%s%s\n", title_.c_str(), pct, *pct ? " " : "", status.c_str(),
                 eta.c_str());
    std::fflush(out_);
    return;
  }
  // The text after the bar, cut to the terminal's width (counted in bytes:
  // titles and statuses are ASCII).
  std::string text = std::string(pct) + "  " + status + eta;
  const int columns = Columns(out_);
  const int bar = fraction >= 0 ? std::clamp(columns / 4, 10, 30) : 0;
  const int room = columns - 1 - static_cast<int>(title_.size()) - 1 - (bar > 0 ? bar + 3 : 0);
  if (room < static_cast<int>(text.size())) text.resize(std::max(0, room));
  std::string line = "\r" + title_ + " ";
  if (bar > 0) {
    const int filled = static_cast<int>(std::min(fraction, 1.0) * bar);
    line += "[";
    for (int i = 0; i < bar; ++i) line += i < filled ? (utf8_ ? "█" : "#") : (utf8_ ? "░" : "-");
    line += "] ";
  }
  line += text + "\x1b[K";  // erase what a longer previous line left
  std::fputs(line.c_str(), out_);
  std::fflush(out_);
  drawn_ = true;
}

}  // namespace runlog::cli
