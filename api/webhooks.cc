#include "api/webhooks.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <openssl/hmac.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <sys/socket.h>

#include <algorithm>
#include <random>

#include "api/render.h"
#include "events/bytes.h"
#include "events/local_store.h"
#include "events/payload.h"
#include "events/sha256.h"
#include "events/types.h"
#include "infra/base/error_codes.h"
#include "infra/base/json.h"

namespace runlog::api {
namespace {

constexpr std::string_view kCursor = "c", kQueued = "q";

std::string CursorKey(uint32_t p) {
  std::string key(kCursor);
  events::PutBigEndian(key, p, 4);
  return key;
}
std::string QueuedKey(int64_t due_ms, const std::string& id) {
  std::string key(kQueued);
  events::PutBigEndian(key, static_cast<uint64_t>(due_ms), 8);
  return key + id;
}

std::string Hmac(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<char*>(md), len);
}

// Loopback, private (RFC 1918, ULA), link-local (metadata services live
// there: 169.254.169.254, fd00:ec2::254), CGNAT, unspecified and multicast.
bool IsPrivate(const sockaddr* addr) {
  if (addr->sa_family == AF_INET) {
    const uint32_t a = ntohl(reinterpret_cast<const sockaddr_in*>(addr)->sin_addr.s_addr);
    const uint8_t b0 = a >> 24, b1 = (a >> 16) & 0xff;
    return b0 == 0 || b0 == 10 || b0 == 127 || (b0 == 100 && (b1 & 0xc0) == 64) ||
           (b0 == 169 && b1 == 254) || (b0 == 172 && (b1 & 0xf0) == 16) ||
           (b0 == 192 && b1 == 168) || b0 >= 224;
  }
  if (addr->sa_family == AF_INET6) {
    const auto& a6 = reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr;
    const uint8_t* b = a6.s6_addr;
    // IPv4 inside IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d),
    // NAT64 (64:ff9b::/96) and 6to4 (2002:AABB:CCDD::/48).
    const bool mapped = IN6_IS_ADDR_V4MAPPED(&a6) || IN6_IS_ADDR_V4COMPAT(&a6);
    const bool nat64 = b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b &&
                       std::all_of(b + 4, b + 12, [](uint8_t c) { return c == 0; });
    const bool six_to_four = b[0] == 0x20 && b[1] == 0x02;
    if (mapped || nat64 || six_to_four) {
      sockaddr_in v4{};
      v4.sin_family = AF_INET;
      std::memcpy(&v4.sin_addr, six_to_four ? b + 2 : b + 12, 4);
      return IsPrivate(reinterpret_cast<const sockaddr*>(&v4));
    }
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return true;  // site-local fec0::/10
    return IN6_IS_ADDR_LOOPBACK(&a6) || IN6_IS_ADDR_UNSPECIFIED(&a6) ||
           IN6_IS_ADDR_LINKLOCAL(&a6) || IN6_IS_ADDR_MULTICAST(&a6) || (b[0] & 0xfe) == 0xfc;
  }
  return true;
}

struct UrlParts {
  std::string scheme, host;
};
std::optional<UrlParts> ParseUrl(const std::string& url) {
  CURLU* u = curl_url();
  if (u == nullptr) return std::nullopt;
  std::optional<UrlParts> out;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* scheme = nullptr;
    char* host = nullptr;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
      out = UrlParts{scheme, host};
    }
    curl_free(scheme);
    curl_free(host);
  }
  curl_url_cleanup(u);
  return out;
}

int64_t Jittered(int64_t ms, std::mt19937_64& rng) {
  // Between half and all of it: retries of many deliveries spread out.
  return ms / 2 + static_cast<int64_t>(rng() % static_cast<uint64_t>(ms / 2 + 1));
}

}  // namespace

std::vector<std::string> WebhookEventsOf(const events::Event& e) {
  if (e.type == "task.succeeded") return {"task.complete", "task.succeeded"};
  if (e.type == "task.failed") return {"task.failed"};
  if (e.type == "task.cancelled") return {"task.cancelled"};
  if (e.type == "artifact.approval_decided") return {"approval.decided"};
  if (e.type == "task.artifact_created") {
    // Gated artifacts also ask for an approval.
    if (e.payload.find("\"approval_expires_at_ms\"") != std::string::npos) {
      return {"artifact.created", "approval.requested"};
    }
    return {"artifact.created"};
  }
  return {};
}

