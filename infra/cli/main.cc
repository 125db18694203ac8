// runlog: the command-line tool: tasks, artifacts, keys and usage on a
// server; rebuild, export and audit a log; benchmarks and dev tools.

#include <cstdio>
#include <map>

#include "infra/cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"runlog: tools for a runlog log and server"};
  app.require_subcommand(1);
  std::map<std::string, runlog::cli::Runner> runners;
  runners["bench"] = runlog::cli::AddBench(app);
  runners["bench-log"] = runlog::cli::AddBenchLog(app);
  runners["mock-kafka"] = runlog::cli::AddMockKafka(app);
  runners["mock-llm"] = runlog::cli::AddMockLlm(app);
  runners["rebuild"] = runlog::cli::AddRebuild(app);
  runners["export"] = runlog::cli::AddExport(app);
  runners["audit"] = runlog::cli::AddAudit(app);
  runners["verify-receipt"] = runlog::cli::AddVerifyReceipt(app);
  runners["tasks"] = runlog::cli::AddTasks(app);
  runners["artifacts"] = runlog::cli::AddArtifacts(app);
  runners["keys"] = runlog::cli::AddKeys(app);
  runners["usage"] = runlog::cli::AddUsage(app);
  runners["doctor"] = runlog::cli::AddDoctor(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "runlog: %s (see --help)\n", e.what());
    return 2;
  }
  for (auto* sub : app.get_subcommands()) return runners.at(sub->get_name())();
  return 2;
}
