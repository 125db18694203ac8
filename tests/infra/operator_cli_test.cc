// The operator's side of `runlog`, as a person runs it: `runlog doctor` on this
// machine (a real disk, a real sandboxed run, brokers of librdkafka's mock
// cluster, a real runlogd holding a data directory), and the progress bars of
// rebuild, audit, export and bench on a pseudo-terminal against plain lines
// in a pipe.

#include <gtest/gtest.h>
#include <pty.h>
#include <rapidjson/document.h>
#include <sys/statvfs.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include "events/kafka_mock.h"
#include "tests/testing/http_client.h"
#include "tests/testing/process.h"
#include "tests/testing/temp_dir.h"

namespace runlog {
namespace {

using namespace std::chrono_literals;
using testing::Execute;
using testing::Process;
using testing::TempDir;

struct Check {
  std::string status, detail, fix;
  double value = -1;
};

// `runlog doctor ARGS… --json`: its exit code and its checks by id.
struct Doctored {
  int code = -1;
  std::map<std::string, Check> checks;
  std::string out;
};

Doctored Doctor(std::vector<std::string> args) {
  args.insert(args.begin(), {RUNLOG_PATH, "doctor", "--json"});
  auto r = Execute(std::move(args), 60s);
  Doctored d{r.code, {}, r.out + r.err};
  rapidjson::Document doc;
  doc.Parse(r.out.c_str());
  EXPECT_TRUE(doc.IsObject() && doc.HasMember("checks")) << d.out;
  if (!doc.IsObject() || !doc.HasMember("checks")) return d;
  for (const auto& c : doc["checks"].GetArray()) {
    Check check{c["status"].GetString(), c["detail"].GetString(),
                c.HasMember("fix") ? c["fix"].GetString() : ""};
    if (c.HasMember("value")) check.value = c["value"].GetDouble();
    d.checks[c["check"].GetString()] = check;
  }
  EXPECT_EQ(doc["failures"].GetInt() > 0 ? 1 : 0, d.code) << d.out;
  return d;
}

TEST(RunlogDoctor, PassesOnThisMachineAndReportsWhatItMeasured) {
  TempDir dir;
  auto d = Doctor({"--data", dir / "data", "--fsync-seconds", "0.3"});
  EXPECT_EQ(d.checks["data_dir"].status, "ok") << d.out;
  EXPECT_NE(d.checks["data_dir"].detail.find("does not exist yet"), std::string::npos) << d.out;
  // A real fdatasync rate, and the free space statvfs gives the test too.
  EXPECT_NE(d.checks["fsync"].status, "fail") << d.out;
  EXPECT_GT(d.checks["fsync"].value, 0) << d.out;
  struct statvfs v {};
  ASSERT_EQ(::statvfs(dir.path().c_str(), &v), 0);
  EXPECT_NEAR(d.checks["free_space"].value, 100.0 * v.f_bavail / v.f_blocks, 1.0) << d.out;
  EXPECT_EQ(d.checks["kafka"].status, "skip") << d.out;
  // What sandbox_test needs here too: the doctor runs a real sandboxed program.
  for (const char* id : {"sandbox_helper", "namespaces", "seccomp", "sandbox_run"}) {
    EXPECT_EQ(d.checks[id].status, "ok") << id << "\n" << d.out;
  }
  EXPECT_NE(d.checks["cgroups"].status, "fail") << d.out;
  EXPECT_EQ(d.code, d.checks["free_space"].status == "fail" ? 1 : 0) << d.out;
}

TEST(RunlogDoctor, FailsWithAFixForABadDataDirectoryLooseKeysAndLittleSpace) {
  TempDir dir;
  std::ofstream(dir / "file") << "not a directory";
  auto file = Doctor({"--data", dir / "file", "--fsync-seconds", "0"});
  EXPECT_EQ(file.code, 1);
  EXPECT_EQ(file.checks["data_dir"].status, "fail") << file.out;
  EXPECT_NE(file.checks["data_dir"].fix.find("--data"), std::string::npos) << file.out;
  EXPECT_EQ(file.checks["free_space"].status, "skip") << file.out;
  // Under a file, or where the filesystem takes no directory: runlogd could
  // not make it, so neither is "ok".
  for (const std::string& unmakeable : {dir / "file/sub", std::string("/proc/runlog-doctor")}) {
    auto d = Doctor({"--data", unmakeable, "--fsync-seconds", "0"});
    EXPECT_EQ(d.code, 1) << unmakeable;
    EXPECT_EQ(d.checks["data_dir"].status, "fail") << d.out;
    EXPECT_NE(d.checks["data_dir"].detail.find("cannot be made"), std::string::npos) << d.out;
    EXPECT_EQ(d.checks["free_space"].status, "skip") << d.out;
  }

  // Options runlogd itself would refuse are a failure before any check of a broker.
  for (const std::vector<std::string>& refused :
       {std::vector<std::string>{"--log", "bogus"},
        {"--log", "kafka://"},
        {"--log", "kafka://127.0.0.1:1", "--kafka-config", "foo.bar=1"},
        {"--log", "kafka://127.0.0.1:1", "--kafka-config", "nonsense"},
        {"--partitions", "0"}}) {
    std::vector<std::string> args = {"--data", dir / "data", "--fsync-seconds", "0"};
    args.insert(args.end(), refused.begin(), refused.end());
    auto d = Doctor(args);
    EXPECT_EQ(d.code, 1) << refused[1];
    EXPECT_EQ(d.checks["options"].status, "fail") << d.out;
    EXPECT_FALSE(d.checks["options"].fix.empty()) << d.out;
    EXPECT_NE(d.checks["kafka_brokers"].status, "fail") << "no broker is asked\n" << d.out;
  }

  std::filesystem::create_directories(dir / "data");
  const std::string key = dir / "data/secret.key";
  std::ofstream(key) << "k";
  std::filesystem::permissions(key, std::filesystem::perms::owner_read |
                                        std::filesystem::perms::owner_write |
                                        std::filesystem::perms::group_read);
  auto loose = Doctor({"--data", dir / "data", "--fsync-seconds", "0"});
  EXPECT_EQ(loose.code, 1);
  EXPECT_EQ(loose.checks["keys"].status, "fail") << loose.out;
  EXPECT_EQ(loose.checks["keys"].fix, "chmod 600 " + key) << loose.out;
  std::filesystem::permissions(key, std::filesystem::perms::group_read,
                               std::filesystem::perm_options::remove);
  auto tight = Doctor({"--data", dir / "data", "--fsync-seconds", "0"});
  EXPECT_EQ(tight.checks["keys"].status, "ok") << tight.out;

  // Asking for more free space than any disk with data on it has.
  auto full = Doctor({"--data", dir / "data", "--fsync-seconds", "0", "--min-free-percent", "100"});
  EXPECT_NE(full.checks["free_space"].status, "ok") << full.out;
  EXPECT_NE(full.checks["free_space"].fix.find("move --data"), std::string::npos) << full.out;

  // The same as a table for a person: each failure followed by its fix.
  auto table = Execute({RUNLOG_PATH, "doctor", "--data", dir / "file", "--fsync-seconds", "0"});
  EXPECT_EQ(table.code, 1);
  EXPECT_NE(table.out.find("fail  data directory"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("fix: give --data a directory"), std::string::npos) << table.out;
  EXPECT_TRUE(std::regex_search(table.out, std::regex(R"(\d+ checks: 1 failed, \d+ warned)")))
      << table.out;
}

TEST(RunlogDoctor, NamesTheRunlogdHoldingTheDataDirectory) {
  TempDir dir;
  Process server({RUNLOGD_PATH, "--listen", "127.0.0.1:0", "--data", dir / "data"});
  bool serving = false;
  while (auto line = server.ReadStderrLine(20s)) {
    if ((serving = line->find("serving http://") != std::string::npos)) break;
  }
  ASSERT_TRUE(serving) << server.DrainStderr();
  auto d = Doctor({"--data", dir / "data", "--fsync-seconds", "0"});
  EXPECT_NE(d.checks["data_dir"].detail.find("in use by process " + std::to_string(server.pid())),
            std::string::npos)
      << d.out;
  EXPECT_EQ(d.checks["keys"].status, "ok") << d.out;  // runlogd made them 0600
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(), 0);
  auto after = Doctor({"--data", dir / "data", "--fsync-seconds", "0"});
  EXPECT_NE(after.checks["data_dir"].detail.find("not in use"), std::string::npos) << after.out;
}

TEST(RunlogDoctor, ChecksTheKafkaBrokersTopicAndPartitions) {
  auto mock = events::MockKafkaCluster::Start(3);
  ASSERT_TRUE(mock.has_value());
  ASSERT_TRUE((*mock)->CreateTopic("runlog.events", 8, 3).has_value());
  ASSERT_TRUE((*mock)->CreateTopic("runlog.nodes", 1, 3).has_value());
  const std::string log = "kafka://" + (*mock)->bootstraps();
  const std::vector<std::string> common = {
      "--fsync-seconds", "0", "--kafka-connect-timeout-ms", "5000", "--log", log};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.begin(), common.begin(), common.end());
    return Doctor(more);
  };
  auto good = with({});
  EXPECT_EQ(good.checks["kafka_brokers"].status, "ok") << good.out;
  EXPECT_NE(good.checks["kafka_brokers"].detail.find("3 brokers"), std::string::npos) << good.out;
  EXPECT_EQ(good.checks["kafka_topic"].status, "ok") << good.out;
  EXPECT_NE(good.checks["kafka_topic"].detail.find("8 partitions, 3 replicas"), std::string::npos)
      << good.out;
  // The mock cluster names no controller, so it cannot describe configs.
  EXPECT_EQ(good.checks["kafka_topic_config"].status, "warn") << good.out;
  EXPECT_EQ(good.checks["kafka_other_topics"].status, "warn") << good.out;
  EXPECT_NE(good.checks["kafka_other_topics"].detail.find("runlog.commands"), std::string::npos)
      << good.out;
  EXPECT_EQ(good.checks["kafka"].status, "");  // the embedded-log skip is not there