const std::vector<std::string>& WebhookEventNames() {
  static const std::vector<std::string> kNames = {
      "task.complete",    "task.succeeded",     "task.failed",     "task.cancelled",
      "artifact.created", "approval.requested", "approval.decided"};
  return kNames;
}

Status CheckWebhookUrl(const std::string& url, bool allow_private) {
  if (url.size() > 2048)
    return Fail(codes::kValidationError, "url is longer than 2048", R"({"field":"url"})");
  auto parts = ParseUrl(url);
  if (!parts || (parts->scheme != "http" && parts->scheme != "https") || parts->host.empty()) {
    return Fail(codes::kValidationError, "url must be an absolute http or https URL",
                R"({"field":"url"})");
  }
  if (allow_private) return {};
  std::string host = parts->host;
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
    // Not resolvable now (a receiver not yet in DNS, no DNS here): the check
    // at connect time still refuses a private address it resolves to later.
    return {};
  }
  bool refused = false;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) refused |= IsPrivate(a->ai_addr);
  freeaddrinfo(found);
  if (refused) {
    return Fail(codes::kDestinationRefused,
                host +
                    " is a loopback, private, link-local or metadata address; runlogd "
                    "--webhook-allow-private allows such destinations",
                R"({"field":"url"})");
  }
  return {};
}

std::string RedactUrl(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const size_t start = scheme + 3;
  const size_t end = url.find_first_of("/?#", start);
  const size_t at = url.rfind('@', end == std::string::npos ? url.size() : end);
  if (at == std::string::npos || at < start) return url;
  return url.substr(0, start) + "***" + url.substr(at);
}

std::vector<std::pair<std::string, std::string>> SignatureHeaders(const std::string& secret,
                                                                  const std::string& id,
                                                                  int64_t timestamp_s,
                                                                  const std::string& body) {
  std::string key = secret;
  if (secret.starts_with("whsec_")) {
    std::string decoded = services::FromBase64(std::string_view(secret).substr(6));
    if (!decoded.empty()) key = std::move(decoded);
  }
  const std::string ts = std::to_string(timestamp_s);
  return {{"webhook-id", id},
          {"webhook-timestamp", ts},
          {"webhook-signature", "v1," + services::Base64(Hmac(key, id + "." + ts + "." + body))},
          {"X-Ariftly-Signature", events::HexOf(Hmac(secret, body))}};
}

// A delivery waiting for its next attempt, as kept in the store.
struct Dispatcher::Pending {
  std::string id, tenant, webhook_id, event, body;
  int64_t partition = 0, offset = 0, attempt = 0, first_ms = 0, due_ms = 0;

  std::string Json() const {
    return events::Payload()
        .Str("id", id)
        .Str("tenant", tenant)
        .Str("webhook_id", webhook_id)
        .Str("event", event)
        .Str("body", body)
        .Int("partition", partition)
        .Int("offset", offset)
        .Int("attempt", attempt)
        .Int("first_ms", first_ms)
        .Int("due_ms", due_ms)
        .Build();
  }
  static std::optional<Pending> Parse(std::string_view text) {
    json::Document d;
    if (!json::Parse(std::string(text), &d) || !d.IsObject()) return std::nullopt;
    Pending p{json::String(d, "id"),    json::String(d, "tenant"), json::String(d, "webhook_id"),
              json::String(d, "event"), json::String(d, "body"),   json::Int(d, "partition"),
              json::Int(d, "offset"),   json::Int(d, "attempt"),   json::Int(d, "first_ms"),
              json::Int(d, "due_ms")};
    return p;
  }
};

// One attempt in flight.
struct Dispatcher::Transfer {
  Pending delivery;
  std::string key;  // its entry in the store, deleted once the attempt's outcome is known
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string response;
  size_t cap = 0;
  char error[CURL_ERROR_SIZE] = {};
  std::chrono::steady_clock::time_point started;
  bool allow_private = false;
  bool refused = false;  // the destination resolved to an address not allowed

  ~Transfer() {
    if (headers != nullptr) curl_slist_free_all(headers);
    if (easy != nullptr) curl_easy_cleanup(easy);
  }
  static size_t OnData(char* data, size_t size, size_t n, void* self) {
    auto* t = static_cast<Transfer*>(self);
    if (t->response.size() + size * n > t->cap) return 0;  // read no more than the cap
    t->response.append(data, size * n);
    return size * n;
  }
  // Checked on the address DNS gave, so a name that resolves to a private
  // address later than at registration is refused too.
  static curl_socket_t OpenSocket(void* self, curlsocktype, curl_sockaddr* address) {
    auto* t = static_cast<Transfer*>(self);
    if (!t->allow_private && IsPrivate(&address->addr)) {
      t->refused = true;
      return CURL_SOCKET_BAD;
    }
    return ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  }
};

