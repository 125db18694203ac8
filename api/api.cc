#include "api/api.h"

#include <strings.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>
#include <map>

#include "api/exchange.h"
#include "api/openapi.h"
#include "api/render.h"
#include "api/streams.h"
#include "api/ui.h"
#include "events/canonical_json.h"
#include "events/local_store.h"
#include "events/sha256.h"

namespace runlog::api {
namespace {

bool AcceptableContentType(const std::string& type) {
  if (type.empty()) return true;
  std::string base = type.substr(0, type.find(';'));
  while (!base.empty() && base.back() == ' ') base.pop_back();
  for (char& c : base) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // curl -d sends form encoding by default; the seeds' examples rely on it.
  return base == "application/json" || base.ends_with("+json") ||
         base == "application/x-www-form-urlencoded" || base == "text/plain";
}

std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (slash > start) parts.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}

// The key of "Authorization: Bearer <key>", the scheme in any case (RFC 9110).
std::optional<std::string> BearerKey(const std::string& auth) {
  const size_t key_at = auth.find_first_not_of(' ', 6);
  if (auth.size() < 7 || strncasecmp(auth.c_str(), "bearer", 6) != 0 || auth[6] != ' ' ||
      key_at == std::string::npos) {
    return std::nullopt;
  }
  return auth.substr(key_at);
}

// `s` for a query string: unreserved characters as they are, others %XX.
std::string QueryEscape(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// The task statuses a ?status= filter names, comma-separated: runlog's own,
// or the name a seed's API gives some of them (docs/api.md). Empty: any.
bool StatusFilter(const std::string& filter, std::vector<std::string>* statuses) {
  static const std::vector<std::pair<std::string_view, std::vector<std::string>>> kAliases = {
      {"pending", {"created", "planned", "queued"}},  // Ariftly
      {"complete", {"succeeded"}},                    // Ariftly
      {"completed", {"succeeded"}},
      {"claimed", {"running"}},  // Orchestrion
  };
  size_t start = 0;
  while (start < filter.size()) {
    size_t comma = filter.find(',', start);
    if (comma == std::string::npos) comma = filter.size();
    const std::string name = filter.substr(start, comma - start);
    start = comma + 1;
    std::vector<std::string> named;
    events::TaskStatus parsed;
    if (events::ParseStatus(name, &parsed)) named = {name};
    for (const auto& [alias, meant] : kAliases) {
      if (alias == name) named = meant;
    }
    if (named.empty()) return false;
    for (std::string& s : named) {
      if (std::find(statuses->begin(), statuses->end(), s) == statuses->end()) {
        statuses->push_back(std::move(s));
      }
    }
  }
  return true;
}

// If-None-Match: "*" or a list of entity tags, weak ones (W/"…") compared
// weakly as RFC 9110 13.1.2 asks.
bool EtagMatches(std::string_view header, std::string_view etag) {
  for (size_t start = 0; start < header.size();) {
    const size_t comma = std::min(header.find(',', start), header.size());
    std::string_view tag = header.substr(start, comma - start);
    while (!tag.empty() && (tag.front() == ' ' || tag.front() == '\t')) tag.remove_prefix(1);
    while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) tag.remove_suffix(1);
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag == "*" || tag == etag) return true;
    start = comma + 1;
  }
  return false;
}

bool HexDecode(const std::string& s, std::string* out) {
  if (s.size() % 2 != 0 || s.size() > 512) return false;
  for (size_t i = 0; i < s.size(); i += 2) {
    int v = 0;
    for (char c : s.substr(i, 2)) {
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= c - '0';
      else if (c >= 'a' && c <= 'f')
        v |= c - 'a' + 10;
      else
        return false;
    }
    out->push_back(static_cast<char>(v));
  }
  return true;
}

std::vector<NextAction> TaskActions(const events::Task& t) {
  const std::string base = "/v1/tasks/" + t.id;
  if (events::IsTerminal(t.status)) return {Act("get_trace", true, "GET", base + "/trace")};
  return {Act("get_task", true, "GET", base), Act("cancel_task", false, "POST", base + "/cancel")};
}

}  // namespace

bool ParseBody(Api::Exchange& x, size_t max_bytes, bool required, std::string* request_hash) {
  if (x.call.body_too_large || x.call.body.size() > max_bytes) {
    x.Error(codes::kPayloadTooLarge, "the body is over " + std::to_string(max_bytes) + " bytes");
    return false;
  }
  if (!AcceptableContentType(x.call.content_type)) {
    x.Error(codes::kUnsupportedMediaType,
            "send JSON (Content-Type: application/json), not " + x.call.content_type);
    return false;
  }
  if (x.call.body.empty()) {
    if (required) {
      x.Error(codes::kValidationError, "a JSON object body is required", R"({"field":"$"})");
      return false;
    }
    x.body.SetObject();
    if (request_hash) *request_hash = events::Sha256Hex("{}");
    return true;
  }
  size_t long_number = std::string_view::npos;
  const bool parsed =
      json::ParseUntrusted<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag |
                           rapidjson::kParseFullPrecisionFlag>(x.call.body, &x.body, &long_number);
  if (long_number != std::string_view::npos) {
    x.Error(codes::kInvalidJson, json::LongNumberMessage(long_number),
            "{\"position\":" + std::to_string(long_number) + "}");
    return false;
  }
  if (!parsed) {
    const size_t at = x.body.GetErrorOffset();
    x.Error(codes::kInvalidJson, "the body is not valid JSON (byte " + std::to_string(at) + ")",
            "{\"position\":" + std::to_string(at) + "}");
    return false;
  }
  if (!x.body.IsObject()) {
    x.Error(codes::kValidationError, "the body must be a JSON object", R"({"field":"$"})");
    return false;
  }
  // Canonical form checks depth, duplicate keys and surrogates for every body;
  // its hash is only needed to match an Idempotency-Key.
  std::string canonical;
  if (auto s = events::WriteCanonical(x.body, &canonical); !s) {
    x.Error(codes::kValidationError, s.error().message, R"({"field":"$"})");
    return false;
  }
  if (request_hash) *request_hash = events::Sha256Hex(canonical);
  return true;
}

