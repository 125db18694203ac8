// The receipt verifier (docs/receipts.md): any receipt is verified or
// refused, never crashes. The seed is a real receipt signed with
// receipt-seed.key (a key for this corpus only), so mutations reach the
// proofs and the records behind a good signature.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "events/checkpoint.h"
#include "events/receipt.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const runlog::events::NoteKey key =
      runlog::events::NoteKey::FromVerifierString(
          "runlog/fuzz-seed+a8ee367e+AeNaiCqmJNIj0ab3brNIXFRzB/1AMuA0vuowBn2ESUhk")
          .value();
  auto r = runlog::events::VerifyReceipt(
      std::string_view(reinterpret_cast<const char*>(data), size), key);
  // What verifies is the task's, in order, under the signed root.
  if (r && (r->records.empty() || r->records[0].event.aggregate_id != r->task_id)) std::abort();
  return 0;
}
