#include "sandbox/protocol.h"

#include <charconv>
#include <map>
#include <vector>

namespace runlog::sandbox::wire {
namespace {

class FieldWriter {
 public:
  void Put(std::string_view key, std::string_view value) {
    out_.append(key);
    out_ += ' ';
    out_ += std::to_string(value.size());
    out_ += '\n';
    out_.append(value);
    out_ += '\n';
  }
  void Int(std::string_view key, int64_t value) { Put(key, std::to_string(value)); }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

bool ParseInt(std::string_view text, int64_t& value) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

// Field name -> values in order (argv repeats "arg").
using Fields = std::map<std::string, std::vector<std::string>, std::less<>>;

std::optional<Fields> ParseFields(std::string_view in) {
  Fields fields;
  while (!in.empty()) {
    size_t space = in.find(' ');
    size_t newline = in.find('\n');
    if (space == std::string_view::npos || newline == std::string_view::npos || newline < space)
      return std::nullopt;
    int64_t length = 0;
    if (!ParseInt(in.substr(space + 1, newline - space - 1), length) || length < 0)
      return std::nullopt;
    size_t start = newline + 1;
    if (in.size() < start + static_cast<size_t>(length) + 1 || in[start + length] != '\n')
      return std::nullopt;
    fields[std::string(in.substr(0, space))].emplace_back(in.substr(start, length));
    in.remove_prefix(start + length + 1);
  }
  return fields;
}

// Reads typed values out of Fields; any missing or malformed one sets ok = false.
class FieldReader {
 public:
  explicit FieldReader(const Fields& fields) : fields_(fields) {}
  std::string Str(std::string_view key) {
    auto it = fields_.find(key);
    if (it == fields_.end() || it->second.size() != 1) {
      ok = false;
      return {};
    }
    return it->second.front();
  }
  int64_t Int(std::string_view key) {
    int64_t value = 0;
    if (!ParseInt(Str(key), value)) ok = false;
    return value;
  }
  std::vector<std::string> All(std::string_view key) {
    auto it = fields_.find(key);
    return it == fields_.end() ? std::vector<std::string>{} : it->second;
  }
  bool ok = true;

 private:
  const Fields& fields_;
};

}  // namespace

std::string EncodeRequest(const HelperRequest& r) {
  FieldWriter w;
  w.Int("parent_pid", r.parent_pid);
  w.Put("cgroup_root", r.cgroup_root);
  w.Put("cgroup_parent", r.cgroup_parent);
  w.Put("seccomp_bpf", r.seccomp_bpf);
  w.Int("host_id_if_root", r.host_id_if_root);
  const Limits& l = r.request.limits;
  w.Int("wall_ms", l.wall.count());
  w.Int("cpu_seconds", l.cpu_seconds);
  w.Int("memory_bytes", l.memory_bytes);
  w.Int("max_processes", l.max_processes);
  w.Int("file_size_bytes", l.file_size_bytes);
  w.Int("open_files", l.open_files);
  w.Int("output_bytes", static_cast<int64_t>(l.output_bytes));
  w.Int("network", l.network ? 1 : 0);
  for (const std::string& arg : r.request.argv) w.Put("arg", arg);
  w.Put("stdin", r.request.stdin_data);
  return w.Take();
}

std::optional<HelperRequest> DecodeRequest(std::string_view payload) {
  std::optional<Fields> fields = ParseFields(payload);
  if (!fields) return std::nullopt;
  FieldReader in(*fields);
  HelperRequest r;
  r.parent_pid = in.Int("parent_pid");
  r.cgroup_root = in.Str("cgroup_root");
  r.cgroup_parent = in.Str("cgroup_parent");
  r.seccomp_bpf = in.Str("seccomp_bpf");
  r.host_id_if_root = in.Int("host_id_if_root");
  Limits& l = r.request.limits;
  l.wall = std::chrono::milliseconds(in.Int("wall_ms"));
  l.cpu_seconds = in.Int("cpu_seconds");
  l.memory_bytes = in.Int("memory_bytes");
  l.max_processes = in.Int("max_processes");
  l.file_size_bytes = in.Int("file_size_bytes");
  l.open_files = in.Int("open_files");
  l.output_bytes = static_cast<size_t>(in.Int("output_bytes"));
  l.network = in.Int("network") != 0;
  r.request.argv = in.All("arg");
  r.request.stdin_data = in.Str("stdin");
  if (!in.ok || r.request.argv.empty()) return std::nullopt;
  return r;
}

std::string EncodeReport(const Report& r) {
  FieldWriter w;
  w.Put("error", r.error);
  w.Int("exit_code", r.exit_code);
  w.Int("term_signal", r.term_signal);
  w.Int("timed_out", r.timed_out);
  w.Int("cancelled", r.cancelled);
  w.Int("memory_exceeded", r.memory_exceeded);
  w.Int("exec_errno", r.exec_errno);
  w.Put("cgroup_mode", r.cgroup_mode);
  w.Put("cgroup_note", r.cgroup_note);
  return w.Take();
}

std::optional<Report> DecodeReport(std::string_view payload) {
  std::optional<Fields> fields = ParseFields(payload);
  if (!fields) return std::nullopt;
  FieldReader in(*fields);
  Report r;
  r.error = in.Str("error");
  r.exit_code = static_cast<int>(in.Int("exit_code"));
  r.term_signal = static_cast<int>(in.Int("term_signal"));
  r.timed_out = in.Int("timed_out") != 0;
  r.cancelled = in.Int("cancelled") != 0;
  r.memory_exceeded = in.Int("memory_exceeded") != 0;
  r.exec_errno = static_cast<int>(in.Int("exec_errno"));
  r.cgroup_mode = in.Str("cgroup_mode");
  r.cgroup_note = in.Str("cgroup_note");
  if (!in.ok) return std::nullopt;
  return r;
}

std::string Frame(std::string_view payload) {
  std::string out = std::to_string(payload.size());
  out += '\n';
  out.append(payload);
  return out;
}

Result<std::optional<std::string>> TakeFrame(std::string& buffer) {
  size_t newline = buffer.find('\n');
  if (newline == std::string::npos) {
    if (buffer.size() > 20) return Fail(kSandboxError, "malformed frame header");
    return std::optional<std::string>();
  }
  int64_t length = 0;
  if (!ParseInt(std::string_view(buffer).substr(0, newline), length) || length < 0 ||
      static_cast<size_t>(length) > kMaxFrameBytes) {
    return Fail(kSandboxError, "malformed frame header");
  }
  if (buffer.size() - newline - 1 < static_cast<size_t>(length)) {
    return std::optional<std::string>();
  }
  std::string payload = buffer.substr(newline + 1, length);
  buffer.erase(0, newline + 1 + length);
  return std::optional<std::string>(std::move(payload));
}

}  // namespace runlog::sandbox::wire
