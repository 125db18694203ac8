#pragma once
// The error table and the agent_contract (docs/agent_contract.md): one place
// that maps every error code to its HTTP status and retry advice, and builds
// the machine-readable next steps that ride on every answer.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "events/task.h"

namespace runlog::api {

struct NextAction {
  std::string action;
  bool recommended = false;
  std::string method;                // empty for an action that is not a call
  std::string endpoint;              // e.g. /v1/tasks/{id}/heartbeat, with the id filled in
  int64_t retry_after_seconds = -1;  // -1: not given
};

// What an answer is about, for choosing the contract's content.
struct ContractContext {
  const events::Task* task = nullptr;  // the task the answer is about, if any
  bool caller_holds_lease = false;     // the caller is the task's lease holder
  int64_t now_ms = 0;
  std::string error_code;  // empty on success
  bool retry = false;      // on success: the call is worth repeating (an empty claim)
  int64_t retry_after_seconds = -1;
  std::vector<NextAction> actions;  // chosen by the handler
  std::string plan;                 // billing_context
  int64_t rate_limit_per_minute = 0;
  int64_t requests_this_minute = 0;
  int64_t workers_limit = -1;  // -1: not shown; 0: unlimited
  int64_t workers_in_use = 0;
};

struct ErrorInfo {
  int http_status;
  bool retryable;
};

// The HTTP status and retryability of an error code; unknown codes are 500.
ErrorInfo LookupError(const std::string& code);

// {"version":"1","lease_valid":…,…} as JSON text.
std::string AgentContract(const ContractContext& context);

// The usual actions, with endpoints for `task_id`.
NextAction Act(std::string action, bool recommended, std::string method = "",
               std::string endpoint = "", int64_t retry_after_seconds = -1);
std::vector<NextAction> LeaseActions(const std::string& task_id);
// `retry_method` and `retry_endpoint`: the call that failed, which
// retry_after_wait repeats (empty: not a call, e.g. a page).
std::vector<NextAction> ActionsForError(const std::string& code, const std::string& task_id,
                                        int64_t retry_after_seconds,
                                        const std::string& retry_method = "",
                                        const std::string& retry_endpoint = "");

}  // namespace runlog::api