void Api::ServeUi(Exchange& x, const std::string& path) {
  x.route = "ui";
  // Every answer under /ui/, errors included.
  std::vector<std::pair<std::string, std::string>> headers = {{"Content-Security-Policy", kUiCsp},
                                                              {"X-Content-Type-Options", "nosniff"},
                                                              {"X-Frame-Options", "DENY"},
                                                              {"Referrer-Policy", "no-referrer"}};
  if (x.call.method != "GET") {
    headers.emplace_back("Allow", "GET");
    return x.Error(codes::kMethodNotAllowed, "use GET " + path, "", "", -1, headers);
  }
  if (!path.starts_with("/ui/")) {  // "/", "/ui"
    return x.Finish(302, "text/plain", "the dashboard is at /ui/\n", {{"Location", "/ui/"}});
  }
  const std::string name = path == "/ui/" ? "index.html" : path.substr(4);
  const auto file = UiFiles().find(name);
  if (file == UiFiles().end()) {
    return x.Error(codes::kNotFound, "no file " + path, "", "", -1, headers);
  }
  const UiFile& ui = file->second;
  // index.html is checked on every load (ETag, 304); the files it names carry
  // their hash in the URL, so that URL's answer never changes.
  const std::string etag = "\"" + std::string(ui.etag) + "\"";
  const auto version = x.call.query.find("v");
  const bool fixed = version != x.call.query.end() && version->second == ui.etag;
  headers.emplace_back("ETag", etag);
  headers.emplace_back("Cache-Control", fixed ? "public, max-age=31536000, immutable" : "no-cache");
  const auto match = x.call.headers.find("if-none-match");
  if (match != x.call.headers.end() && EtagMatches(match->second, etag)) {
    return x.Finish(304, "", "", headers);
  }
  x.Finish(200, std::string(ui.content_type), std::string(ui.body), headers);
}

void Api::Handle(Call call, std::shared_ptr<Reply> reply) {
  auto x = std::make_shared<Exchange>(std::move(call), std::move(reply), deps_);
  std::string path = x->call.path;
  if (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path == "/" || path == "/ui" || path.starts_with("/ui/")) return ServeUi(*x, x->call.path);
  if (path == "/healthz" || path == "/readyz" || path == "/metrics") {
    x->route = path.substr(1);
    if (x->call.method != "GET") {
      return x->Error(codes::kMethodNotAllowed, "use GET " + path, "", "", -1, {{"Allow", "GET"}});
    }
    if (path == "/healthz") {
      return x->Send(200,
                     events::Payload()
                         .Str("status", "ok")
                         .Str("log", deps_.log->Describe())
                         .Int("partitions", deps_.log->partition_count()),
                     {});
    }
    if (path == "/readyz") return Readyz(*x);
    for (uint32_t p = 0; p < deps_.log->partition_count(); ++p) {
      if (auto end = deps_.log->EndOffset(p)) {
        deps_.metrics->ProjectionLag(p, static_cast<double>(*end - deps_.projector->applied(p)));
      }
    }
    const services::PartitionWriter::Held held = deps_.tasks->HeldNow();
    deps_.metrics->WriterState(held.tasks, held.memory_bytes);
    const events::StoreMemory stores = events::ProcessStoreMemory();
    deps_.metrics->StoreMemory(stores.block_cache_bytes, stores.memtable_bytes);
    return x->Finish(200, "text/plain; version=0.0.4", deps_.metrics->Serialize(), {});
  }
  for (const char* prefix : {"/api/v1/", "/v1/"}) {
    if (path.starts_with(prefix)) {
      x->call.path = path.substr(std::string(prefix).size() - 1);
      return Route(*x);
    }
  }
  x->Error(codes::kNotFound, "no route " + path + " (the API is under /v1)");
}

