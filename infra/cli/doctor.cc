// `runlog doctor`: checks that this machine can run runlogd with the given
// options — the data directory, the disk's fsync rate and free space, the
// Kafka brokers and topics, and what the sandbox needs (the helper, user
// namespaces, seccomp, cgroups, and one real sandboxed run) — and says how to
// fix each failure. Read-only apart from a probe file in the data directory
// and the cgroup directories a sandboxed run makes. Exits 1 when a check
// fails, 0 when all pass or only warn.

#include <fcntl.h>
#include <librdkafka/rdkafkacpp.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "events/kafka_log.h"
#include "events/payload.h"
#include "infra/cli/commands.h"
#include "infra/cli/common.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp_filter.h"

namespace runlog::cli {
namespace {

namespace fs = std::filesystem;

struct DoctorOptions {
  events::LogOptions log;
  std::vector<std::string> kafka_config;  // KEY=VALUE
  int kafka_timeout_ms = 5000;
  double fsync_seconds = 1;
  double min_free_percent = 10;
  std::string sandbox_helper;
  bool json = false;
};

struct Check {
  std::string id, title;
  std::string status;  // ok, warn, fail, skip
  std::string detail, fix;
  std::optional<double> value;  // the measured number, where there is one
};

class Doctor {
 public:
  explicit Doctor(const DoctorOptions& o) : o_(o) {}

  void Add(std::string id, std::string title, std::string status, std::string detail,
           std::string fix = "", std::optional<double> value = std::nullopt) {
    checks_.push_back({std::move(id), std::move(title), std::move(status), std::move(detail),
                       std::move(fix), value});
  }
  const std::vector<Check>& checks() const { return checks_; }

  void DataDir();
  void Disk();
  void Kafka();
  void Sandbox();

 private:
  void KeyFile(const std::string& path, std::vector<std::string>* loose);

