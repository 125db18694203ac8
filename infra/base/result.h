#pragma once
// Expected failures are values, never exceptions: a Result<T> holds either a T
// or one Error. Codes are stable machine-readable strings (UPPER_SNAKE) that the
// API maps to HTTP status in one table; messages are for people.

#include <expected>
#include <string>
#include <utility>

#include "infra/base/error_codes.h"

namespace runlog {

struct Error {
  std::string code;     // one of infra/base/error_codes.h, e.g. "LOG_CORRUPT"
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

// Codes: the constants of infra/base/error_codes.h (runlog::codes::k…), one
// table with each code's HTTP status, retryability and next step. Callers
// decide by code what to do next, in the spirit of absl::Status: retry the
// call (UNAVAILABLE), fix the input (INVALID_ARGUMENT), stop and page someone
// (LOG_CORRUPT).

}  // namespace runlog
