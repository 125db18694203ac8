#pragma once
// step_hash and task_hash (docs/hashing.md): SHA-256 of canonical JSON, over
// only what determines a result: never timestamps, durations, ids or leases.
// Every input here is already canonical JSON text, so the hashed documents are
// assembled without parsing.

#include <string>
#include <string_view>
#include <vector>

#include "events/task.h"

namespace runlog::events {

// SHA-256 hex of {"error_code","input","output","status","step_index","tool","tool_version"}.
std::string StepHash(const StepRecord& step);

// The canonical array of the finished steps' hashes, in step order.
std::string StepHashesJson(const Task& task);
// The canonical array of `hashes` (hex strings need no escaping).
std::string HashListJson(const std::vector<std::string>& hashes);

// SHA-256 hex of {"failure_code","input","limits","plan","status","step_hashes"};
// `failure_code` empty for null.
std::string TaskHash(const Task& task, std::string_view status, std::string_view step_hashes,
                     std::string_view failure_code);

// The one step of a task run by an external worker (a plan of one `agent`
// step), which has no step events: the claim starts it and the task's end
// finishes it. `output` and `error` are canonical JSON or empty. Its
// step_hash is left empty: the writer computes it (StepHash) and writes it into
// the task's end; ApplyEvent takes it from there and `runlog audit` recomputes it.
StepRecord ImpliedAgentStep(const Task& task, std::string_view status, std::string_view output,
                            std::string_view error, std::string_view error_code);

}  // namespace runlog::events