  auto partitions = with({"--partitions", "4"});
  EXPECT_EQ(partitions.code, 1);
  EXPECT_EQ(partitions.checks["kafka_topic"].status, "fail") << partitions.out;
  EXPECT_EQ(partitions.checks["kafka_topic"].fix.rfind("start runlogd with --partitions 8", 0), 0u)
      << partitions.out;

  auto missing = with({"--kafka-topic", "other.events"});
  EXPECT_EQ(missing.code, 1);
  EXPECT_EQ(missing.checks["kafka_topic"].status, "fail") << missing.out;
  EXPECT_NE(missing.checks["kafka_topic"].fix.find("kafka-topics.sh --bootstrap-server " +
                                                   (*mock)->bootstraps() +
                                                   " --create --topic other.events --partitions 8"),
            std::string::npos)
      << missing.out;

  auto gone = Doctor({"--fsync-seconds", "0", "--kafka-connect-timeout-ms", "500", "--log",
                      "kafka://127.0.0.1:1"});
  EXPECT_EQ(gone.code, 1);
  EXPECT_EQ(gone.checks["kafka_brokers"].status, "fail") << gone.out;
  EXPECT_NE(gone.checks["kafka_brokers"].fix.find("--kafka-config"), std::string::npos) << gone.out;
  EXPECT_EQ(gone.out.find("%3|"), std::string::npos) << "librdkafka's log leaked: " << gone.out;
}

