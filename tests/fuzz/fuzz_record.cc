// The record decoder (docs/log_format.md): any bytes decode or are refused
// with LOG_CORRUPT; a record that decodes re-encodes to the same bytes, so
// there is one encoding per record and the chain's hashes are well defined.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "events/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  std::string prev;
  auto event = runlog::events::DecodeEvent(bytes, &prev);
  if (!event) {
    if (event.error().code != "LOG_CORRUPT") std::abort();
    return 0;
  }
  const bool json = !bytes.empty() && bytes[0] == '{';
  if (runlog::events::EncodeRecord(*event, json, prev) != bytes) std::abort();
  return 0;
}
