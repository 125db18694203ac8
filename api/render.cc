#include "api/render.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "events/payload.h"
#include "infra/base/json.h"

namespace runlog::api {

using events::Payload;

std::string IsoTime(int64_t ms) {
  std::time_t seconds = ms / 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  // "YYYY-MM-DDTHH:MM:SS.mmmZ", digit by digit (snprintf showed in profiles).
  std::string out = "0000-00-00T00:00:00.000Z";
  auto put = [&](size_t at, int value, int width) {
    for (int i = width - 1; i >= 0; --i, value /= 10)
      out[at + i] = static_cast<char>('0' + value % 10);
  };
  const int year = tm.tm_year + 1900;
  if (ms < 0 || year > 9999) {  // not a time runlog makes; shown, not truncated
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", year, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
    return buf;
  }
  put(0, year, 4);
  put(5, tm.tm_mon + 1, 2);
  put(8, tm.tm_mday, 2);
  put(11, tm.tm_hour, 2);
  put(14, tm.tm_min, 2);
  put(17, tm.tm_sec, 2);
  put(20, static_cast<int>(ms % 1000), 3);
  return out;
}

std::string IsoTimeJson(int64_t ms) { return ms == 0 ? "null" : "\"" + IsoTime(ms) + "\""; }

bool ParseTime(std::string_view text, int64_t* unix_ms) {
  const std::string s(text);
  if (!s.empty() && s.size() <= 15 &&
      std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    *unix_ms = std::stoll(s);
    return true;
  }
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &consumed) !=
          3 ||
      consumed != 10) {
    return false;
  }
  int64_t ms = 0, offset_minutes = 0;
  if (s.size() > 10) {
    if (s[10] != 'T' && s[10] != 't') return false;
    if (std::sscanf(s.c_str() + 11, "%2d:%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &tm.tm_sec,
                    &consumed) != 3 ||
        consumed != 8) {
      return false;
    }
    size_t at = 19;
    if (at < s.size() && s[at] == '.') {
      int64_t scale = 100;
      for (++at; at < s.size() && s[at] >= '0' && s[at] <= '9'; ++at, scale /= 10) {
        ms += (s[at] - '0') * scale;
      }
      if (s[at - 1] == '.') return false;
    }
    if (at < s.size() && (s[at] == 'Z' || s[at] == 'z') && at + 1 == s.size()) {
      // UTC
    } else if (at + 6 == s.size() && (s[at] == '+' || s[at] == '-') && s[at + 3] == ':') {
      int h = 0, m = 0;
      if (std::sscanf(s.c_str() + at + 1, "%2d:%2d", &h, &m) != 2 || h > 23 || m > 59) return false;
      offset_minutes = (s[at] == '+' ? 1 : -1) * (h * 60 + m);
    } else {
      return false;
    }
  }
  if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60 || tm.tm_year < 1970) {
    return false;
  }
  // The days of that month: 2026-02-30 is no date (timegm would take it as March 2).
  const std::chrono::year_month_day_last last{std::chrono::year{tm.tm_year} /
                                              std::chrono::month{static_cast<unsigned>(tm.tm_mon)} /
                                              std::chrono::last};
  if (static_cast<unsigned>(tm.tm_mday) > static_cast<unsigned>(last.day())) return false;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const std::time_t seconds = timegm(&tm);
  *unix_ms = static_cast<int64_t>(seconds) * 1000 + ms - offset_minutes * 60'000;
  return true;
}

namespace {

// The plan as Artexion shows it: its members (steps, …) with the limits
// inside. A stored plan is a JSON object without "limits" (the API keeps
// limits apart), so "limits" goes in front without parsing the plan again.
std::string PlanWithLimits(const events::Task& t) {
  if (t.plan.size() < 2 || t.plan.front() != '{') return "null";
  std::string out = "{\"limits\":";
  out += t.limits.empty() ? "{}" : t.limits;
  if (t.plan != "{}") out += ",";
  out.append(t.plan, 1);
  return out;
}

double DurationSeconds(const events::Task& t) {
  if (t.execution_started_at_ms == 0) return 0;
  int64_t end =
      t.execution_finished_at_ms != 0 ? t.execution_finished_at_ms : t.execution_started_at_ms;
  return static_cast<double>(end - t.execution_started_at_ms) / 1000.0;
}

}  // namespace

std::string RenderLease(const events::Task& t, int64_t now_ms) {
  if (t.lease.lease_id.empty()) return "null";
  Payload p;
  p.Str("lease_id", t.lease.lease_id)
      .Str("id", t.lease.lease_id)
      .Str("worker_id", t.lease.worker_id)
      .Raw("expires_at", IsoTimeJson(t.lease.expires_at_ms));
  if (now_ms > 0) {
    p.Int("expires_in_seconds", std::max<int64_t>(0, (t.lease.expires_at_ms - now_ms) / 1000));
  }
  return p.Build();
}