Dispatcher::Dispatcher(Options options) : options_(std::move(options)) {}

Dispatcher::~Dispatcher() { Stop(); }

Status Dispatcher::Start() {
  auto db = events::OpenLocalStore(options_.data_dir + "/dispatch");
  if (!db) return std::unexpected(db.error());
  db_ = std::move(*db);
  cursor_.assign(options_.log->partition_count(), 0);
  published_.reset(new std::atomic<uint64_t>[cursor_.size()]);
  floor_.reset(new std::atomic<uint64_t>[cursor_.size()]);
  for (uint32_t p = 0; p < cursor_.size(); ++p) {
    published_[p].store(0);
    floor_[p].store(0);
  }
  for (uint32_t p = 0; p < cursor_.size(); ++p) {
    std::string value;
    if (db_->Get(rocksdb::ReadOptions(), CursorKey(p), &value).ok() && value.size() == 8) {
      cursor_[p] = events::GetBigEndian(value);
      published_[p].store(cursor_[p]);
    }
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(kQueued); it->Valid() && it->key().starts_with(kQueued); it->Next()) {
    const int64_t due =
        static_cast<int64_t>(events::GetBigEndian(std::string_view(it->key().data() + 1, 8)));
    due_.emplace(due, it->key().ToString());
  }
  if (!it->status().ok()) return Fail(codes::kUnavailable, it->status().ToString());
  pending_count_.store(due_.size());
  multi_ = curl_multi_init();
  thread_ = std::thread([this] { Loop(); });
  return {};
}

void Dispatcher::Stop() {
  stopping_.store(true);
  if (thread_.joinable()) thread_.join();
  transfers_.clear();
  if (multi_ != nullptr) {
    curl_multi_cleanup(static_cast<CURLM*>(multi_));
    multi_ = nullptr;
  }
  db_.reset();
}

