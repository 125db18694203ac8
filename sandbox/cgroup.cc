#include "sandbox/cgroup.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace runlog::sandbox::cgroup {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool WriteFile(const std::string& path, const std::string& text, std::string* note) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  bool ok = fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  int saved = errno;
  if (fd >= 0) ::close(fd);
  if (!ok && note) *note += "write " + path + ": " + std::strerror(saved) + "; ";
  return ok;
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

bool IsFs(const std::string& path, int64_t magic) {
  struct statfs st {};
  return ::statfs(path.c_str(), &st) == 0 && static_cast<int64_t>(st.f_type) == magic;
}

// The value after `key ` in a "key value" per line file (memory.events, memory.oom_control).
int64_t KeyedValue(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string k;
  int64_t v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

// This process's cgroup path for a v1 controller ("" for the v2 line), from /proc/self/cgroup.
std::string OwnCgroup(const std::string& controller) {
  std::istringstream in(ReadFile("/proc/self/cgroup"));
  for (std::string line; std::getline(in, line);) {
    size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string list = "," + line.substr(a + 1, b - a - 1) + ",";
    bool match =
        controller.empty() ? list == ",," : list.find("," + controller + ",") != std::string::npos;
    if (match) return line.substr(b + 1) == "/" ? "" : line.substr(b + 1);
  }
  return "";
}

std::string JoinPath(const std::string& base, const std::string& rel) {
  std::string out = base;
  if (!rel.empty() && rel.front() != '/') out += '/';
  out += rel;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

struct Place {
  std::string controller;  // v1 controller name; "" for v2
  std::string dir;         // the parent directory of per-run groups
};
struct Layout {
  Mode mode = Mode::kNone;
  std::vector<Place> places;
  std::string note;
};

bool MakeDirs(const std::string& dir, std::string* note) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec && note) *note += "mkdir " + dir + ": " + ec.message() + "; ";
  return !ec && ::access(dir.c_str(), W_OK) == 0;
}

// v2: enable memory and pids for the children of every directory from `from` down
// to `to`, where the parent offers them. Failures (EBUSY when a directory holds
// processes itself) just leave the leaf without that controller.
void EnableControllers(const std::string& from, const std::string& to) {
  std::filesystem::path dir = from;
  std::filesystem::path rest = std::filesystem::path(to).lexically_relative(from);
  std::vector<std::filesystem::path> chain = {dir};
  for (const auto& part : rest) {
    if (part == "." || part.empty()) continue;
    dir /= part;
    chain.push_back(dir);
  }
  for (const auto& d : chain) {
    std::string offered = " " + ReadFile(d / "cgroup.controllers") + " ";
    for (const char* c : {"memory", "pids"}) {
      std::string enabled = " " + ReadFile(d / "cgroup.subtree_control") + " ";
      if (offered.find(c) != std::string::npos && enabled.find(c) == std::string::npos)
        WriteFile(d / "cgroup.subtree_control", std::string("+") + c, nullptr);
    }
  }
}

Layout ResolveParents(const Settings& s) {
  Layout layout;
  if (IsFs(s.root, CGROUP2_SUPER_MAGIC)) {
    std::string own = JoinPath(s.root, OwnCgroup(""));
    std::string dir = JoinPath(s.root, s.parent.empty() ? OwnCgroup("") + "/runlog" : s.parent);
    if (!MakeDirs(dir, &layout.note)) return layout;
    EnableControllers(s.parent.empty() ? own : std::filesystem::path(dir).parent_path().string(),
                      dir);
    layout.mode = Mode::kV2;
    layout.places.push_back({"", dir});
    return layout;
  }
  for (const char* controller : {"memory", "pids"}) {
    std::string mount = s.root + "/" + controller;
    if (!IsFs(mount, CGROUP_SUPER_MAGIC)) {
      layout.note += std::string("no cgroup v1 ") + controller + " controller at " + mount + "; ";
      continue;
    }
    std::string dir =
        JoinPath(mount, s.parent.empty() ? OwnCgroup(controller) + "/runlog" : s.parent);
    if (MakeDirs(dir, &layout.note)) layout.places.push_back({controller, dir});
  }
  if (!layout.places.empty()) layout.mode = Mode::kV1;
  return layout;
}

}  // namespace

const char* ModeName(Mode mode) {
  switch (mode) {
    case Mode::kV1:
      return "v1";
    case Mode::kV2:
      return "v2";
    case Mode::kNone:
      break;
  }
  return "none";
}