std::string RenderWorkerStep(const events::Task& t) {
  auto step = [](int64_t index, const std::string& tool, const std::string& version,
                 const std::string& input) {
    return Payload()
        .Int("step_index", index)
        .Str("tool", tool)
        .Str("tool_version", version.empty() ? "1" : version)
        .Raw("input", input.empty() ? "{}" : input)
        .Build();
  };
  if (!t.executor) return step(1, "agent", t.agent_step_version, t.agent_step_input);
  const int64_t index = events::NextStep(t);
  if (index > static_cast<int64_t>(t.steps.size())) return "null";
  const events::StepRecord& s = t.steps[index - 1];
  return step(s.index, s.tool, s.tool_version, s.input);
}

std::string RenderTask(const events::Task& t) {
  Payload p;
  RenderTaskInto(t, p);
  return p.Build();
}

void RenderTaskInto(const events::Task& t, Payload& p) {
  const std::string status(events::StatusName(t.status));
  std::string artifacts = "[";
  for (const std::string& id : t.artifacts) {
    if (artifacts.size() > 1) artifacts += ",";
    events::AppendCanonicalString(id, &artifacts);
  }
  artifacts += "]";
  p.Str("id", t.id)
      .Str("task_id", t.id)
      .Str("tenant_id", t.tenant_id)
      .Raw("artifacts", artifacts)
      .Str("type", t.type)
      .Str("task_type", t.type)
      .Str("status", status)
      .Raw("input", t.input)
      .Raw("payload", t.input)
      .Raw("plan", PlanWithLimits(t))
      .Raw("limits", t.limits)
      .Int("max_attempts", t.max_attempts)
      .Int("attempt", t.attempt)
      .Int("retry_count", t.retry_count)
      .Int("priority", t.priority)
      .Raw("result", t.result)
      .Raw("error", t.error)
      .Raw("failure", t.failure)
      .Raw("created_at", IsoTimeJson(t.created_at_ms))
      .Raw("execution_started_at", IsoTimeJson(t.execution_started_at_ms))
      .Raw("execution_finished_at", IsoTimeJson(t.execution_finished_at_ms))
      .Raw("completed_at", IsoTimeJson(t.execution_finished_at_ms))
      .Raw("duration_seconds", events::FormatDouble(DurationSeconds(t)))
      .Raw("cost_usd", events::UsdJson(t.cost_nanos))
      .Int("tokens_used", t.tokens_used)
      .Raw("lease", RenderLease(t, 0));
  if (!t.concurrency_key.empty()) {
    p.Str("concurrency_key", t.concurrency_key).Int("max_concurrency", t.max_concurrency);
  } else {
    p.Raw("concurrency_key", "");
  }
  if (!t.agent_id.empty()) {
    p.Str("agent_id", t.agent_id);
  } else {
    p.Raw("agent_id", "");
  }
  if (!t.replay_of_task_id.empty()) {
    p.Str("replay_of_task_id", t.replay_of_task_id);
  } else {
    p.Raw("replay_of_task_id", "");
  }
  if (!t.lease.lease_id.empty()) p.Str("lease_id", t.lease.lease_id);
  if (!t.task_hash.empty()) {
    p.Str("task_hash", t.task_hash).Raw("step_hashes", t.step_hashes);
  } else {
    p.Raw("task_hash", "").Raw("step_hashes", "[]");
  }
  if (!t.replay.empty()) p.Raw("replay", t.replay);
}