const std::vector<Api::RouteEntry>& Api::Routes() {
  using X = std::shared_ptr<Exchange>;
  using Id = const std::string&;
  static const std::vector<RouteEntry> kRoutes = {
      {"POST",
       {"keys", "register"},
       "register_key",
       "",
       [](Api& a, X x, Id) { a.RegisterKey(std::move(x)); }},
      {"PUT",
       {"accounts", "{id}", "plan"},
       "set_account_plan",
       "admin",
       [](Api& a, X x, Id id) { a.SetAccountPlan(std::move(x), id); }},
      {"POST",
       {"agents"},
       "register_agent",
       "write",
       [](Api& a, X x, Id id) { a.RegisterAgent(std::move(x), id); }},
      {"PUT",
       {"agents", "{id}"},
       "register_agent",
       "write",
       [](Api& a, X x, Id id) { a.RegisterAgent(std::move(x), id); }},
      {"GET",
       {"agents", "{id}"},
       "get_agent",
       "read",
       [](Api& a, X x, Id id) { a.GetAgent(*x, id); }},
      {"GET", {"tasks"}, "list_tasks", "read", [](Api& a, X x, Id) { a.ListTasks(*x); }},
      {"GET",
       {"openapi.json"},
       "get_openapi",
       "",
       [](Api&, X x, Id) { x->Finish(200, "application/json", std::string(kOpenApiJson), {}); }},
      {"POST",
       {"tasks", "{id}", "artifacts"},
       "add_artifact",
       "worker",
       [](Api& a, X x, Id id) { a.AddArtifact(std::move(x), id); }},
      {"GET",
       {"artifacts"},
       "list_artifacts",
       "read",
       [](Api& a, X x, Id) { a.ListArtifacts(*x); }},
      {"GET",
       {"artifacts", "{id}"},
       "get_artifact",
       "read",
       [](Api& a, X x, Id id) { a.GetArtifact(*x, id); }},
      {"POST",
       {"artifacts", "{id}", "approve"},
       "approve_artifact",
       "write",
       [](Api& a, X x, Id id) { a.DecideApproval(std::move(x), id, "approved"); }},
      {"POST",
       {"artifacts", "{id}", "reject"},
       "reject_artifact",
       "write",
       [](Api& a, X x, Id id) { a.DecideApproval(std::move(x), id, "rejected"); }},
      {"DELETE",
       {"artifacts", "{id}"},
       "delete_artifact",
       "write",
       [](Api& a, X x, Id id) { a.DeleteArtifact(*x, id); }},
      {"POST",
       {"webhooks"},
       "create_webhook",
       "write",
       [](Api& a, X x, Id) { a.CreateWebhook(std::move(x)); }},
      {"GET", {"webhooks"}, "list_webhooks", "read", [](Api& a, X x, Id) { a.ListWebhooks(*x); }},
      {"GET",
       {"webhooks", "{id}"},
       "get_webhook",
       "read",
       [](Api& a, X x, Id id) { a.GetWebhook(*x, id); }},
      {"DELETE",
       {"webhooks", "{id}"},
       "delete_webhook",
       "write",
       [](Api& a, X x, Id id) { a.DeleteWebhook(std::move(x), id); }},
      {"GET",
       {"webhooks", "{id}", "deliveries"},
       "list_deliveries",
       "read",
       [](Api& a, X x, Id id) { a.ListDeliveries(*x, id); }},
      {"POST",
       {"webhooks", "{id}", "deliveries", "{id}", "redeliver"},
       "redeliver",
       "write",
       [](Api& a, X x, Id id) { a.Redeliver(std::move(x), id); }},
      {"POST",
       {"triggers"},
       "create_trigger",
       "write",
       [](Api& a, X x, Id) { a.CreateTrigger(std::move(x)); }},
      {"GET", {"triggers"}, "list_triggers", "read", [](Api& a, X x, Id) { a.ListTriggers(*x); }},
      {"GET",
       {"triggers", "{id}"},
       "get_trigger",
       "read",
       [](Api& a, X x, Id id) { a.GetTrigger(*x, id); }},
      {"DELETE",
       {"triggers", "{id}"},
       "delete_trigger",
       "write",
       [](Api& a, X x, Id id) { a.SetTriggerState(std::move(x), id, "deleted"); }},
      {"POST",
       {"triggers", "{id}", "pause"},
       "pause_trigger",
       "write",
       [](Api& a, X x, Id id) { a.SetTriggerState(std::move(x), id, "paused"); }},
      {"POST",
       {"triggers", "{id}", "resume"},
       "resume_trigger",
       "write",
       [](Api& a, X x, Id id) { a.SetTriggerState(std::move(x), id, "active"); }},
      {"GET",
       {"triggers", "{id}", "fires"},
       "list_fires",
       "read",
       [](Api& a, X x, Id id) { a.ListFires(*x, id); }},
      {"POST",
       {"channels", "{id}", "inbound"},
       "channel_inbound",
       "",
       [](Api& a, X x, Id id) { a.ChannelInbound(*x, id); }},
      {"PUT",
       {"tasks", "{id}", "artifacts", "{id}"},
       "put_artifact_content",
       "worker",
       [](Api& a, X x, Id type) { a.PutArtifactContent(std::move(x), type); }},
      {"PUT",
       {"outputs"},
       "put_output_content",
       "write",
       [](Api& a, X x, Id) { a.PutOutputContent(std::move(x)); }},
      {"GET",
       {"artifacts", "{id}", "content"},
       "get_artifact_content",
       "read",
       [](Api& a, X x, Id id) { a.GetArtifactContent(*x, id); }},
      {"POST",
       {"outputs"},
       "create_output",
       "write",
       [](Api& a, X x, Id) { a.CreateOutput(std::move(x)); }},
      {"POST",
       {"tasks"},
       "create_task",
       "write",
       [](Api& a, X x, Id) { a.CreateTask(std::move(x)); }},
      {"POST",
       {"tasks", "execute"},
       "create_task",
       "write",
       [](Api& a, X x, Id) { a.CreateTask(std::move(x)); }},
      {"POST",
       {"tasks", "claim"},
       "claim",
       "worker",
       [](Api& a, X x, Id) { a.ClaimTask(std::move(x)); }},
      {"GET",
       {"tasks", "usage"},
       "account_usage",
       "read",
       [](Api& a, X x, Id) { a.AccountUsage(*x); }},
      {"GET", {"usage"}, "usage", "read", [](Api& a, X x, Id) { a.Usage(*x); }},
      {"GET", {"cluster"}, "cluster", "admin", [](Api& a, X x, Id) { a.ClusterState(*x); }},
      {"GET",
       {"tasks", "{id}"},
       "get_task",
       "read",
       [](Api& a, X x, Id id) { a.GetTask(*x, id, false); }},
      {"GET",
       {"tasks", "{id}", "events"},
       "stream_task_events",
       "read",
       [](Api& a, X x, Id id) { a.StreamEvents(*x, id); }},
      {"GET", {"events"}, "stream_events", "read", [](Api& a, X x, Id) { a.StreamEvents(*x, ""); }},
      {"GET",
       {"tasks", "{id}", "trace"},
       "get_trace",
       "read",
       [](Api& a, X x, Id id) { a.GetTask(*x, id, true); }},
      {"POST",
       {"tasks", "{id}", "heartbeat"},
       "heartbeat",
       "worker",
       [](Api& a, X x, Id id) { a.LeaseCommand(std::move(x), id, "heartbeat"); }},
      {"POST",
       {"tasks", "{id}", "complete"},
       "complete",
       "worker",
       [](Api& a, X x, Id id) { a.LeaseCommand(std::move(x), id, "complete"); }},
      {"POST",
       {"tasks", "{id}", "fail"},
       "fail",
       "worker",
       [](Api& a, X x, Id id) { a.LeaseCommand(std::move(x), id, "fail"); }},
      {"POST",
       {"tasks", "{id}", "cancel"},
       "cancel",
       "write",
       [](Api& a, X x, Id id) { a.CancelTask(std::move(x), id); }},
      {"POST",
       {"tasks", "{id}", "replay"},
       "replay",
       "write",
       [](Api& a, X x, Id id) { a.ReplayTask(std::move(x), id); }},
      {"GET",
       {"tasks", "{id}", "receipt"},
       "get_receipt",
       "read",
       [](Api& a, X x, Id id) { a.GetReceipt(*x, id); }},
      {"GET",
       {"checkpoints", "key"},
       "get_checkpoint_key",
       "",
       [](Api& a, X x, Id) { a.GetCheckpointKey(*x); }},
      {"GET",
       {"checkpoints", "latest"},
       "get_latest_checkpoint",
       "read",
       [](Api& a, X x, Id) { a.GetLatestCheckpoint(*x); }},
      {"GET",
       {"checkpoints", "consistency"},
       "get_consistency_proof",
       "read",
       [](Api& a, X x, Id) { a.GetConsistency(*x); }},
  };
  return kRoutes;
}

