// The HTTP request path in process: Api::Handle on a real runlogd (embedded
// log in a temporary directory, no executors), with the answer captured
// instead of sent. The input is a request as text:
//   METHOD PATH[?QUERY]\n(NAME: VALUE\n)*\nBODY
// Every request is answered, never with a 500 (INTERNAL): bad input is the
// client's, and says so with a 4xx.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "infra/app/application.h"

namespace {

runlog::app::Application* Server() {
  static runlog::app::Application* app = [] {
    char dir[] = "/tmp/runlog-fuzz-api-XXXXXX";
    if (::mkdtemp(dir) == nullptr) std::abort();
    runlog::app::Config c;
    c.log.data_dir = dir;
    c.log.partitions = 2;
    c.http.port = 0;
    c.executor_slots = 0;
    c.admin_key = "rl_live_fuzzadminkey";
    c.api.max_wait_seconds = 0;  // a claim never parks
    c.webhooks.reset();
    c.checkpoint_every_ms = std::chrono::milliseconds(3'600'000);
    auto* a = new runlog::app::Application(c);
    if (!a->Start()) std::abort();
    return a;
  }();
  return app;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  runlog::api::Call call;
  const size_t line_end = in.find('\n');
  std::string_view line = in.substr(0, line_end);
  in = line_end == std::string_view::npos ? std::string_view() : in.substr(line_end + 1);
  const size_t space = line.find(' ');
  if (space == std::string_view::npos) return 0;
  call.method = std::string(line.substr(0, space));
  std::string_view target = line.substr(space + 1);
  const size_t q = target.find('?');
  call.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) {
    std::string_view query = target.substr(q + 1);
    while (!query.empty()) {
      const size_t amp = query.find('&');
      std::string_view pair = query.substr(0, amp);
      const size_t eq = pair.find('=');
      call.query[std::string(pair.substr(0, eq))] =
          eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1));
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    }
  }
  while (!in.empty() && in[0] != '\n') {
    const size_t nl = in.find('\n');
    std::string_view header = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    const size_t colon = header.find(": ");
    if (colon == std::string_view::npos) continue;
    std::string name(header.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const std::string value(header.substr(colon + 2));
    if (name == "authorization") {
      call.authorization = value;
    } else if (name == "content-type") {
      call.content_type = value;
    } else if (name == "idempotency-key") {
      call.idempotency_key = value;
    } else {
      call.headers[name] = value;
    }
  }
  if (!in.empty()) in.remove_prefix(1);
  call.body = std::string(in);
  auto reply = std::make_shared<runlog::api::CapturedReply>();
  auto answer = reply->Answer();
  Server()->api().Handle(std::move(call), reply);
  if (answer.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
    std::fprintf(stderr, "no answer within 20 s\n");
    std::abort();
  }
  const std::string wire = answer.get();
  if (wire.starts_with("500 ")) {
    std::fprintf(stderr, "500: %s\n", wire.c_str());
    std::abort();
  }
  return 0;
}