// Runs `argv` on a pseudo-terminal (stdin, stdout and stderr) and returns all
// it wrote there, and its exit code.
std::pair<int, std::string> OnTerminal(std::vector<std::string> argv) {
  int master = -1;
  winsize size{};
  size.ws_row = 24;
  size.ws_col = 80;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, &size);
  if (pid == 0) {
    ::setenv("TERM", "xterm", 1);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(master, buf, sizeof buf)) > 0;) out.append(buf, n);  // EIO at exit
  ::close(master);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(RunlogProgress, DrawsBarsOnATerminalAndNothingButLinesInAPipe) {
  TempDir dir;
  ::setenv("RUNLOG_ADMIN_KEY", "progress-admin-key", 1);
  std::string base;
  {
    Process server({RUNLOGD_PATH, "--listen", "127.0.0.1:0", "--data", dir / "data"});
    static const std::regex kServing(R"(serving (http://127\.0\.0\.1:\d+))");
    while (auto line = server.ReadStderrLine(20s)) {
      std::smatch m;
      if (std::regex_search(*line, m, kServing)) {
        base = m[1];
        break;
      }
    }
    ASSERT_FALSE(base.empty()) << server.DrainStderr();
    testing::HttpClient client(base);
    client.SetKey("progress-admin-key");
    for (int i = 0; i < 20; ++i) {
      ASSERT_EQ(client.Post("/v1/tasks", R"({"type":"p"})").status, 201);
    }
    // bench, drawing on a terminal while it loads the server.
    auto [code, out] =
        OnTerminal({RUNLOG_PATH, "bench", "--url", base, "--key", "progress-admin-key", "--clients",
                    "2", "--seconds", "0.5", "--phases", "create"});
    EXPECT_EQ(code, 0) << out;
    EXPECT_TRUE(std::regex_search(out, std::regex(R"(\rrunlog bench: create \[[^\]]+\] 100%)")))
        << out;
    server.Signal(SIGTERM);
    ASSERT_EQ(server.Wait(), 0);
  }
  const std::string data = dir / "data";
  const std::string exported = dir / "export.jsonl";
  for (std::vector<std::string> argv : {
           std::vector<std::string>{RUNLOG_PATH, "audit", "--data", data},
           std::vector<std::string>{RUNLOG_PATH, "export", "--data", data, "--out", exported},
           std::vector<std::string>{RUNLOG_PATH, "rebuild", "--data", data},
       }) {
    const std::string title = "runlog " + argv[1];
    auto [code, out] = OnTerminal(argv);
    EXPECT_EQ(code, 0) << out;
    // A bar redrawn in place (carriage return, erase to the end of the line)
    // that ends full, with the count of records.
    EXPECT_TRUE(std::regex_search(
        out, std::regex("\r" + title + R"( \[[^\]]+\] 100%  [0-9,]+(/[0-9,]+)? records)")))
        << title << ": " << out;
    EXPECT_NE(out.find("\x1b[K"), std::string::npos) << title;
    // Each drawing fits the terminal's 80 columns (the bar is one column a character).
    std::regex drawing("\r([^\r\n]*)\x1b\\[K");
    for (std::sregex_iterator it(out.begin(), out.end(), drawing), end; it != end; ++it) {
      std::string text = (*it)[1];
      for (const std::string wide : {"█", "░"}) {
        for (size_t at; (at = text.find(wide)) != std::string::npos;) text.replace(at, 3, "#");
      }
      EXPECT_LT(text.size(), 80u) << text;
    }
    // In a pipe: no bar, no control characters (a short run prints no line).
    auto piped = Execute(argv);
    EXPECT_EQ(piped.code, 0) << piped.err;
    EXPECT_EQ(piped.err.find('\r'), std::string::npos) << title << ": " << piped.err;
    EXPECT_EQ(piped.err.find("\x1b"), std::string::npos) << title << ": " << piped.err;
    EXPECT_EQ(piped.err.find("100%"), std::string::npos) << title << ": " << piped.err;
  }
}

}  // namespace
}  // namespace runlog