  const DoctorOptions& o_;
  std::vector<Check> checks_;
  std::string probe_dir_;  // where the disk is measured: the data dir, or its nearest parent
};

std::string ReadFirstLine(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

// The process holding runlogd's lock on the embedded log (RocksDB's LOCK
// file, an fcntl lock), or 0.
pid_t LockHolder(const std::string& data_dir) {
  const int fd = ::open((data_dir + "/log/LOCK").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  const bool asked = ::fcntl(fd, F_GETLK, &lock) == 0;
  ::close(fd);
  return asked && lock.l_type != F_UNLCK ? lock.l_pid : 0;
}

void Doctor::DataDir() {
  const std::string dir = o_.log.data_dir;
  std::error_code ec;
  const std::string abs = fs::absolute(dir, ec).string();
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) {
    Add("data_dir", "data directory", "fail", abs + " is not a directory",
        "give --data a directory (runlogd makes it if missing)");
    return;
  }
  if (!fs::exists(dir, ec)) {
    fs::path parent = fs::absolute(dir, ec).parent_path();
    while (parent.has_relative_path() && !fs::exists(parent, ec)) parent = parent.parent_path();
    if (!fs::is_directory(parent, ec)) {
      Add("data_dir", "data directory", "fail",
          abs + " cannot be made: " + parent.string() + " is not a directory",
          "give --data a path under a directory");
      return;
    }
    // Make (and remove) a directory where runlogd would make its own: a
    // permission bit does not say whether the filesystem takes one (/proc).
    std::string trial = (parent / ".runlog-doctor-XXXXXX").string();
    if (::mkdtemp(trial.data()) == nullptr) {
      Add("data_dir", "data directory", "fail",
          abs + " cannot be made: making a directory in " + parent.string() + ": " +
              std::strerror(errno),
          "sudo mkdir -p " + abs + " && sudo chown $(id -un) " + abs +
              ", or give --data a path on a writable disk");
      return;
    }
    ::rmdir(trial.c_str());
    probe_dir_ = parent.string();
    Add("data_dir", "data directory", "ok",
        abs + " does not exist yet; runlogd makes it at its first start");
    return;
  }
  const std::string probe = dir + "/.doctor-probe";
  std::ofstream(probe) << "probe";
  if (!fs::exists(probe, ec)) {
    Add("data_dir", "data directory", "fail", abs + " is not writable by this user",
        "sudo chown -R $(id -un) " + abs + ", or run runlog as the user that owns it");
    return;
  }
  fs::remove(probe, ec);
  probe_dir_ = dir;
  const pid_t holder = LockHolder(dir);
  Add("data_dir", "data directory", "ok",
      abs + ": writable" +
          (holder > 0 ? "; in use by process " + std::to_string(holder) +
                            " (a running runlogd: stop it before rebuild, audit or export)"
                      : "; not in use"));
  std::vector<std::string> loose;
  KeyFile(dir + "/signing.key", &loose);
  KeyFile(dir + "/secret.key", &loose);
  if (loose.empty()) {
    Add("keys", "key files", "ok",
        "signing.key and secret.key are readable by their owner only"
        " (or not made yet)");
  } else {
    std::string files, fix = "chmod 600";
    for (const auto& f : loose) files += (files.empty() ? "" : ", ") + f, fix += " " + f;
    Add("keys", "key files", "fail", files + " can be read by other users", fix);
  }
}

void Doctor::KeyFile(const std::string& path, std::vector<std::string>* loose) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) loose->push_back(path);
}

std::string FilesystemName(const std::string& dir) {
  struct statfs s {};
  if (::statfs(dir.c_str(), &s) != 0) return "";
  switch (s.f_type) {
    case EXT4_SUPER_MAGIC:
      return "ext4";
    case XFS_SUPER_MAGIC:
      return "xfs";
    case BTRFS_SUPER_MAGIC:
      return "btrfs";
    case TMPFS_MAGIC:
      return "tmpfs";
    case NFS_SUPER_MAGIC:
      return "nfs";
    case OVERLAYFS_SUPER_MAGIC:
      return "overlayfs";
    default:
      return "";
  }
}

void Doctor::Disk() {
  if (probe_dir_.empty()) {
    Add("fsync", "disk fsync", "skip", "no usable data directory");
    Add("free_space", "free space", "skip", "no usable data directory");
    return;
  }
  const std::string fs_name = FilesystemName(probe_dir_);
  const std::string on = fs_name.empty() ? "" : " on " + fs_name;
  if (o_.fsync_seconds <= 0) {
    Add("fsync", "disk fsync", "skip", "--fsync-seconds 0");
  } else if (const double rate = MeasureFdatasync(probe_dir_, o_.fsync_seconds); rate <= 0) {
    Add("fsync", "disk fsync", "fail", "cannot write and fdatasync a file in " + probe_dir_,
        "check the disk (dmesg) and the directory's permissions", 0.0);
  } else {
    char detail[200];
    std::snprintf(detail, sizeof detail,
                  "%s fdatasync/s%s: a durable append waits for one (%.2f ms); appends that "
                  "arrive meanwhile share it",
                  Grouped(static_cast<uint64_t>(rate)).c_str(), on.c_str(), 1000 / rate);
    const char* slow_fix =
        "put --data on a local SSD: network and throttled cloud disks cap durable appends "
        "(docs/performance.md)";
    if (fs_name == "tmpfs") {
      Add("fsync", "disk fsync", "warn", std::string(detail) + "; tmpfs loses the log at reboot",
          "put --data on a disk", rate);
    } else if (rate < 10) {
      Add("fsync", "disk fsync", "fail", detail, slow_fix, rate);
    } else if (rate < 100) {
      Add("fsync", "disk fsync", "warn", detail, slow_fix, rate);
    } else {
      Add("fsync", "disk fsync", "ok", detail, "", rate);
    }
  }
  struct statvfs v {};
  if (::statvfs(probe_dir_.c_str(), &v) != 0 || v.f_blocks == 0) {
    Add("free_space", "free space", "fail", "statvfs " + probe_dir_ + ": " + std::strerror(errno),
        "check the data directory's filesystem");
    return;
  }
  const double free_bytes = static_cast<double>(v.f_bavail) * v.f_frsize;
  const double percent = 100.0 * v.f_bavail / v.f_blocks;
  const double inodes = v.f_files > 0 ? 100.0 * v.f_favail / v.f_files : 100;
  char detail[200];
  std::snprintf(detail, sizeof detail, "%.1f GiB free of %.1f GiB (%.1f%%), %.0f%% of inodes",
                free_bytes / (1 << 30), static_cast<double>(v.f_blocks) * v.f_frsize / (1 << 30),
                percent, inodes);
  const std::string fix =
      "free space on that disk or move --data to a bigger one: runlog never deletes log records "
      "(docs/operations.md)";
  const double least = std::min(percent, inodes);
  char limits[120];
  std::snprintf(limits, sizeof limits, "; fails below %g%% or 1 GiB, warns below %g%%",
                o_.min_free_percent / 2, o_.min_free_percent);
  if (least < o_.min_free_percent / 2 || free_bytes < (1LL << 30)) {
    Add("free_space", "free space", "fail", detail + std::string(limits), fix, percent);
  } else if (least < o_.min_free_percent) {
    Add("free_space", "free space", "warn", detail + std::string(limits), fix, percent);
  } else {
    Add("free_space", "free space", "ok", detail, "", percent);
  }
}

std::string CreateCommand(const std::string& brokers, const std::string& topic, uint32_t p) {
  return "kafka-topics.sh --bootstrap-server " + brokers + " --create --topic " + topic +
         " --partitions " + std::to_string(p) +
         " --replication-factor 3 --config min.insync.replicas=2 --config retention.ms=-1 "
         "--config retention.bytes=-1 --config cleanup.policy=delete (docs/kafka.md)";
}

void Doctor::Kafka() {
  if (o_.log.uri == "embedded") {
    Add("kafka", "kafka", "skip", "--log embedded");
    return;
  }
  const bool refused = std::any_of(checks_.begin(), checks_.end(), [](const Check& c) {
    return c.id == "options" && c.status == "fail";
  });
  if (refused) {
    Add("kafka", "kafka", "skip", "the options above are refused");
    return;
  }
  const std::string brokers = o_.log.uri.substr(8);
  // librdkafka's own log lines would repeat what the checks say.
  std::vector<std::pair<std::string, std::string>> extra = {{"log_level", "0"}};
  extra.insert(extra.end(), o_.log.kafka_config.begin(), o_.log.kafka_config.end());
  auto conf = events::KafkaClientConf(brokers, "runlog-doctor", extra);
  std::string err;
  std::unique_ptr<RdKafka::Producer> client(RdKafka::Producer::create(conf.get(), err));
  if (!client) {
    Add("kafka_brokers", "kafka brokers", "fail", "cannot make a Kafka client: " + err,
        "check --kafka-config");
    return;
  }
  RdKafka::Metadata* raw = nullptr;
  const auto rc = client->metadata(true, nullptr, &raw, o_.kafka_timeout_ms);
  std::unique_ptr<RdKafka::Metadata> md(raw);
  if (rc != RdKafka::ERR_NO_ERROR) {
    Add("kafka_brokers", "kafka brokers", "fail",
        "no answer from " + brokers + " within " + std::to_string(o_.kafka_timeout_ms) +
            " ms: " + RdKafka::err2str(rc),
        "start the brokers or fix the address; from this host, `nc -vz HOST PORT` must connect; "
        "SASL/SSL settings go in --kafka-config");
    return;
  }
  Add("kafka_brokers", "kafka brokers", "ok",
      std::to_string(md->brokers()->size()) + " brokers answer at " + brokers);
  const RdKafka::TopicMetadata* topic = nullptr;
  std::vector<std::string> missing;
  for (const std::string& name :
       {o_.log.kafka_topic, std::string("runlog.nodes"), std::string("runlog.commands"),
        std::string("runlog.replies"), std::string("runlog.commands.dlq")}) {
    const RdKafka::TopicMetadata* found = nullptr;
    for (const auto* t : *md->topics()) {
      if (t->topic() == name && t->err() == RdKafka::ERR_NO_ERROR) found = t;
    }
    if (name == o_.log.kafka_topic) {
      topic = found;
    } else if (found == nullptr) {
      missing.push_back(name);
    }
  }
  if (topic == nullptr) {
    Add("kafka_topic", "kafka topic", "fail", "topic " + o_.log.kafka_topic + " does not exist",
        CreateCommand(brokers, o_.log.kafka_topic, o_.log.partitions));
    return;
  }
  const size_t partitions = topic->partitions()->size();
  size_t replicas = SIZE_MAX;
  for (const auto* p : *topic->partitions()) replicas = std::min(replicas, p->replicas()->size());
  const std::string shape = "topic " + o_.log.kafka_topic + ": " + std::to_string(partitions) +
                            " partitions, " + std::to_string(replicas) + " replicas";
  if (partitions != o_.log.partitions) {
    Add("kafka_topic", "kafka topic", "fail",
        shape + ", but --partitions is " + std::to_string(o_.log.partitions),
        "start runlogd with --partitions " + std::to_string(partitions) +
            " (a topic's partitions are fixed for ever)");
  } else if (replicas < 3) {
    Add("kafka_topic", "kafka topic", "warn",
        shape + ": losing one broker's disk can lose acknowledged events",
        "use replication factor 3 with min.insync.replicas=2 (kafka-reassign-partitions.sh)");
  } else {
    Add("kafka_topic", "kafka topic", "ok", shape);
  }
  // Real brokers name a controller at once; the mock cluster never does.
  auto config = events::KafkaTopicConfig(
      *client, o_.log.kafka_topic, std::chrono::milliseconds(std::min(o_.kafka_timeout_ms, 2000)));
  if (!config) {
    Add("kafka_topic_config", "kafka topic config", "warn",
        "the brokers do not describe the topic's config (" + config.error().message + ")",
        "check it by hand: retention.ms=-1, retention.bytes=-1, cleanup.policy=delete");
  } else if (std::string why = events::KafkaLog::DeletesRecords(*config); !why.empty()) {
    Add("kafka_topic_config", "kafka topic config", "fail",
        "the topic may delete events, and the log is the source of truth: " + why,
        "kafka-configs.sh --bootstrap-server " + brokers + " --alter --entity-type topics " +
            "--entity-name " + o_.log.kafka_topic +
            " --add-config retention.ms=-1,retention.bytes=-1,cleanup.policy=delete");
  } else {
    Add("kafka_topic_config", "kafka topic config", "ok", "keeps every record");
  }
  if (missing.empty()) {
    Add("kafka_other_topics", "kafka other topics", "ok",
        "runlog.nodes, runlog.commands, runlog.replies and runlog.commands.dlq exist");
  } else {
    std::string names;
    for (const auto& m : missing) names += (names.empty() ? "" : ", ") + m;
    Add("kafka_other_topics", "kafka other topics", "warn",
        names +
            " missing: runlog.nodes is needed by a cluster (not --single-node), the "
            "others by commands over Kafka",
        "create them as docs/kafka.md (\"A real cluster\") shows");
  }
}

// Whether this process may make the namespaces the sandbox helper makes,
// tried in a child; errno, or 0.
int TryNamespaces() {
  const pid_t child = ::fork();
  if (child == 0) {
    const int flags =
        CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET;
    ::_exit(::unshare(flags) == 0 ? 0 : errno);
  }
  int status = 0;
  if (child < 0 || ::waitpid(child, &status, 0) != child || !WIFEXITED(status)) return ECHILD;
  return WEXITSTATUS(status);
}

std::string NamespaceFix() {
  if (ReadFirstLine("/proc/sys/user/max_user_namespaces") == "0") {
    return "sudo sysctl -w user.max_user_namespaces=15000 (and in /etc/sysctl.d/)";
  }
  if (::geteuid() != 0 && ReadFirstLine("/proc/sys/kernel/unprivileged_userns_clone") == "0") {
    return "sudo sysctl -w kernel.unprivileged_userns_clone=1 (and in /etc/sysctl.d/)";
  }
  if (::geteuid() != 0 &&
      ReadFirstLine("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1") {
    return "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor "
           "profile that lets runlog-sandbox make user namespaces";
  }
  return "in a container, run it with --security-opt seccomp=unconfined (Docker) or allow "
         "unshare(CLONE_NEWUSER) in its profile (docs/sandbox.md)";
}

void Doctor::Sandbox() {
  const std::string helper =
      o_.sandbox_helper.empty() ? sandbox::DefaultHelperPath() : o_.sandbox_helper;
  if (::access(helper.c_str(), X_OK) != 0) {
    Add("sandbox_helper", "sandbox helper", "fail", helper + " is missing or not executable",
        "install runlog-sandbox next to runlogd (the build and the Debian package do), or pass "
        "--sandbox-helper");
  } else {
    Add("sandbox_helper", "sandbox helper", "ok", helper);
  }
  if (const int e = TryNamespaces(); e != 0) {
    Add("namespaces", "user namespaces", "fail",
        std::string("unshare(user, mount, pid, ipc, uts, net): ") + std::strerror(e),
        NamespaceFix());
  } else {
    Add("namespaces", "user namespaces", "ok", "user, mount, pid, ipc, uts and net namespaces");
  }
  const std::string seccomp = [] {
    std::ifstream f("/proc/self/status");
    for (std::string line; std::getline(f, line);) {
      if (line.starts_with("Seccomp:")) return line;
    }
    return std::string();
  }();
  const auto& program = sandbox::SeccompProgram();
  if (seccomp.empty()) {
    Add("seccomp", "seccomp", "fail",
        "the kernel has no seccomp (no Seccomp: in /proc/self/status)",
        "use a kernel built with CONFIG_SECCOMP_FILTER (every distribution kernel is)");
  } else if (!program) {
    Add("seccomp", "seccomp", "fail",
        "libseccomp cannot compile the filter: " + program.error().message,
        "sudo apt-get install libseccomp2");
  } else {
    Add("seccomp", "seccomp", "ok",
        "filter of " + std::to_string(program->size() / 8) + " BPF instructions compiled");
  }
  sandbox::Options options;
  options.helper_path = helper;
  sandbox::Request request;
  request.argv = {"/bin/sh", "-c", "exit 0"};
  request.limits.wall = std::chrono::seconds(10);
  auto run = sandbox::Sandbox(options).Run(request);
  if (!run || run->exit_code != 0) {
    Add("sandbox_run", "sandbox run", "fail",
        run ? "/bin/sh -c 'exit 0' exited " + std::to_string(run->exit_code) + ": " +
                  run->stderr_data.substr(0, 200)
            : run.error().message,
        "fix the failures above; docs/sandbox.md says what the sandbox needs");
    return;
  }
  Add("sandbox_run", "sandbox run", "ok",
      "/bin/sh ran sandboxed in " + std::to_string(run->wall_ms) + " ms");
  if (run->cgroup_mode == "none") {
    Add("cgroups", "cgroups", "warn",
        "this user cannot make cgroups: a step's memory and process count are capped by "
        "rlimits only",
        "run runlogd as root, or in a cgroup whose memory and pids controllers are delegated "
        "to its user (systemd: Delegate=yes); docs/sandbox.md, \"No cgroups\"");
  } else {
    Add("cgroups", "cgroups", "ok",
        "cgroup " + run->cgroup_mode + " (for runlog here; runlogd's own cgroup may differ)");
  }
}

std::string Json(const std::vector<Check>& checks, int warnings, int failures) {
  std::string rows;
  for (const Check& c : checks) {
    events::Payload row;
    row.Str("check", c.id).Str("status", c.status).Str("detail", c.detail);
    if (!c.fix.empty()) row.Str("fix", c.fix);
    if (c.value) {
      char number[32];
      std::snprintf(number, sizeof number, "%.1f", *c.value);
      row.Raw("value", number);
    }
    rows += (rows.empty() ? "" : ",") + row.Build();
  }
  return events::Payload()
      .Raw("checks", "[" + rows + "]")
      .Int("warnings", warnings)
      .Int("failures", failures)
      .Build();
}

int RunDoctor(DoctorOptions o) {
  // runlogd's own parse of --kafka-config, then its own check of the options.
  auto parsed = events::ParseKafkaConfig(o.kafka_config);
  if (parsed) o.log.kafka_config = std::move(*parsed);
  Doctor doctor(o);
  if (!parsed) {
    doctor.Add("options", "runlogd options", "fail", parsed.error().message,
               "write each as KEY=VALUE");
  } else if (auto checked = events::CheckLogOptions(o.log); !checked) {
    doctor.Add("options", "runlogd options", "fail",
               "runlogd would refuse these: " + checked.error().message,
               "fix --log, --partitions or --kafka-config (docs/operations.md)");
  } else {
    doctor.Add("options", "runlogd options", "ok",
               "--log " + o.log.uri + ", " + std::to_string(o.log.partitions) + " partitions");
  }
  doctor.DataDir();
  doctor.Disk();
  doctor.Kafka();
  doctor.Sandbox();
  int warnings = 0, failures = 0;
  for (const Check& c : doctor.checks()) {
    warnings += c.status == "warn";
    failures += c.status == "fail";
  }
  if (o.json) {
    std::printf("%s\n", Json(doctor.checks(), warnings, failures).c_str());
    return failures > 0 ? 1 : 0;
  }
  const bool color = ::isatty(STDOUT_FILENO) == 1 && std::getenv("NO_COLOR") == nullptr;
  const auto paint = [&](const std::string& status) {
    const char* code = status == "ok"     ? "32"
                       : status == "warn" ? "33"
                       : status == "fail" ? "31"
                                          : "2";
    char cell[32];
    std::snprintf(cell, sizeof cell, "%-5s", status.c_str());
    return color ? "\x1b[" + std::string(code) + "m" + cell + "\x1b[0m" : std::string(cell);
  };
  std::printf("runlog doctor: --data %s, --log %s\n\n", o.log.data_dir.c_str(), o.log.uri.c_str());
  for (const Check& c : doctor.checks()) {
    std::printf("  %s %-19s %s\n", paint(c.status).c_str(), c.title.c_str(), c.detail.c_str());
    if (!c.fix.empty()) std::printf("  %-25s fix: %s\n", "", c.fix.c_str());
  }
  std::printf("\n%zu checks: %d failed, %d warned\n", doctor.checks().size(), failures, warnings);
  return failures > 0 ? 1 : 0;
}

}  // namespace

Runner AddDoctor(CLI::App& app) {
  auto o = std::make_shared<DoctorOptions>();
  auto* sub = app.add_subcommand(
      "doctor",
      "check this machine for runlogd: data dir, disk, Kafka, sandbox; each failure with a fix");
  AddLogOptions(sub, &o->log);
  sub->add_option("--kafka-config", o->kafka_config,
                  "KEY=VALUE librdkafka property, as runlogd takes it (repeatable)");
  sub->add_option("--kafka-connect-timeout-ms", o->kafka_timeout_ms,
                  "how long to wait for the brokers")
      ->check(CLI::Range(100, 600000))
      ->capture_default_str();
  sub->add_option("--fsync-seconds", o->fsync_seconds, "how long to measure fdatasync (0: skip)")
      ->check(CLI::Range(0.0, 60.0))
      ->capture_default_str();
  sub->add_option("--min-free-percent", o->min_free_percent,
                  "warn below this much free disk, fail below half of it")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  sub->add_option("--sandbox-helper", o->sandbox_helper,
                  "the runlog-sandbox executable (default: next to runlog)");
  sub->add_flag("--json", o->json, "print the checks as one JSON object");
  return [o] { return RunDoctor(*o); };
}

}  // namespace runlog::cli
