#pragma once
// Checks a task's receipt (GET /v1/tasks/{id}/receipt, docs/receipts.md)
// offline, given only the verifier key: the checkpoint's signature, each
// record's inclusion proof against the checkpoint's root of its partition,
// that every record is the task's, and that their sequence numbers run 1, 2, …
// with none left out. What `runlog verify-receipt` and its fuzz target run.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "events/checkpoint.h"
#include "events/event.h"
#include "infra/base/result.h"

namespace runlog::events {

struct VerifiedReceipt {
  std::string task_id;
  uint32_t partition = 0;
  uint64_t tree_size = 0;  // of the partition, as signed
  Checkpoint checkpoint;
  std::vector<LogRecord> records;  // decoded, in the receipt's order
};

// The receipt's content once everything in it checks; INVALID_ARGUMENT
// saying what does not.
[[nodiscard]] Result<VerifiedReceipt> VerifyReceipt(std::string_view receipt_json,
                                                    const NoteKey& key);

}  // namespace runlog::events
