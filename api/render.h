#pragma once
// How tasks look on the wire: one renderer for every answer that shows a task,
// in the Artexion task shape plus the aliases the other seeds use
// (task_id, task_type, payload, lease_id).

#include <string>
#include <vector>

#include "events/payload.h"
#include "events/task.h"
#include "projections/views.h"

namespace runlog::api {

// "2026-02-27T11:18:01.127Z", or "null" (unquoted) for 0.
std::string IsoTime(int64_t unix_ms);
std::string IsoTimeJson(int64_t unix_ms);
// A time as the API takes it: RFC 3339 ("2026-02-27T11:18:01Z", optional
// fraction, "Z" or "+HH:MM"/"-HH:MM"), a date ("2026-02-27", midnight UTC) or
// Unix milliseconds. False for anything else.
bool ParseTime(std::string_view text, int64_t* unix_ms);

// The task as a JSON object (no "version" or agent_contract: callers add them).
std::string RenderTask(const events::Task& task);
// The step a worker's claim hands out: {step_index, tool, tool_version, input},
// its input resolved (an agent or plan step of a plan), or null.
std::string RenderWorkerStep(const events::Task& task);
void RenderTaskInto(const events::Task& task, events::Payload& out);
// The lease of a running task: {"lease_id","id","worker_id","expires_at"}, plus
// "expires_in_seconds" when `now_ms` is given (non-zero).
std::string RenderLease(const events::Task& task, int64_t now_ms);
// GET /v1/tasks/{id}/trace without "version" and agent_contract.
void RenderTraceInto(const events::Task& task, const std::vector<events::LogRecord>& events,
                     events::Payload& out);

}  // namespace runlog::api
