// The JSON parser and canonical JSON (docs/hashing.md): any input is parsed
// or refused, never crashes; a canonical text is its own canonical form, and
// parsing it again gives the same canonical text.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "events/canonical_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto canonical = runlog::events::Canonicalize(in);
  if (!canonical) return 0;
  auto again = runlog::events::Canonicalize(*canonical);
  if (!again || *again != *canonical) std::abort();  // canonical form is a fixed point
  return 0;
}