void RenderTraceInto(const events::Task& t, const std::vector<events::LogRecord>& trace,
                     Payload& out) {
  std::string events = "[", transitions = "[";
  int64_t claimed_at = 0;
  events::Task replayed;  // the task moved by the trace, for its status changes
  for (size_t i = 0; i < trace.size(); ++i) {
    const events::Event& e = trace[i].event;
    if (e.type == "task.claimed") claimed_at = e.timestamp_ms;
    const events::TaskStatus from = replayed.status;
    if (events::ApplyEvent(replayed, e) && (replayed.status != from || e.sequence == 1)) {
      if (transitions.size() > 1) transitions += ",";
      Payload step;
      if (e.sequence == 1) {
        step.Raw("from", "");
      } else {
        step.Str("from", std::string(events::StatusName(from)));
      }
      transitions += step.Str("to", std::string(events::StatusName(replayed.status)))
                         .Str("event", e.type)
                         .Raw("at", IsoTimeJson(e.timestamp_ms))
                         .Build();
    }
    if (i > 0) events += ",";
    events += Payload()
                  .Str("event", e.type)
                  .Str("event_id", e.event_id)
                  .Int("sequence", static_cast<int64_t>(e.sequence))
                  .Int("offset", static_cast<int64_t>(trace[i].offset))
                  .Raw("payload", e.payload)
                  .Raw("created_at", IsoTimeJson(e.timestamp_ms))
                  .Build();
  }
  events += "]";
  transitions += "]";
  out.Raw("transitions", transitions);

  // Steps as they ran. A worker-run task's one agent step has no step events
  // while it runs: the claim starts it (its record comes with the task's end).
  std::vector<events::StepRecord> steps = t.steps;
  if (steps.empty() && !t.executor && t.attempt > 0 && t.status == events::TaskStatus::kRunning) {
    events::StepRecord s;
    s.index = 1;
    s.tool = "agent";
    s.tool_version = t.agent_step_version;
    s.input = t.agent_step_input;
    s.status = "running";
    s.attempt = t.attempt;
    s.started_at_ms = claimed_at != 0 ? claimed_at : t.claimed_at_ms;
    steps.push_back(std::move(s));
  }
  std::string rendered = "[", schema_failures = "[";
  int64_t succeeded = 0, failed = 0, running = 0, sandbox_runs = 0;
  for (const events::StepRecord& s : steps) {
    if (s.status == "succeeded") ++succeeded;
    if (s.status == "failed") ++failed;
    if (s.status == "running") ++running;
    if (s.sandboxed) ++sandbox_runs;
    if (rendered.size() > 1) rendered += ",";
    rendered +=
        Payload()
            .Str("id", t.id + "-" + std::to_string(s.index))
            .Int("step_index", s.index)
            .Str("tool_name", s.tool)
            .Str("tool_version", s.tool_version)
            .Raw("input", s.input.empty() ? "{}" : s.input)
            .Raw("output", s.output)
            // An approval step that runs is waiting for a person.
            .Str("status", s.status == "running" && s.tool == "approval" ? "waiting" : s.status)
            .Raw("error", s.error)
            .Int("attempt", s.attempt)
            .Bool("sandboxed", s.sandboxed)
            .Raw("usage", events::UsageJson(s.usage))
            .Raw("cost_usd", events::UsdJson(s.usage.cost_nanos))
            .Raw("step_hash", s.step_hash.empty() ? "null" : "\"" + s.step_hash + "\"")
            .Raw("started_at", IsoTimeJson(s.started_at_ms))
            .Raw("finished_at", IsoTimeJson(s.finished_at_ms))
            .Int("duration_ms", s.duration_ms)
            .Build();
    if (s.error_code == codes::kSchemaMismatch) {
      if (schema_failures.size() > 1) schema_failures += ",";
      json::Document error;
      (void)json::Parse(s.error, &error);
      schema_failures += Payload()
                             .Int("step_index", s.index)
                             .Str("tool", s.tool)
                             .Str("message", json::String(error, "message"))
                             .Build();
    }
  }
  rendered += "]";
  schema_failures += "]";
  const bool finished = t.execution_finished_at_ms != 0;
  const int64_t queue_latency =
      t.execution_started_at_ms != 0 ? t.execution_started_at_ms - t.first_queued_at_ms : 0;
  std::string summary =
      Payload()
          .Int("total_steps", t.step_count)
          .Int("succeeded_steps", succeeded)
          .Int("failed_steps", failed)
          .Int("running_steps", running)
          .Int("total_duration_ms", finished && t.execution_started_at_ms != 0
                                        ? t.execution_finished_at_ms - t.execution_started_at_ms
                                        : 0)
          .Int("queue_latency_ms", queue_latency)
          .Int("retry_count", t.retry_count)
          .Int("sandbox_runs", sandbox_runs)
          .Int("tokens_used", t.tokens_used)
          .Raw("task_hash", t.task_hash.empty() ? "null" : "\"" + t.task_hash + "\"")
          .Raw("step_hashes", t.step_hashes.empty() ? "[]" : t.step_hashes)
          .Build();
  out.Str("id", t.id)
      .Str("task_id", t.id)
      .Str("status", std::string(events::StatusName(t.status)))
      .Raw("failure", t.failure)
      .Raw("estimated_cost_usd", events::UsdJson(t.cost_nanos))
      .Raw("events", events)
      .Raw("steps", rendered)
      .Raw("plan_validation_failures", t.plan_failures.empty() ? "[]" : t.plan_failures)
      .Raw("runtime_schema_failures", schema_failures)
      .Raw("replay", t.replay)
      .Raw("summary", summary);
  if (t.replay_of_task_id.empty()) {
    out.Raw("replay_of_task_id", "");
  } else {
    out.Str("replay_of_task_id", t.replay_of_task_id);
  }
}

}  // namespace runlog::api