std::vector<Api::RouteInfo> Api::RouteTable() {
  std::vector<RouteInfo> table;
  for (const char* root : {"/healthz", "/readyz", "/metrics"})
    table.push_back({"GET", root, "", ""});
  for (const RouteEntry& r : Routes()) {
    std::string path = "/v1";
    for (std::string_view segment : r.path) path += "/" + std::string(segment);
    table.push_back({r.method, path, r.name, r.scope});
  }
  return table;
}

void Api::Route(Exchange& x) {
  const std::vector<std::string> p = Split(x.call.path);
  const std::string& m = x.call.method;
  // The first row whose path matches: literal segments win over "{id}", as
  // the table lists them first.
  const RouteEntry* match = nullptr;
  std::string id, allowed, allow_header;
  size_t literal_best = 0;
  for (const RouteEntry& r : Routes()) {
    if (r.path.size() != p.size()) continue;
    size_t literal = 0;
    std::string this_id;
    bool ok = true;
    for (size_t i = 0; i < p.size() && ok; ++i) {
      if (r.path[i] == "{id}") {
        this_id = p[i];
      } else {
        ok = r.path[i] == p[i];
        ++literal;
      }
    }
    if (!ok || literal < literal_best) continue;
    if (literal > literal_best) {  // a more literal path: forget the looser ones
      literal_best = literal;
      match = nullptr;
      allowed.clear();
      allow_header.clear();
    }
    if (r.method == m) {
      match = &r;
      id = this_id;
    }
    if (allowed.find(r.method) == std::string::npos) {
      allowed += (allowed.empty() ? "" : " or ") + std::string(r.method);
      allow_header += (allow_header.empty() ? "" : ", ") + std::string(r.method);
    }
  }
  if (match == nullptr && allowed.empty()) {
    return x.Error(codes::kNotFound, "no route " + m + " " + x.call.path);
  }
  if (match == nullptr) {
    x.route = "method_not_allowed";
    return x.Error(codes::kMethodNotAllowed, "use " + allowed + " /v1" + x.call.path, "", "", -1,
                   {{"Allow", allow_header}});
  }
  x.route = match->name;
  const std::string scope = match->scope;
  if (auto h = x.call.headers.find("x-runlog-principal"); h != x.call.headers.end()) {
    // A fire or a Kafka command another node forwarded: trusted only under
    // the cluster's signature.
    const auto s = x.call.headers.find("x-runlog-principal-signature");
    x.call.principal = x.call.forwarded && deps_.cluster != nullptr && s != x.call.headers.end()
                           ? PrincipalOf(deps_.cluster->principal_key, h->second, s->second)
                           : std::nullopt;
    if (!x.call.principal) return x.Error(codes::kUnauthenticated, "bad X-Runlog-Principal");
  }
  if (x.call.principal) {
    x.key = x.call.principal;
  } else if (!scope.empty()) {
    const auto presented = BearerKey(x.call.authorization);
    if (!presented) return x.Error(codes::kUnauthenticated, "send Authorization: Bearer <api key>");
    x.key = deps_.keys->Lookup(*presented);
    if (!x.key) return x.Error(codes::kUnauthenticated, "unknown or revoked API key");
    if (!KeyStore::HasScope(*x.key, scope)) {
      return x.Error(codes::kForbidden, "this key lacks the " + scope + " scope");
    }
    int64_t retry_after = 0;
    if (!deps_.keys->Admit(*x.key, &x.requests_this_minute, &retry_after)) {
      return x.Error(codes::kRateLimited,
                     "plan " + x.key->plan + " allows " +
                         std::to_string(PlanNamed(x.key->plan).requests_per_minute) +
                         " requests a minute",
                     "", "", retry_after);
    }
  }
  match->answer(*this, x.shared_from_this(), id);
}

