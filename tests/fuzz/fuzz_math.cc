// The math tool's parser: any expression evaluates or is refused with a
// message, never crashes or hangs.
#include <cstdint>
#include <string>
#include <string_view>

#include "services/tools.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string result, error;
  runlog::services::EvaluateMath(std::string_view(reinterpret_cast<const char*>(data), size),
                                 &result, &error);
  return 0;
}
