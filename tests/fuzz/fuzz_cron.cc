// The cron parser (docs/triggers.md): any text parses or is refused with
// VALIDATION_ERROR, and a parsed schedule's next fire is found or is none.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "services/cron.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto cron =
      runlog::services::ParseCron(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!cron) {
    if (cron.error().code != "VALIDATION_ERROR") std::abort();
    return 0;
  }
  static const absl::TimeZone zone = runlog::services::LoadZone("Europe/Berlin").value();
  auto next = runlog::services::NextFire(*cron, zone, 1796420000000);
  if (next && *next <= 1796420000000) std::abort();  // strictly after
  return 0;
}