void Api::AfterOwnWrites(Exchange& x, std::optional<uint32_t> partition, const std::string& id,
                         std::function<void(Exchange&)> read) {
  std::vector<uint64_t> ends(deps_.log->partition_count(), 0);
  for (uint32_t p = 0; p < ends.size(); ++p) {
    if (!partition || *partition == p) ends[p] = deps_.tasks->AckedEnd(p);
  }
  // Positions another node's answers gave ("P:OFFSET[,P:OFFSET…]", X-Runlog-Position).
  for (size_t at = 0; at < x.call.position.size();) {
    const size_t comma = std::min(x.call.position.find(',', at), x.call.position.size());
    const std::string one = x.call.position.substr(at, comma - at);
    const size_t colon = one.find(':');
    uint32_t p = 0;
    uint64_t offset = 0;
    if (colon != std::string::npos &&
        std::from_chars(one.data(), one.data() + colon, p).ec == std::errc() &&
        std::from_chars(one.data() + colon + 1, one.data() + one.size(), offset).ec ==
            std::errc() &&
        p < ends.size()) {
      ends[p] = std::max(ends[p], offset);
    }
    at = comma + 1;
  }
  deps_.projector->WhenApplied(
      std::move(ends), options_.read_your_writes_timeout,
      [x = x.shared_from_this(), id, read = std::move(read)](bool applied) {
        if (!applied) {
          return x->Error(codes::kViewLagging, "the task views are catching up; retry shortly", "",
                          id, 1);
        }
        read(*x);
      });
}

void Api::StreamEvents(Exchange& x, const std::string& task_id) {
  if (deps_.streams == nullptr) {
    return x.Error(codes::kUnavailable, "event streams are not served here");
  }
  StreamHub::Spec spec;
  spec.tenant_id = x.key->tenant_id;
  spec.task_id = task_id;
  if (auto it = x.call.query.find("types"); it != x.call.query.end()) {
    for (size_t start = 0; start <= it->second.size();) {
      const size_t comma = std::min(it->second.find(',', start), it->second.size());
      if (comma > start) spec.types.insert(it->second.substr(start, comma - start));
      start = comma + 1;
    }
  }
  std::string resume = x.call.last_event_id;
  if (auto it = x.call.query.find("last_event_id"); resume.empty() && it != x.call.query.end()) {
    resume = it->second;
  }
  if (!resume.empty()) {
    bool ok = false;
    if (task_id.empty()) {
      ok = StreamHub::ParsePositionId(resume, deps_.log->partition_count(), &spec.from);
    } else {
      auto [ptr, ec] =
          std::from_chars(resume.data(), resume.data() + resume.size(), spec.after_offset);
      ok = ec == std::errc() && ptr == resume.data() + resume.size() && spec.after_offset >= 0;
    }
    if (!ok) {
      return x.Error(codes::kValidationError,
                     "Last-Event-ID is not an id this stream sent: send back the last id: seen",
                     R"({"field":"Last-Event-ID"})");
    }
  }
  if (!deps_.streams->HasRoom()) {
    return x.Error(codes::kUnavailable, "too many event streams are open", "", task_id, 5);
  }
  std::optional<uint32_t> partition;
  if (!task_id.empty()) partition = deps_.tasks->PartitionOf(task_id);
  AfterOwnWrites(x, partition, task_id, [this, spec = std::move(spec)](Exchange& x) mutable {
    if (!spec.task_id.empty()) {
      auto task = deps_.views->GetTask(spec.task_id, x.key->tenant_id);
      if (!task) return x.ErrorFrom(task.error(), spec.task_id);
      if (!*task) return x.Error(codes::kTaskNotFound, "no task " + spec.task_id, "", spec.task_id);
    }
    deps_.streams->Pin(&spec);
    auto stream = x.OpenStream("text/event-stream");
    if (!stream) return x.Error(codes::kUnavailable, "this transport cannot stream");
    deps_.streams->Add(std::move(spec), std::move(stream));
  });
}

void Api::GetTask(Exchange& x, const std::string& id, bool trace) {
  AfterOwnWrites(x, deps_.tasks->PartitionOf(id), id,
                 [this, id, trace](Exchange& x) { ReadTask(x, id, trace); });
}