void Dispatcher::Loop() {
  pthread_setname_np(pthread_self(), "rl-dispatch");  // niced with the projector (runlogd)
  auto* multi = static_cast<CURLM*>(multi_);
  while (!stopping_.load()) {
    size_t read = 0;
    for (uint32_t p = 0; p < cursor_.size() && !stopping_.load(); ++p) {
      if (options_.owns && !options_.owns(p)) continue;  // its owner delivers it
      read += Consume(p);
    }
    StartDue();
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      for (auto it = transfers_.begin(); it != transfers_.end(); ++it) {
        if ((*it)->easy != m->easy_handle) continue;
        long status = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - (*it)->started)
                .count();
        curl_multi_remove_handle(multi, m->easy_handle);
        Finish(**it, m->data.result, status, seconds);
        transfers_.erase(it);
        break;
      }
    }
    if (read > 0) continue;
    if (!transfers_.empty()) {
      curl_multi_poll(multi, nullptr, 0, 50, nullptr);
    } else if (options_.log->CanWaitAny()) {
      options_.log->WaitAny(cursor_, std::chrono::milliseconds(100));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

size_t Dispatcher::Consume(uint32_t p) {
  if (const uint64_t floor = floor_[p].load(); floor > cursor_[p]) {
    std::string value;
    events::PutBigEndian(value, floor, 8);
    if (!db_->Put(rocksdb::WriteOptions(), CursorKey(p), value).ok()) return 0;
    cursor_[p] = floor;
    published_[p].store(floor);
  }
  auto records = options_.log->Read(p, cursor_[p], 256);
  if (!records || records->empty()) return 0;
  // Bodies are rendered from the views: wait until they hold these records.
  const uint64_t end = records->back().offset + 1;
  if (!options_.projector->WaitApplied(p, end, std::chrono::milliseconds(50))) return 0;
  rocksdb::WriteBatch batch;
  std::vector<std::pair<int64_t, std::string>> added;
  uint64_t next = cursor_[p];
  const int64_t now = options_.clock->NowMillis();
  for (const events::LogRecord& r : *records) {
    if (options_.on_record && !options_.on_record(r, p)) break;  // again later
    next = r.offset + 1;
    std::vector<std::pair<std::string, std::string>> deliveries;  // webhook id, event name
    const std::string& tenant = r.event.tenant_id;
    if (r.event.type == "webhook.redeliver_requested") {
      auto body = events::Decode(r.event);
      if (!body) continue;
      const auto& again = std::get<events::WebhookRedeliverRequested>(*body);
      auto wh = options_.hooks->Webhook(tenant, again.webhook_id);
      auto source = options_.log->Read(static_cast<uint32_t>(again.source_partition),
                                       static_cast<uint64_t>(again.source_offset), 1);
      if (!wh || !source || source->empty()) continue;
      auto data = options_.data_of((*source)[0].event, again.event);
      if (!data) continue;
      Pending d{again.delivery_id,
                tenant,
                again.webhook_id,
                again.event,
                "",
                again.source_partition,
                again.source_offset,
                1,
                now,
                now};
      d.body = events::Payload()
                   .Str("type", again.event)
                   .Str("timestamp", IsoTime((*source)[0].event.timestamp_ms))
                   .Raw("data", *data)
                   .Build();
      const std::string key = QueuedKey(now, d.id + "#" + r.event.event_id);
      batch.Put(key, d.Json());
      added.emplace_back(now, key);
      continue;
    }
    const std::vector<std::string> names = WebhookEventsOf(r.event);
    for (const std::string& name : names) {
      std::optional<std::string> data;  // rendered once for all its webhooks
      for (const services::WebhookRecord& wh : options_.hooks->Subscribers(tenant, name)) {
        // A webhook hears of what happened after it was registered.
        if (r.event.timestamp_ms < wh.created_at_ms) continue;
        if (!data) data = options_.data_of(r.event, name);
        if (!data) break;
        Pending d;
        d.id = "msg_" + events::Sha256Hex(wh.webhook_id + "|" + name + "|" + std::to_string(p) +
                                          "|" + std::to_string(r.offset))
                            .substr(0, 26);
        d.tenant = tenant;
        d.webhook_id = wh.webhook_id;
        d.event = name;
        d.partition = p;
        d.offset = static_cast<int64_t>(r.offset);
        d.attempt = 1;
        d.first_ms = now;
        d.due_ms = now;
        d.body = events::Payload()
                     .Str("type", name)
                     .Str("timestamp", IsoTime(r.event.timestamp_ms))
                     .Raw("data", *data)
                     .Build();
        const std::string key = QueuedKey(now, d.id);
        batch.Put(key, d.Json());
        added.emplace_back(now, key);
      }
    }
  }
  if (next == cursor_[p]) return 0;
  std::string value;
  events::PutBigEndian(value, next, 8);
  batch.Put(CursorKey(p), value);
  if (!db_->Write(rocksdb::WriteOptions(), &batch).ok()) return 0;  // read again next round
  const size_t n = next - cursor_[p];
  cursor_[p] = next;
  published_[p].store(next);
  for (auto& [due, key] : added) due_.emplace(due, std::move(key));
  pending_count_.store(due_.size());
  return n;
}

void Dispatcher::StartDue() {
  auto* multi = static_cast<CURLM*>(multi_);
  const int64_t now = options_.clock->NowMillis();
  while (!due_.empty() && due_.begin()->first <= now &&
         transfers_.size() < options_.max_in_flight) {
    const std::string key = due_.begin()->second;
    due_.erase(due_.begin());
    std::string value;
    if (!db_->Get(rocksdb::ReadOptions(), key, &value).ok()) continue;
    auto d = Pending::Parse(value);
    auto wh = d ? options_.hooks->Webhook(d->tenant, d->webhook_id) : std::nullopt;
    if (!wh || !wh->disabled.empty()) {  // deleted or gone since: nothing to send
      db_->Delete(rocksdb::WriteOptions(), key);
      continue;
    }
    if (wh->secret.empty()) {  // sealed with another key (docs/webhooks.md): never unsigned
      RecordAttempt(*d, 0, 0, "the webhook's secret cannot be unsealed with this server's key",
                    "failed", 0);
      db_->Delete(rocksdb::WriteOptions(), key);
      continue;
    }
    // The entry stays until the outcome is known: a kill -9 now sends it again.
    auto t = std::make_unique<Transfer>();
    t->key = key;
    t->delivery = std::move(*d);
    t->cap = options_.max_response_bytes;
    t->easy = curl_easy_init();
    const int64_t ts = options_.clock->NowMillis() / 1000;
    t->headers = curl_slist_append(t->headers, "Content-Type: application/json");
    t->headers = curl_slist_append(t->headers, "User-Agent: runlog-webhooks/1");
    t->headers = curl_slist_append(t->headers, "Expect:");  // no 100-continue round trip
    for (const auto& [name, v] :
         SignatureHeaders(wh->secret, t->delivery.id, ts, t->delivery.body)) {
      t->headers = curl_slist_append(t->headers, (name + ": " + v).c_str());
    }
    CURL* e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, wh->url.c_str());
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    // No proxy from the environment: the address checked must be the receiver's.
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, t->delivery.body.c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Transfer::OnData);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    t->allow_private = options_.allow_private;
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &Transfer::OpenSocket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t.get());
    t->started = std::chrono::steady_clock::now();
    curl_multi_add_handle(multi, e);
    transfers_.push_back(std::move(t));
  }
  pending_count_.store(due_.size() + transfers_.size());
}

