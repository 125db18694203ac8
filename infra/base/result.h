#pragma once
// Expected failures are values, never exceptions: a Result<T> holds either a T
// or one Error. Codes are stable machine-readable strings (UPPER_SNAKE) that the
// API maps to HTTP status in one table; messages are for people.

#include <expected>
#include <string>
#include <utility>

namespace runlog {

struct Error {
  std::string code;     // e.g. "LOG_CORRUPT", "UNAVAILABLE", "INVALID_ARGUMENT"
  std::string message;  // one line, says what the caller should do
  std::string details;  // optional JSON object text with structured context

  std::string ToString() const { return code + ": " + message; }
};

template <typename T>
using Result = std::expected<T, Error>;
using Status = std::expected<void, Error>;

inline std::unexpected<Error> Fail(std::string code, std::string message,
                                   std::string details = {}) {
  return std::unexpected<Error>(Error{std::move(code), std::move(message), std::move(details)});
}

// Common codes. Callers decide by code what to do next, in the spirit of
// absl::Status: retry the call (UNAVAILABLE), fix the input (INVALID_ARGUMENT),
// stop and page someone (DATA_LOSS, LOG_CORRUPT).
namespace codes {
inline constexpr char kInvalidArgument[] = "INVALID_ARGUMENT";
inline constexpr char kNotFound[] = "NOT_FOUND";
inline constexpr char kUnavailable[] = "UNAVAILABLE";
inline constexpr char kDeadlineExceeded[] = "DEADLINE_EXCEEDED";
inline constexpr char kFailedPrecondition[] = "FAILED_PRECONDITION";
inline constexpr char kLogCorrupt[] = "LOG_CORRUPT";
inline constexpr char kLogLatched[] = "LOG_LATCHED";
inline constexpr char kInternal[] = "INTERNAL";
inline constexpr char kCancelled[] = "CANCELLED";  // the caller asked to stop
}  // namespace codes

}  // namespace runlog