void Api::ReadTask(Exchange& x, const std::string& id, bool trace) {
  // A trace's task is read with its events' positions, in one read, so its
  // status and steps are those of its last event (a client resumes the task's
  // stream there without missing a change).
  events::Task t;
  Result<std::vector<events::LogRecord>> events;
  if (trace) {
    events = deps_.views->Trace(id, *deps_.log, &t, x.key->tenant_id);
    if (!events) return x.ErrorFrom(events.error(), id);
    if (events->empty()) return x.Error(codes::kTaskNotFound, "no task " + id, "", id);
  } else {
    auto task = deps_.views->GetTask(id, x.key->tenant_id);
    if (!task) return x.ErrorFrom(task.error(), id);
    if (!*task) return x.Error(codes::kTaskNotFound, "no task " + id, "", id);
    t = std::move(**task);
  }
  ContractContext contract;
  contract.task = &t;
  contract.caller_holds_lease = t.lease.key_id == x.key->key_id;
  contract.actions = contract.caller_holds_lease && t.status == events::TaskStatus::kRunning
                         ? LeaseActions(t.id)
                         : TaskActions(t);
  events::Payload body;
  if (trace) {
    RenderTraceInto(t, *events, body);
  } else {
    RenderTaskInto(t, body);
  }
  x.Send(200, std::move(body), contract);
}

void Api::ListTasks(Exchange& x) {
  projections::ListQuery q;
  q.tenant_id = x.key->tenant_id;
  auto get = [&](const char* name) {
    auto it = x.call.query.find(name);
    return it == x.call.query.end() ? std::string() : it->second;
  };
  const std::string status = get("status");
  q.type = get("type").empty() ? get("task_type") : get("type");
  if (!StatusFilter(status, &q.statuses)) {
    return x.Error(codes::kValidationError,
                   "unknown status in " + status +
                       "; use created, planned, queued, running, succeeded, failed or cancelled "
                       "(or pending, complete, claimed), comma-separated",
                   R"({"field":"status"})");
  }
  if (const std::string limit = get("limit"); !limit.empty()) {
    char* end = nullptr;
    long v = std::strtol(limit.c_str(), &end, 10);
    if (*end != '\0' || v < 1 || v > 200) {
      return x.Error(codes::kValidationError, "limit must be 1-200", R"({"field":"limit"})");
    }
    q.limit = static_cast<size_t>(v);
  }
  q.agent_id = get("agent_id").empty() ? get("agent") : get("agent_id");
  for (const auto& [name, bound] : {std::pair{"created_after", &q.created_after_ms},
                                    std::pair{"created_before", &q.created_before_ms}}) {
    if (const std::string value = get(name); !value.empty() && !ParseTime(value, bound)) {
      return x.Error(codes::kValidationError,
                     std::string(name) +
                         " must be an RFC 3339 time (2026-02-27T11:18:01Z), a date "
                         "(2026-02-27) or Unix milliseconds",
                     std::string(R"({"field":")") + name + "\"}");
    }
  }
  if (const std::string cursor = get("cursor"); !cursor.empty() && !HexDecode(cursor, &q.cursor)) {
    return x.Error(codes::kValidationError, "cursor is not one this server gave",
                   R"({"field":"cursor"})");
  }
  // The next page keeps the filters.
  std::string filters;
  if (!status.empty()) filters += "status=" + QueryEscape(status) + "&";
  if (!q.type.empty()) filters += "type=" + QueryEscape(q.type) + "&";
  if (!q.agent_id.empty()) filters += "agent_id=" + QueryEscape(q.agent_id) + "&";
  for (const char* name : {"created_after", "created_before"}) {
    if (!get(name).empty()) filters += std::string(name) + "=" + QueryEscape(get(name)) + "&";
  }
  if (!get("limit").empty()) filters += "limit=" + std::to_string(q.limit) + "&";
  AfterOwnWrites(x, std::nullopt, "", [this, q, filters](Exchange& x) { ListPage(x, q, filters); });
}

void Api::ListPage(Exchange& x, const projections::ListQuery& q, const std::string& filters) {
  auto page = deps_.views->List(q);
  if (!page) return x.ErrorFrom(page.error());
  std::string tasks = "[";
  for (size_t i = 0; i < page->tasks.size(); ++i) {
    if (i > 0) tasks += ",";
    tasks += RenderTask(page->tasks[i]);
  }
  tasks += "]";
  ContractContext contract;
  events::Payload body;
  body.Raw("tasks", tasks).Bool("has_more", !page->next_cursor.empty());
  if (page->next_cursor.empty()) {
    body.Raw("next_cursor", "");
    contract.actions = {Act("create_task", false, "POST", "/v1/tasks")};
  } else {
    const std::string cursor = events::HexOf(page->next_cursor);
    body.Str("next_cursor", cursor);
    contract.actions = {Act("next_page", true, "GET", "/v1/tasks?" + filters + "cursor=" + cursor)};
  }
  x.Send(200, std::move(body), contract);
}

