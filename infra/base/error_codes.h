#pragma once
// Every error code runlog can answer, in one table: the constant code uses,
// the string clients see, the HTTP status it answers with, whether retrying
// the same call can succeed, and the next step the agent_contract recommends.
// Nothing else defines a code: code names a constant from here, never a
// string literal (tests/api/error_codes_test.cc fails otherwise), so no code
// can reach a client without an entry.
//
// Two kinds of code share the table:
// - request errors, the `error.code` of a 4xx/5xx answer;
// - task and plan failure codes, found in a task's `error`, `failure`, a
//   step's error and `plan_validation_failures`; they answer 422 should one
//   ever be a request's error.
// docs/api.md lists them for clients; a test checks it names every one.

#include <cstdint>
#include <span>
#include <string_view>

namespace runlog::codes {

// What the agent_contract recommends after an error (api/contract.cc makes
// the calls of it).
enum class NextStep : uint8_t {
  kFixRequest,   // change the request, then send it again
  kRetryLater,   // the same call, after retry_after_seconds
  kClaimNext,    // the lease is gone: claim other work
  kGetTask,      // read the task to see where it is
  kGetOrNewKey,  // read the task, or create anew with another key
  kListTasks,    // the id is unknown: list what exists
  kRegisterKey,  // get a key
};

// X(constant, code, http status, retryable, next step)
#define RUNLOG_ERROR_CODES(X)                                                 \
  /* Requests */                                                              \
  X(kInvalidJson, "INVALID_JSON", 400, false, kFixRequest)                    \
  X(kValidationError, "VALIDATION_ERROR", 400, false, kFixRequest)            \
  X(kInvalidArgument, "INVALID_ARGUMENT", 400, false, kFixRequest)            \
  X(kFailedPrecondition, "FAILED_PRECONDITION", 400, false, kFixRequest)      \
  X(kUnauthenticated, "UNAUTHENTICATED", 401, false, kRegisterKey)            \
  X(kBadSignature, "BAD_SIGNATURE", 401, false, kFixRequest)                  \
  X(kForbidden, "FORBIDDEN", 403, false, kFixRequest)                         \
  X(kRegistrationDisabled, "REGISTRATION_DISABLED", 403, false, kFixRequest)  \
  X(kNotFound, "NOT_FOUND", 404, false, kListTasks)                           \
  X(kTaskNotFound, "TASK_NOT_FOUND", 404, false, kListTasks)                  \
  X(kAgentNotFound, "AGENT_NOT_FOUND", 404, false, kFixRequest)               \
  X(kArtifactNotFound, "ARTIFACT_NOT_FOUND", 404, false, kListTasks)          \
  X(kWebhookNotFound, "WEBHOOK_NOT_FOUND", 404, false, kFixRequest)           \
  X(kDeliveryNotFound, "DELIVERY_NOT_FOUND", 404, false, kFixRequest)         \
  X(kTriggerNotFound, "TRIGGER_NOT_FOUND", 404, false, kFixRequest)           \
  X(kCheckpointNotFound, "CHECKPOINT_NOT_FOUND", 404, false, kFixRequest)     \
  X(kMethodNotAllowed, "METHOD_NOT_ALLOWED", 405, false, kFixRequest)         \
  X(kTaskTerminal, "TASK_TERMINAL", 409, false, kGetTask)                     \
  X(kTaskCancelled, "TASK_CANCELLED", 409, false, kClaimNext)                 \
  X(kLeaseExpired, "LEASE_EXPIRED", 409, false, kClaimNext)                   \
  X(kLeaseMismatch, "LEASE_MISMATCH", 409, false, kClaimNext)                 \
  X(kIdempotencyConflict, "IDEMPOTENCY_CONFLICT", 409, false, kGetOrNewKey)   \
  X(kTaskNotFinished, "TASK_NOT_FINISHED", 409, false, kFixRequest)           \
  X(kApprovalNotPending, "APPROVAL_NOT_PENDING", 409, false, kFixRequest)     \
  X(kStepOutOfOrder, "STEP_OUT_OF_ORDER", 409, false, kFixRequest)            \
  X(kPayloadTooLarge, "PAYLOAD_TOO_LARGE", 413, false, kFixRequest)           \
  X(kUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", 415, false, kFixRequest) \
  X(kBudgetExceeded, "BUDGET_EXCEEDED", 402, true, kRetryLater)               \
  X(kLimitExceeded, "LIMIT_EXCEEDED", 422, false, kFixRequest)                \
  X(kDestinationRefused, "DESTINATION_REFUSED", 422, false, kFixRequest)      \
  X(kTaskNotReplayable, "TASK_NOT_REPLAYABLE", 422, false, kFixRequest)       \
  X(kInvalidManifest, "INVALID_MANIFEST", 422, false, kFixRequest)            \
  X(kUnknownTaskType, "UNKNOWN_TASK_TYPE", 422, false, kFixRequest)           \
  X(kRateLimited, "RATE_LIMITED", 429, true, kRetryLater)                     \
  X(kQuotaExceeded, "QUOTA_EXCEEDED", 429, true, kRetryLater)                 \
  X(kWorkerLimit, "WORKER_LIMIT", 429, true, kRetryLater)                     \
  X(kInternal, "INTERNAL", 500, true, kRetryLater)                            \
  X(kLogCorrupt, "LOG_CORRUPT", 500, true, kRetryLater)                       \
  X(kUnavailable, "UNAVAILABLE", 503, true, kRetryLater)                      \
  X(kViewLagging, "VIEW_LAGGING", 503, true, kRetryLater)                     \
  X(kWriterFailed, "WRITER_FAILED", 503, true, kRetryLater)                   \
  X(kNotOwner, "NOT_OWNER", 503, true, kRetryLater)                           \
  X(kLogLatched, "LOG_LATCHED", 503, true, kRetryLater)                       \
  X(kDeadlineExceeded, "DEADLINE_EXCEEDED", 503, true, kRetryLater)           \
  X(kReceiptPending, "RECEIPT_PENDING", 503, true, kRetryLater)               \
  /* Tasks, steps and plans */                                                \
  X(kCancelled, "CANCELLED", 409, false, kGetTask)                            \
  X(kTaskFailed, "TASK_FAILED", 422, false, kGetTask)                         \
  X(kToolError, "TOOL_ERROR", 422, false, kGetTask)                           \
  X(kSandboxError, "SANDBOX_ERROR", 422, false, kGetTask)                     \
  X(kTimeout, "TIMEOUT", 422, false, kGetTask)                                \
  X(kTaskTimeout, "TASK_TIMEOUT", 422, false, kGetTask)                       \
  X(kQueueTimeout, "QUEUE_TIMEOUT", 422, false, kGetTask)                     \
  X(kTokenLimit, "TOKEN_LIMIT", 422, false, kGetTask)                         \
  X(kCostLimit, "COST_LIMIT", 422, false, kGetTask)                           \
  X(kApprovalRejected, "APPROVAL_REJECTED", 422, false, kGetTask)             \
  X(kApprovalExpired, "APPROVAL_EXPIRED", 422, false, kGetTask)               \
  X(kSchemaMismatch, "SCHEMA_MISMATCH", 422, false, kFixRequest)              \
  X(kPlanInvalid, "PLAN_INVALID", 422, false, kFixRequest)                    \
  X(kReferenceError, "REFERENCE_ERROR", 422, false, kFixRequest)              \
  X(kInvalidReference, "INVALID_REFERENCE", 422, false, kFixRequest)          \
  X(kTooManySteps, "TOO_MANY_STEPS", 422, false, kFixRequest)                 \
  X(kBadStepIndex, "BAD_STEP_INDEX", 422, false, kFixRequest)                 \
  X(kUnknownTool, "UNKNOWN_TOOL", 422, false, kFixRequest)                    \
  X(kToolVersionMismatch, "TOOL_VERSION_MISMATCH", 422, false, kFixRequest)   \
  X(kUnsupportedPlan, "UNSUPPORTED_PLAN", 422, false, kFixRequest)

#define RUNLOG_DEFINE_CODE(constant, code, status, retryable, next) \
  inline constexpr char constant[] = code;
RUNLOG_ERROR_CODES(RUNLOG_DEFINE_CODE)
#undef RUNLOG_DEFINE_CODE

struct CodeInfo {
  std::string_view code;
  int http_status;
  bool retryable;
  NextStep next;
};

// The whole table, in the order above.
std::span<const CodeInfo> AllCodes();
// The entry of `code`, or nullptr if it has none.
const CodeInfo* FindCode(std::string_view code);

}  // namespace runlog::codes