void Dispatcher::Finish(Transfer& t, int curl_code, long status, double seconds) {
  const Pending& d = t.delivery;
  const auto code = static_cast<CURLcode>(curl_code);
  const bool answered = status > 0;
  std::string error;
  if (code != CURLE_OK && !(answered && code == CURLE_WRITE_ERROR)) {
    error = t.error[0] != '\0' ? t.error : curl_easy_strerror(code);
  }
  const bool refused_private = t.refused;
  std::string outcome;
  if (answered && status >= 200 && status < 300) {
    outcome = "delivered";
  } else if (answered && status == 410) {
    outcome = "gone";
  } else if (refused_private) {
    outcome = "failed";
    error = "destination refused: a loopback, private, link-local or metadata address";
  } else if (answered && status < 500 && status != 429 && status != 408) {
    outcome = "failed";  // the receiver refused it: sending it again would not help
  } else {
    outcome = "retrying";
  }
  const int64_t now = options_.clock->NowMillis();
  int64_t next = 0;
  if (outcome == "retrying") {
    static thread_local std::mt19937_64 rng(std::random_device{}());
    int64_t backoff = options_.first_backoff.count();
    for (int64_t i = 1; i < d.attempt && backoff < options_.max_backoff.count(); ++i) backoff *= 2;
    backoff = std::min<int64_t>(backoff, options_.max_backoff.count());
    next = now + Jittered(backoff, rng);
    if (next - d.first_ms > options_.give_up_after.count()) {
      outcome = "failed";
      next = 0;
      if (error.empty()) error = "gave up after " + std::to_string(d.attempt) + " attempts";
    }
  }
  if (error.empty() && answered && outcome != "delivered") {
    error = "HTTP " + std::to_string(status);
  }
  RecordAttempt(d, status, static_cast<int64_t>(seconds * 1000), error, outcome, next);
  if (options_.on_attempt) options_.on_attempt(outcome, seconds);
  rocksdb::WriteBatch batch;
  batch.Delete(t.key);
  if (outcome == "retrying") {
    Pending again = d;
    ++again.attempt;
    again.due_ms = next;
    const std::string key = QueuedKey(next, again.id);
    batch.Put(key, again.Json());
    due_.emplace(next, key);
  }
  (void)db_->Write(rocksdb::WriteOptions(), &batch);  // if lost: sent again, at least once
  if (outcome == "gone") {
    options_.hooks->RemoveWebhook(d.tenant, d.webhook_id, "gone", "", [](Status) {});
  }
}

void Dispatcher::RecordAttempt(const Pending& d, long status, int64_t latency_ms,
                               const std::string& error, const std::string& outcome,
                               int64_t next_ms) {
  events::Event e;
  e.type = "webhook.attempted";
  // Unique: a redelivery counts its attempts from 1 again.
  e.event_id = "evt_" + d.id.substr(4) + "_" + std::to_string(d.attempt) + "_" +
               std::to_string(options_.clock->NowMillis());
  e.aggregate_id = services::HookStore::WebhookAggregate(d.tenant, d.webhook_id);
  e.tenant_id = d.tenant;
  e.sequence = 0;
  e.timestamp_ms = options_.clock->NowMillis();
  e.payload = events::Encode(events::WebhookAttempted{d.id, d.webhook_id, d.event, d.partition,
                                                      d.offset, d.attempt, status, latency_ms,
                                                      error, outcome, next_ms});
  options_.writers->Record(std::move(e), [](Status) {});
}

}  // namespace runlog::api
