#include "infra/base/error_codes.h"

#include <array>

namespace runlog::codes {
namespace {

#define RUNLOG_CODE_INFO(constant, code, status, retryable, next) \
  CodeInfo{code, status, retryable, NextStep::next},
constexpr std::array kCodes = {RUNLOG_ERROR_CODES(RUNLOG_CODE_INFO)};
#undef RUNLOG_CODE_INFO

}  // namespace

std::span<const CodeInfo> AllCodes() { return kCodes; }

const CodeInfo* FindCode(std::string_view code) {
  for (const CodeInfo& info : kCodes) {
    if (info.code == code) return &info;
  }
  return nullptr;
}

}  // namespace runlog::codes