Mode DetectMode(const Settings& settings) { return ResolveParents(settings).mode; }

std::unique_ptr<Group> Group::Create(const Settings& s, const std::string& name,
                                     std::string* note) {
  Layout layout = ResolveParents(s);
  *note += layout.note;
  std::vector<std::string> dirs;
  std::vector<std::string> controllers;
  for (const Place& place : layout.places) {
    std::string leaf = place.dir + "/" + name;
    if (::mkdir(leaf.c_str(), 0755) != 0 && errno != EEXIST) {
      *note += "mkdir " + leaf + ": " + std::strerror(errno) + "; ";
      continue;
    }
    dirs.push_back(leaf);
    controllers.push_back(place.controller);
  }
  if (dirs.empty()) return nullptr;
  std::unique_ptr<Group> group(new Group(layout.mode, dirs));
  std::string memory = std::to_string(s.memory_bytes), pids = std::to_string(s.max_processes);
  for (size_t i = 0; i < dirs.size(); ++i) {
    const std::string& d = dirs[i];
    if (controllers[i] == "memory") {
      if (WriteFile(d + "/memory.limit_in_bytes", memory, note)) group->memory_dir_ = d;
      if (Exists(d + "/memory.memsw.limit_in_bytes"))
        WriteFile(d + "/memory.memsw.limit_in_bytes", memory, note);
    } else if (controllers[i] == "pids") {
      group->limits_processes_ = WriteFile(d + "/pids.max", pids, note);
    } else {  // v2: whichever controllers the parent delegated
      if (Exists(d + "/memory.max") && WriteFile(d + "/memory.max", memory, note))
        group->memory_dir_ = d;
      if (Exists(d + "/memory.swap.max")) WriteFile(d + "/memory.swap.max", "0", note);
      if (Exists(d + "/pids.max"))
        group->limits_processes_ = WriteFile(d + "/pids.max", pids, note);
      if (group->memory_dir_.empty()) *note += "v2 memory controller not delegated to " + d + "; ";
      if (!group->limits_processes_) *note += "v2 pids controller not delegated to " + d + "; ";
    }
  }
  return group;
}

std::unique_ptr<Group> Group::Open(const Settings& s, const std::string& name) {
  Layout layout = ResolveParents(s);
  std::vector<std::string> dirs;
  for (const Place& place : layout.places) {
    if (Exists(place.dir + "/" + name)) dirs.push_back(place.dir + "/" + name);
  }
  if (dirs.empty()) return nullptr;
  return std::unique_ptr<Group>(new Group(layout.mode, dirs));
}

Group::~Group() { Remove(); }

bool Group::Join(pid_t pid, std::string* note) {
  for (const std::string& d : dirs_) {
    if (!WriteFile(d + "/cgroup.procs", std::to_string(pid), note)) return false;
  }
  return true;
}

bool Group::MemoryExceeded() const {
  if (memory_dir_.empty()) return false;
  if (mode_ == Mode::kV2) {
    std::string events = ReadFile(memory_dir_ + "/memory.events");
    return KeyedValue(events, "oom_kill") > 0 || KeyedValue(events, "max") > 0;
  }
  return KeyedValue(ReadFile(memory_dir_ + "/memory.oom_control"), "oom_kill") > 0 ||
         std::atoll(ReadFile(memory_dir_ + "/memory.failcnt").c_str()) > 0;
}

void Group::KillAll() {
  using Clock = std::chrono::steady_clock;
  for (const std::string& d : dirs_) {
    if (mode_ == Mode::kV2 && Exists(d + "/cgroup.kill"))
      WriteFile(d + "/cgroup.kill", "1", nullptr);
    auto deadline = Clock::now() + std::chrono::seconds(2);
    while (true) {
      std::istringstream procs(ReadFile(d + "/cgroup.procs"));
      bool any = false;
      for (pid_t pid; procs >> pid;) {
        any = true;
        ::kill(pid, SIGKILL);
      }
      if (!any || Clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
}

void Group::Remove() {
  if (removed_) return;
  removed_ = true;
  KillAll();
  for (const std::string& d : dirs_) {
    for (int attempt = 0; attempt < 200 && ::rmdir(d.c_str()) != 0 && errno == EBUSY; ++attempt)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace runlog::sandbox::cgroup
