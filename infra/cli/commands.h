#pragma once
// Subcommands of the `runlog` CLI. Each registers itself on the CLI11 app and
// runs when chosen; the exit code is the command's result.

#include <CLI/CLI.hpp>
#include <functional>

namespace runlog::cli {

using Runner = std::function<int()>;

// `runlog bench-log`: log append throughput and latency against the disk's raw
// fdatasync rate, measured in the same run.
Runner AddBenchLog(CLI::App& app);
// `runlog bench`: create, claim+complete and end-to-end latency over HTTP.
Runner AddBench(CLI::App& app);
// `runlog rebuild`: the views, from offset 0 of the log.
Runner AddRebuild(CLI::App& app);
// `runlog export`: the log as JSON lines. `runlog audit`: every transition and hash checked.
Runner AddExport(CLI::App& app);
Runner AddAudit(CLI::App& app);
// `runlog verify-receipt`: a task's receipt checked offline.
Runner AddVerifyReceipt(CLI::App& app);
// The CLI for people, against a server: `runlog tasks list|get|trace|cancel|
// replay`, `runlog artifacts list|get|approve|reject`, `runlog keys register`,
// `runlog usage`; tables, or the server's JSON with --json (infra/cli/client.cc).
Runner AddTasks(CLI::App& app);
Runner AddArtifacts(CLI::App& app);
Runner AddKeys(CLI::App& app);
Runner AddUsage(CLI::App& app);
// `runlog doctor`: whether this machine can run runlogd, each failure with a fix.
Runner AddDoctor(CLI::App& app);
// `runlog mock-kafka`: a librdkafka mock cluster as its own process.
Runner AddMockKafka(CLI::App& app);
// `runlog mock-llm`: a stand-in chat-completions provider on loopback.
Runner AddMockLlm(CLI::App& app);

}  // namespace runlog::cli
