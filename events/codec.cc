#include "events/codec.h"

#include <cstring>

#include "events/bytes.h"
#include "events/canonical_json.h"
#include "events/crc32c.h"
#include "events/sha256.h"
#include "infra/base/json.h"

namespace runlog::events {
namespace {

constexpr char kMagic = 'R';
constexpr char kFormat1 = 1;
constexpr char kFormat2 = 2;
constexpr size_t kHeader = 6;
constexpr size_t kPrev = 32;

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

// Writes the binary form's checksum of everything after the header.
void SealChecksum(std::string& record) {
  const uint32_t crc = Crc32c(std::string_view(record).substr(kHeader));
  for (int i = 0; i < 4; ++i) record[2 + i] = static_cast<char>((crc >> (8 * i)) & 0xFF);
}

}  // namespace

std::string EncodeEvent(const Event& e) {
  std::string out;
  out.reserve(kHeader + kPrev + 48 + e.type.size() + e.event_id.size() + e.aggregate_id.size() +
              e.tenant_id.size() + e.payload.size());
  out.push_back(kMagic);
  out.push_back(kFormat2);
  out.append(4, '\0');
  out.append(kNoPrev);
  PutString(out, e.type);
  PutString(out, e.event_id);
  PutString(out, e.aggregate_id);
  PutString(out, e.tenant_id);
  PutString(out, e.payload);
  PutFixed<uint32_t>(out, e.schema_version);
  PutFixed<uint64_t>(out, e.sequence);
  PutFixed<uint64_t>(out, static_cast<uint64_t>(e.timestamp_ms));
  SealChecksum(out);
  return out;
}

void SetPrev(std::string& record, std::string_view prev) {
  if (record.empty()) return;
  if (record[0] == '{') {
    // The first `,"prev":"` is the envelope's: the payload comes after it,
    // and a quote inside an earlier string is escaped.
    const size_t at = record.find(",\"prev\":\"");
    if (at == std::string::npos) return;
    const std::string hex = HexOf(prev);
    record.replace(at + 9, hex.size(), hex);
    return;
  }
  if (record.size() < kHeader + kPrev || record[1] != kFormat2) return;
  record.replace(kHeader, kPrev, prev);
  SealChecksum(record);
}

std::string RecordHash(std::string_view record) { return Sha256(record); }

namespace {

// Everything before the payload: a function of the envelope alone, so a
// decoder can check that a record is exactly what encoding it gives.
std::string JsonPrefix(const Event& e, std::string_view prev) {
  std::string out = "{\"type\":";
  AppendCanonicalString(e.type, &out);
  out += ",\"schema_version\":" + std::to_string(e.schema_version) + ",\"event_id\":";
  AppendCanonicalString(e.event_id, &out);
  out += ",\"aggregate_id\":";
  AppendCanonicalString(e.aggregate_id, &out);
  out += ",\"tenant_id\":";
  AppendCanonicalString(e.tenant_id, &out);
  out += ",\"sequence\":" + std::to_string(e.sequence) +
         ",\"timestamp_ms\":" + std::to_string(e.timestamp_ms);
  if (!prev.empty()) out += ",\"prev\":\"" + HexOf(prev) + "\"";
  out += ",\"payload\":";
  return out;
}

Result<Event> DecodeJson(std::string_view bytes, std::string* prev_out) {
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
  std::string prev;  // raw; empty in records from before the chain
  if (const json::Value* p = json::Find(doc, "prev"); p != nullptr) {
    if (!p->IsString() || !UnHex(std::string_view(p->GetString(), p->GetStringLength()), &prev) ||
        prev.size() != kPrev) {
      return Fail(codes::kLogCorrupt, "record's prev is not 64 hex digits");
    }
  }
  const std::string prefix = JsonPrefix(e, prev);
  if (!bytes.starts_with(prefix) || bytes.size() < prefix.size() + 2 || bytes.back() != '}') {
    return Fail(codes::kLogCorrupt, "record is not in the form runlog writes");
  }
  e.payload = std::string(bytes.substr(prefix.size(), bytes.size() - prefix.size() - 1));
  if (e.payload == "null") e.payload.clear();
  if (prev_out != nullptr) *prev_out = std::move(prev);
  return e;
}

}  // namespace

// An empty payload (no event has one, but the envelope allows it) is `null`.
std::string EncodeEventJson(const Event& e) {
  return JsonPrefix(e, kNoPrev) + (e.payload.empty() ? "null" : e.payload) + "}";
}

std::string EncodeRecord(const Event& e, bool json_form, std::string_view prev) {
  std::string out = json_form ? EncodeEventJson(e) : EncodeEvent(e);
  if (!prev.empty()) {
    SetPrev(out, prev);
  } else if (json_form) {
    out = JsonPrefix(e, "") + (e.payload.empty() ? "null" : e.payload) + "}";
  } else {  // format 1: no link, and the checksum covers the body alone
    out.erase(kHeader, kPrev);
    out[1] = kFormat1;
    SealChecksum(out);
  }
  return out;
}

Result<Event> DecodeEvent(std::string_view bytes, std::string* prev) {
  if (!bytes.empty() && bytes[0] == '{') return DecodeJson(bytes, prev);
  if (bytes.size() < kHeader) return Fail(codes::kLogCorrupt, "record shorter than its header");
  if (bytes[0] != kMagic) return Fail(codes::kLogCorrupt, "bad record magic");
  if (bytes[1] != kFormat1 && bytes[1] != kFormat2) {
    return Fail(codes::kLogCorrupt, "unknown record format " + std::to_string(int{bytes[1]}));
  }
  const size_t chain = bytes[1] == kFormat2 ? kPrev : 0;
  if (bytes.size() < kHeader + chain)
    return Fail(codes::kLogCorrupt, "record shorter than its header");
  uint32_t stored = 0;
  Reader header(bytes.substr(2, 4));
  header.Fixed(&stored);
  if (Crc32c(bytes.substr(kHeader)) != stored) {
    return Fail(codes::kLogCorrupt, "record checksum mismatch");
  }
  Event e;
  Reader r(bytes.substr(kHeader + chain));
  uint64_t ts = 0;
  if (!r.String(&e.type) || !r.String(&e.event_id) || !r.String(&e.aggregate_id) ||
      !r.String(&e.tenant_id) || !r.String(&e.payload) || !r.Fixed(&e.schema_version) ||
      !r.Fixed(&e.sequence) || !r.Fixed(&ts) || !r.AtEnd()) {
    return Fail(codes::kLogCorrupt, "record body truncated or overlong");
  }
  e.timestamp_ms = static_cast<int64_t>(ts);
  if (prev != nullptr) prev->assign(bytes.substr(kHeader, chain));
  return e;
}

Result<LogRecord> DecodeRecord(uint32_t partition, uint64_t offset, std::string_view bytes) {
  LogRecord r{partition, offset, {}, {}, {}};
  auto event = DecodeEvent(bytes, &r.prev);
  if (!event) return std::unexpected(event.error());
  r.event = std::move(*event);
  r.hash = RecordHash(bytes);
  return r;
}

}  // namespace runlog::events
