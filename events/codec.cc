#include "events/codec.h"

#include <cstring>

#include "events/bytes.h"
#include "events/canonical_json.h"
#include "events/crc32c.h"
#include "infra/base/json.h"

namespace runlog::events {
namespace {

constexpr char kMagic = 'R';
constexpr char kFormat = 1;
constexpr size_t kHeader = 6;

template <typename T>
void PutFixed(std::string& out, T v) {
  PutLittleEndian(out, static_cast<uint64_t>(v), sizeof(T));
}

void PutString(std::string& out, std::string_view s) {
  PutFixed<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

// Reads little-endian fields from a byte range, failing on any overrun.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  template <typename T>
  bool Fixed(T* v) {
    if (data_.size() < sizeof(T)) return false;
    *v = static_cast<T>(GetLittleEndian(data_.substr(0, sizeof(T))));
    data_.remove_prefix(sizeof(T));
    return true;
  }

  bool String(std::string* s) {
    uint32_t len = 0;
    if (!Fixed(&len) || data_.size() < len) return false;
    s->assign(data_.data(), len);
    data_.remove_prefix(len);
    return true;
  }

  bool AtEnd() const { return data_.empty(); }

 private:
  std::string_view data_;
};

}  // namespace

std::string EncodeEvent(const Event& e) {
  std::string out;
  out.reserve(kHeader + 48 + e.type.size() + e.event_id.size() + e.aggregate_id.size() +
              e.tenant_id.size() + e.payload.size());
  out.push_back(kMagic);
  out.push_back(kFormat);
  out.append(4, '\0');
  PutString(out, e.type);
  PutString(out, e.event_id);
  PutString(out, e.aggregate_id);
  PutString(out, e.tenant_id);
  PutString(out, e.payload);
  PutFixed<uint32_t>(out, e.schema_version);
  PutFixed<uint64_t>(out, e.sequence);
  PutFixed<uint64_t>(out, static_cast<uint64_t>(e.timestamp_ms));
  uint32_t crc = Crc32c(std::string_view(out).substr(kHeader));
  for (int i = 0; i < 4; ++i) out[2 + i] = static_cast<char>((crc >> (8 * i)) & 0xFF);
  return out;
}

namespace {

// Everything before the payload: a function of the envelope alone, so a
// decoder can check that a record is exactly what encoding it gives.
std::string JsonPrefix(const Event& e) {
  std::string out = "{\"type\":";
  AppendCanonicalString(e.type, &out);
  out += ",\"schema_version\":" + std::to_string(e.schema_version) + ",\"event_id\":";
  AppendCanonicalString(e.event_id, &out);
  out += ",\"aggregate_id\":";
  AppendCanonicalString(e.aggregate_id, &out);
  out += ",\"tenant_id\":";
  AppendCanonicalString(e.tenant_id, &out);
  out += ",\"sequence\":" + std::to_string(e.sequence) +
         ",\"timestamp_ms\":" + std::to_string(e.timestamp_ms) + ",\"payload\":";
  return out;
}

Result<Event> DecodeJson(std::string_view bytes) {
  json::Document doc;
  if (!json::Parse(bytes, &doc) || !doc.IsObject()) {
    return Fail(codes::kLogCorrupt, "record is not a JSON object");
  }
  Event e;
  const json::Value* version = json::Find(doc, "schema_version");
  const json::Value* sequence = json::Find(doc, "sequence");
  const json::Value* timestamp = json::Find(doc, "timestamp_ms");
  if (version == nullptr || !version->IsUint() || sequence == nullptr || !sequence->IsUint64() ||
      timestamp == nullptr || !timestamp->IsInt64()) {
    return Fail(codes::kLogCorrupt, "record's numbers are missing or out of range");
  }
  e.type = json::String(doc, "type");
  e.schema_version = version->GetUint();
  e.event_id = json::String(doc, "event_id");
  e.aggregate_id = json::String(doc, "aggregate_id");
  e.tenant_id = json::String(doc, "tenant_id");
  e.sequence = sequence->GetUint64();
  e.timestamp_ms = timestamp->GetInt64();
  const std::string prefix = JsonPrefix(e);
  if (!bytes.starts_with(prefix) || bytes.size() < prefix.size() + 2 || bytes.back() != '}') {
    return Fail(codes::kLogCorrupt, "record is not in the form runlog writes");
  }
  e.payload = std::string(bytes.substr(prefix.size(), bytes.size() - prefix.size() - 1));
  if (e.payload == "null") e.payload.clear();
  return e;
}

}  // namespace

// An empty payload (no event has one, but the envelope allows it) is `null`.
std::string EncodeEventJson(const Event& e) {
  return JsonPrefix(e) + (e.payload.empty() ? "null" : e.payload) + "}";
}

Result<Event> DecodeEvent(std::string_view bytes) {
  if (!bytes.empty() && bytes[0] == '{') return DecodeJson(bytes);
  if (bytes.size() < kHeader) return Fail(codes::kLogCorrupt, "record shorter than its header");
  if (bytes[0] != kMagic) return Fail(codes::kLogCorrupt, "bad record magic");
  if (bytes[1] != kFormat) {
    return Fail(codes::kLogCorrupt, "unknown record format " + std::to_string(int{bytes[1]}));
  }
  uint32_t stored = 0;
  Reader header(bytes.substr(2, 4));
  header.Fixed(&stored);
  std::string_view body = bytes.substr(kHeader);
  if (Crc32c(body) != stored) return Fail(codes::kLogCorrupt, "record checksum mismatch");
  Event e;
  Reader r(body);
  uint64_t ts = 0;
  if (!r.String(&e.type) || !r.String(&e.event_id) || !r.String(&e.aggregate_id) ||
      !r.String(&e.tenant_id) || !r.String(&e.payload) || !r.Fixed(&e.schema_version) ||
      !r.Fixed(&e.sequence) || !r.Fixed(&ts) || !r.AtEnd()) {
    return Fail(codes::kLogCorrupt, "record body truncated or overlong");
  }
  e.timestamp_ms = static_cast<int64_t>(ts);
  return e;
}

}  // namespace runlog::events