void Api::RegisterKey(std::shared_ptr<Exchange> x) {
  if (!ParseBody(*x, options_.max_body_bytes, false, nullptr)) return;
  // {"mode": "test"} gives an rl_test_ key (docs/tenancy.md); {"account_id"}
  // adds a key to an existing account, for an admin only.
  const std::string mode = x->body.IsObject() ? json::String(x->body, "mode", "live") : "live";
  const std::string account = x->body.IsObject() ? json::String(x->body, "account_id") : "";
  if (mode != "live" && mode != "test") {
    return x->Error(codes::kValidationError, "mode must be live or test", R"({"field":"mode"})");
  }
  std::string plan = "free";
  if (!account.empty()) {
    const auto presented = BearerKey(x->call.authorization);
    std::optional<KeyRecord> caller =
        presented ? deps_.keys->Lookup(*presented) : std::optional<KeyRecord>();
    if (!caller || !KeyStore::HasScope(*caller, "admin")) {
      return x->Error(codes::kForbidden, "only an admin key may add keys to an account");
    }
    if (IsTestTenant(account)) {
      return x->Error(codes::kValidationError, "account_id is the live account's id",
                      R"({"field":"account_id"})");
    }
    // The account's plan, or that of its first key (an admin's account is
    // "internal"); an account without keys does not exist.
    plan = deps_.keys->PlanOfTenant(account);
    if (plan.empty()) {
      return x->Error(codes::kNotFound, "no account " + account + " (it has no keys)",
                      R"({"field":"account_id"})");
    }
  } else if (!options_.allow_register) {
    return x->Error(codes::kRegistrationDisabled,
                    "self-service key registration is off on this server");
  }
  deps_.keys->Register(
      account, {"write", "read", "worker"}, plan,
      [x, mode](Result<std::pair<std::string, KeyRecord>> r) {
        if (!r) return x->ErrorFrom(r.error());
        const KeyRecord& key = r->second;
        x->key = key;
        ContractContext contract;
        contract.actions = {Act("create_task", true, "POST", "/v1/tasks"),
                            Act("claim", false, "POST", "/v1/tasks/claim")};
        x->Send(201,
                events::Payload()
                    .Str("apiKey", r->first)
                    .Str("accountId", AccountOf(key.tenant_id))
                    .Str("tenant_id", key.tenant_id)
                    .Str("mode", mode)
                    .Str("key_id", key.key_id)
                    .Raw("scopes", R"(["write","read","worker"])")
                    .Str("plan", key.plan),
                contract);
      },
      mode == "test");
}

