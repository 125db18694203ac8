#pragma once
// runlogd as a separate process for tests that kill it: started on a free
// loopback port over `data` (4 partitions), with `extra` flags; its URL once
// it serves. RUNLOGD_PATH names the binary (the test's CMake target sets it).

#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "tests/testing/process.h"

namespace runlog::testing {

inline std::unique_ptr<Process> StartRunlogd(const std::string& data, std::string* url,
                                             const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {RUNLOGD_PATH,   "--listen", "127.0.0.1:0", "--data", data,
                                   "--partitions", "4"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto server = std::make_unique<Process>(argv);
  static const std::regex kServing(R"(serving (http://127\.0\.0\.1:\d+))");
  while (auto line = server->ReadStderrLine(std::chrono::seconds(30))) {
    std::smatch m;
    if (std::regex_search(*line, m, kServing)) {
      *url = m[1];
      return server;
    }
  }
  return nullptr;
}

}  // namespace runlog::testing
