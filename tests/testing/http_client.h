#pragma once
// A small HTTP client over libcurl for tests: one keep-alive connection,
// JSON bodies, response headers kept.

#include <curl/curl.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace runlog::testing {

struct HttpResponse {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lowercase names
  rapidjson::Document json;
  long new_connections = 0;
  const rapidjson::Value& operator[](const char* key) const { return json[key]; }
  std::string Str(const char* key) const {
    return json.IsObject() && json.HasMember(key) && json[key].IsString() ? json[key].GetString()
                                                                          : "";
  }
  std::string ErrorCode() const {
    return json.IsObject() && json.HasMember("error") ? json["error"]["code"].GetString() : "";
  }
};

// Every call (method, endpoint) an answer's agent_contract named, from
// every client of the process, for ExpectActionsLeadSomewhere.
class SeenActions {
 public:
  static SeenActions& Get() {
    static SeenActions seen;
    return seen;
  }
  void Add(const rapidjson::Value& answer) {
    if (!answer.IsObject() || !answer.HasMember("agent_contract")) return;
    const auto& contract = answer["agent_contract"];
    if (!contract.IsObject() || !contract.HasMember("next_actions")) return;
    std::lock_guard lock(mu_);
    for (const auto& a : contract["next_actions"].GetArray()) {
      if (a.IsObject() && a.HasMember("method") && a["method"].IsString() &&
          a.HasMember("endpoint") && a["endpoint"].IsString()) {
        seen_.emplace(a["method"].GetString(), a["endpoint"].GetString());
      }
    }
  }
  std::set<std::pair<std::string, std::string>> Take() {
    std::lock_guard lock(mu_);
    return std::exchange(seen_, {});
  }

 private:
  std::mutex mu_;
  std::set<std::pair<std::string, std::string>> seen_;
};

// With RUNLOG_RECORD_ANSWERS=DIR, every answer a test gets is appended to
// DIR/<pid>.jsonl (method, path, status, content type, body), for
// tests/api/validate_answers.py to check against docs/openapi.yaml.
class AnswerRecorder {
 public:
  static AnswerRecorder& Get() {
    static AnswerRecorder recorder;
    return recorder;
  }
  void Add(const std::string& method, const std::string& path, long status,
           const std::string& content_type, const std::string& body) {
    if (!out_.is_open() || status == 0) return;
    rapidjson::StringBuffer line;
    rapidjson::Writer<rapidjson::StringBuffer> w(line);
    w.StartObject();
    w.Key("method");
    w.String(method.c_str());
    w.Key("path");
    w.String(path.c_str());
    w.Key("status");
    w.Int64(status);
    w.Key("content_type");
    w.String(content_type.c_str());
    w.Key("body");  // JSON answers only: the others (artifact content) may be any bytes
    const bool json = content_type.find("json") != std::string::npos;
    w.String(json ? body.data() : "", json ? static_cast<rapidjson::SizeType>(body.size()) : 0);
    w.EndObject();
    std::lock_guard lock(mu_);
    out_ << line.GetString() << '\n';
    out_.flush();
  }

 private:
  AnswerRecorder() {
    const char* dir = std::getenv("RUNLOG_RECORD_ANSWERS");
    if (dir == nullptr || *dir == '\0') return;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    out_.open(std::string(dir) + "/" + std::to_string(::getpid()) + ".jsonl", std::ios::app);
  }
  std::mutex mu_;
  std::ofstream out_;
};

class HttpClient {
 public:
  explicit HttpClient(std::string base) : base_(std::move(base)), curl_(curl_easy_init()) {}
  ~HttpClient() { curl_easy_cleanup(curl_); }
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  void SetKey(const std::string& key) { key_ = key; }

  HttpResponse Get(const std::string& path) { return Do("GET", path, nullptr, {}); }
  HttpResponse Post(const std::string& path, const std::string& body,
                    std::vector<std::string> headers = {}) {
    return Do("POST", path, &body, std::move(headers));
  }
  HttpResponse Put(const std::string& path, const std::string& body) {
    return Do("PUT", path, &body, {});
  }
  HttpResponse Delete(const std::string& path) { return Do("DELETE", path, nullptr, {}); }
  HttpResponse Do(const std::string& method, const std::string& path, const std::string* body,
                  std::vector<std::string> headers) {
    HttpResponse r;
    curl_easy_reset(curl_);
    std::string url = base_ + path;
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &Collect);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, &Header);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &r.headers);
    if (body != nullptr) {
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body->data());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
    }
    struct curl_slist* list = nullptr;
    if (!key_.empty()) headers.push_back("Authorization: Bearer " + key_);
    bool has_type = false;
    for (auto& h : headers) has_type |= h.starts_with("Content-Type:");
    if (body != nullptr && !has_type) headers.push_back("Content-Type: application/json");
    for (auto& h : headers) list = curl_slist_append(list, h.c_str());
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, list);
    if (curl_easy_perform(curl_) == CURLE_OK) {
      curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &r.status);
      curl_easy_getinfo(curl_, CURLINFO_NUM_CONNECTS, &r.new_connections);
    }
    curl_slist_free_all(list);
    r.json.Parse(r.body.c_str());
    SeenActions::Get().Add(r.json);
    const auto type = r.headers.find("content-type");  // not [], which would add one
    AnswerRecorder::Get().Add(method, path, r.status, type == r.headers.end() ? "" : type->second,
                              r.body);
    return r;
  }

 private:
  static size_t Collect(char* data, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
  }
  static size_t Header(char* data, size_t size, size_t n, void* out) {
    std::string line(data, size * n);
    auto colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
      while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.pop_back();
      (*static_cast<std::map<std::string, std::string>*>(out))[name] = value;
    }
    return size * n;
  }

  std::string base_;
  std::string key_;
  CURL* curl_;
};

// Polls /readyz until it answers 200 (a cluster node is ready once every
// partition has a writer somewhere); false after `timeout`.
inline bool WaitReady(HttpClient& client, std::chrono::milliseconds timeout) {
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < give_up) {
    if (client.Get("/readyz").status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

}  // namespace runlog::testing