namespace {

bool IsDay(const std::string& s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

void UsageInto(const projections::UsageCounters& c, events::Payload& p) {
  p.Int("tasks_created", c.tasks_created)
      .Int("tasks_succeeded", c.tasks_succeeded)
      .Int("tasks_failed", c.tasks_failed)
      .Int("tasks_cancelled", c.tasks_cancelled)
      .Int("steps", c.steps)
      .Int("tokens", c.tokens)
      .Int("input_tokens", c.input_tokens)
      .Int("output_tokens", c.output_tokens)
      .Raw("step_seconds", events::FormatDouble(static_cast<double>(c.step_ms) / 1000))
      .Raw("sandbox_seconds", events::FormatDouble(static_cast<double>(c.sandbox_ms) / 1000))
      .Raw("sandbox_cpu_seconds",
           events::FormatDouble(static_cast<double>(c.sandbox_cpu_ms) / 1000))
      .Raw("cost_usd", events::UsdJson(c.cost_nanos));
}

}  // namespace

void Api::Usage(Exchange& x) {
  auto get = [&](const char* name, std::string fallback) {
    auto it = x.call.query.find(name);
    return it == x.call.query.end() || it->second.empty() ? fallback : it->second;
  };
  const int64_t now = deps_.clock->NowMillis();
  const std::string today = infra::UtcDay(now);
  const std::string from = get("from", today.substr(0, 8) + "01"), to = get("to", today);
  const std::string group_by = get("group_by", "day");
  for (const auto& [field, value] : {std::pair{"from", from}, std::pair{"to", to}}) {
    if (!IsDay(value)) {
      return x.Error(codes::kValidationError, std::string(field) + " must be a day, YYYY-MM-DD",
                     std::string(R"({"field":")") + field + R"("})");
    }
  }
  if (group_by != "day" && group_by != "type" && group_by != "agent" && group_by != "none") {
    return x.Error(codes::kValidationError, "group_by must be day, type, agent or none",
                   R"({"field":"group_by"})");
  }
  AfterOwnWrites(x, std::nullopt, "", [this, from, to, group_by](Exchange& x) {
    auto rows = deps_.views->Usage(x.key->tenant_id, from, to);
    if (!rows) return x.ErrorFrom(rows.error());
    std::map<std::string, projections::UsageCounters> groups;
    projections::UsageCounters total;
    for (const projections::UsageRow& row : *rows) {
      const std::string& key = group_by == "day"    ? row.day
                               : group_by == "type" ? row.type
                                                    : row.agent;
      if (group_by != "none") groups[key].Add(row.counters);
      total.Add(row.counters);
    }
    std::string list = "[";
    for (const auto& [key, counters] : groups) {
      events::Payload item;
      item.Str(group_by, key);
      UsageInto(counters, item);
      list += (list.size() > 1 ? "," : "") + item.Build();
    }
    list += "]";
    events::Payload totals;
    UsageInto(total, totals);
    x.Send(200,
           events::Payload()
               .Str("account_id", x.key->tenant_id)
               .Str("from", from)
               .Str("to", to)
               .Str("group_by", group_by)
               .Raw("usage", list)
               .Raw("total", totals.Build()),
           ContractContext{.actions = {Act("list_tasks", false, "GET", "/v1/tasks")}});
  });
}

void Api::AccountUsage(Exchange& x) {
  AfterOwnWrites(x, std::nullopt, "", [this](Exchange& x) {
    const int64_t now = deps_.clock->NowMillis();
    const std::string today = infra::UtcDay(now);
    auto rows = deps_.views->Usage(x.key->tenant_id, today.substr(0, 8) + "01", today);
    if (!rows) return x.ErrorFrom(rows.error());
    projections::UsageCounters month;
    for (const projections::UsageRow& row : *rows) month.Add(row.counters);
    projections::ListQuery running;
    running.tenant_id = x.key->tenant_id;
    running.statuses = {"running"};
    auto active = deps_.views->CountListed(running);
    if (!active) return x.ErrorFrom(active.error());
    const services::Plan& plan = PlanNamed(x.key->plan);
    x.Send(200,
           events::Payload()
               .Str("account_id", x.key->tenant_id)
               .Str("plan", plan.name)
               .Int("monthly_requests", month.tasks_created)
               .Int("monthly_task_executions", month.tasks_succeeded + month.tasks_failed)
               .Raw("total_usage_usd", events::UsdJson(month.cost_nanos))
               .Raw("monthly_budget_usd", events::UsdJson(plan.monthly_budget_nanos))
               .Int("rate_limit_per_minute", plan.requests_per_minute)
               .Int("max_timeout_seconds",
                    plan.max_timeout_seconds > 0 ? plan.max_timeout_seconds : int64_t{3600})
               .Int("max_tasks_per_request", 1)
               .Int("active_tasks", *active)
               .Int("tasks_per_month", plan.tasks_per_month)
               .Int("workers_limit", plan.workers),
           ContractContext{.actions = {Act("usage_detail", false, "GET", "/v1/usage")}});
  });
}

void Api::SetAccountPlan(std::shared_ptr<Exchange> x, const std::string& account_id) {
  if (!ParseBody(*x, options_.max_body_bytes, true, nullptr)) return;
  const json::Value* plan = json::Find(x->body, "plan");
  if (plan == nullptr || !plan->IsString()) {
    return x->Error(codes::kValidationError, "plan must be a plan's name, e.g. \"basic\"",
                    R"({"field":"plan"})");
  }
  const std::string name = plan->GetString();
  deps_.keys->SetPlan(account_id, name, x->key->key_id, [x, account_id, name](Status s) {
    if (!s) return x->ErrorFrom(s.error());
    x->Send(200, events::Payload().Str("account_id", account_id).Str("plan", name),
            ContractContext{.actions = {Act("list_tasks", false, "GET", "/v1/tasks")}});
  });
}

// Ready once the views have applied what the log held when asked. Under load
// they always trail it by a moment (the projector batches), so asking for no
// lag at all would answer 503 to almost every probe of a busy server: the
// check waits, at most kReadyWait, for the views to reach that point instead.
// A rebuild from the log, a stuck projector or a failed writer is not ready.
void Api::ClusterState(Exchange& x) {
  if (deps_.cluster == nullptr || !deps_.cluster->state) {
    // Each partition's log end and how far the views have applied it.
    std::string state = "[";
    for (uint32_t p = 0; p < deps_.log->partition_count(); ++p) {
      const auto end = deps_.log->EndOffset(p);
      state += (p == 0 ? "" : ",") + events::Payload()
                                         .Int("partition", p)
                                         .Int("log_end", end ? static_cast<int64_t>(*end) : -1)
                                         .Int("views_position", deps_.projector->applied(p))
                                         .Build();
    }
    events::Payload one;
    one.Str("mode", "single")
        .Int("partitions", deps_.log->partition_count())
        .Raw("partition_state", state + "]");
    return x.Send(200, std::move(one), {});
  }
  x.Send(200, deps_.cluster->state(), {});
}

void Api::Readyz(Exchange& x) {
  static constexpr std::chrono::milliseconds kReadyWait{500};
  auto not_ready = [](Exchange& x, const std::string& reason) {
    x.Send(503, events::Payload().Str("status", "not_ready").Str("reason", reason),
           ContractContext{.actions = {Act("retry_after_wait", true, "GET", "/readyz", 1)}});
  };
  auto unhealthy = [this]() -> std::string {
    if (!deps_.tasks->healthy()) return "a partition writer failed; restart runlogd";
    if (deps_.projector->failed()) return "projection failed: " + deps_.projector->failure();
    if (deps_.cluster != nullptr && deps_.cluster->not_ready) {
      if (std::string why = deps_.cluster->not_ready(); !why.empty()) return why;
    }
    return "";
  };
  if (std::string reason = unhealthy(); !reason.empty()) return not_ready(x, reason);
  std::vector<uint64_t> ends(deps_.log->partition_count(), 0);
  for (uint32_t p = 0; p < ends.size(); ++p) {
    auto end = deps_.log->EndOffset(p);
    if (!end) return not_ready(x, "the log cannot be read: " + end.error().message);
    ends[p] = *end;
  }
  deps_.projector->WhenApplied(std::move(ends), kReadyWait,
                               [x = x.shared_from_this(), not_ready, unhealthy](bool applied) {
                                 std::string reason = unhealthy();
                                 if (reason.empty() && !applied) reason = "views are catching up";
                                 if (!reason.empty()) return not_ready(*x, reason);
                                 x->Send(200, events::Payload().Str("status", "ready"), {});
                               });
}

}  // namespace runlog::api
