// The JSON parser and canonical JSON (docs/hashing.md): any input is parsed
// or refused, never crashes; a canonical text is its own canonical form; and
// a number alone reads as the double strtod gives it (RapidJSON 1.1 alone
// read "0e96" as 6.4e293).
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "events/canonical_json.h"
#include "infra/base/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto canonical = runlog::events::Canonicalize(in);
  if (canonical) {
    auto again = runlog::events::Canonicalize(*canonical);
    if (!again || *again != *canonical) std::abort();  // canonical form is a fixed point
  }
  runlog::json::Document doc;
  if (runlog::json::ParseUntrusted<rapidjson::kParseFullPrecisionFlag>(in, &doc) &&
      doc.IsDouble()) {
    const std::string text(in);
    char* end = nullptr;
    const double expected = std::strtod(text.c_str(), &end);
    // Below the normal range RapidJSON 1.1 may round differently ("2e-324"
    // reads as 5e-324, not 0): docs/hashing.md says so; above it, it may not.
    const bool subnormal =
        std::fpclassify(expected) == FP_SUBNORMAL ||
        (expected == 0 && text.find_first_of("123456789") < text.find_first_of("eE"));
    if (end == text.c_str() + text.size() && std::isfinite(expected) && !subnormal &&
        doc.GetDouble() != expected) {
      std::abort();
    }
  }
  return 0;
}
