#include "api/forwarder.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <memory>

#include "events/canonical_json.h"
#include "events/sha256.h"
#include "infra/base/json.h"

namespace runlog::api {

std::string PrincipalHeader(const KeyRecord& key) {
  std::string out = "{\"key_id\":";
  events::AppendCanonicalString(key.key_id, &out);
  out += ",\"plan\":";
  events::AppendCanonicalString(key.plan, &out);
  out += ",\"scopes\":[";
  for (size_t i = 0; i < key.scopes.size(); ++i) {
    if (i > 0) out += ",";
    events::AppendCanonicalString(key.scopes[i], &out);
  }
  out += "],\"tenant_id\":";
  events::AppendCanonicalString(key.tenant_id, &out);
  return out + "}";
}

std::string PrincipalSignature(const std::string& secret, const std::string& header) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(header.data()), header.size(), mac, &len);
  return events::HexOf(std::string_view(reinterpret_cast<const char*>(mac), len));
}

std::optional<KeyRecord> PrincipalOf(const std::string& secret, const std::string& header,
                                     const std::string& signature) {
  if (secret.empty() || header.empty()) return std::nullopt;
  const std::string want = PrincipalSignature(secret, header);
  if (want.size() != signature.size() ||
      CRYPTO_memcmp(want.data(), signature.data(), want.size()) != 0) {
    return std::nullopt;
  }
  json::Document doc;
  if (!json::Parse(header, &doc) || !doc.IsObject()) return std::nullopt;
  KeyRecord key{
      json::String(doc, "key_id"), json::String(doc, "tenant_id"), {}, json::String(doc, "plan")};
  if (const json::Value* scopes = json::Find(doc, "scopes"); scopes && scopes->IsArray()) {
    for (const auto& s : scopes->GetArray()) {
      if (s.IsString()) key.scopes.emplace_back(s.GetString());
    }
  }
  if (key.tenant_id.empty()) return std::nullopt;
  return key;
}

namespace {

size_t Collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// Keeps the answer headers a client acts on.
size_t CollectHeader(char* data, size_t size, size_t n, void* out) {
  std::string line(data, size * n);
  const size_t colon = line.find(':');
  if (colon == std::string::npos) return size * n;
  std::string name = line.substr(0, colon);
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  std::string value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.pop_back();
  if (lower == "retry-after" || lower == "idempotent-replayed" || lower == "location" ||
      lower == "www-authenticate" || lower.starts_with("x-runlog-") || lower == "allow" ||
      lower == "x-content-sha256") {
    static_cast<Reply::Headers*>(out)->emplace_back(std::move(name), std::move(value));
  }
  return size * n;
}

std::string Escape(CURL* curl, const std::string& s) {
  char* e = curl_easy_escape(curl, s.data(), static_cast<int>(s.size()));
  std::string out = e != nullptr ? e : "";
  curl_free(e);
  return out;
}

}  // namespace

Forwarder::Forwarder(std::string principal_key, int threads, std::chrono::milliseconds timeout)
    : principal_key_(std::move(principal_key)), timeout_(timeout) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
}

Forwarder::~Forwarder() {
  std::deque<Job> left;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  {
    std::lock_guard lock(mu_);
    left.swap(jobs_);
  }
  for (Job& job : left) job.done(Fail(codes::kUnavailable, "the server is stopping"));
}

void Forwarder::Forward(const std::string& address, const Call& call, Done done) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      jobs_.push_back(Job{address, call, std::move(done)});
      cv_.notify_one();
      return;
    }
  }
  done(Fail(codes::kUnavailable, "the server is stopping"));
}

void Forwarder::Work() {
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    CURL* c = curl.get();
    curl_easy_reset(c);  // keeps the connection cache
    std::string url = "http://" + job.address + "/v1" + job.call.path;
    char sep = '?';
    for (const auto& [key, value] : job.call.query) {
      url += sep + Escape(c, key) + "=" + Escape(c, value);
      sep = '&';
    }
    curl_slist* headers = nullptr;
    auto add = [&](const std::string& name, const std::string& value) {
      if (!value.empty()) headers = curl_slist_append(headers, (name + ": " + value).c_str());
    };
    add("Authorization", job.call.authorization);
    add("Content-Type", job.call.content_type);
    add("Idempotency-Key", job.call.idempotency_key);
    add("Last-Event-ID", job.call.last_event_id);
    add("X-Runlog-Position", job.call.position);
    for (const auto& [name, value] : job.call.headers) add(name, value);
    add("X-Runlog-Forwarded", "1");
    if (job.call.principal) {
      const std::string principal = PrincipalHeader(*job.call.principal);
      add("X-Runlog-Principal", principal);
      add("X-Runlog-Principal-Signature", PrincipalSignature(principal_key_, principal));
    }
    headers = curl_slist_append(headers, "Expect:");
    Answer answer;
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, job.call.method.c_str());
    if (!job.call.body.empty() || job.call.method == "POST" || job.call.method == "PUT") {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, job.call.body.data());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(job.call.body.size()));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, CollectHeader);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &answer.headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    const CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
      job.done(Fail(codes::kUnavailable, "forwarding to the partition's owner at " + job.address +
                                             " failed: " + curl_easy_strerror(rc) + "; retry"));
      continue;
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    char* type = nullptr;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type);
    answer.status = static_cast<int>(status);
    answer.content_type = type != nullptr ? type : "application/json";
    job.done(std::move(answer));
  }
}

}  // namespace runlog::api
