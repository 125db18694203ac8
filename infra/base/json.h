#pragma once
// Small helpers over RapidJSON shared by every folder: typed field access that
// reports the field path on a mismatch, and writing values out as text.

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace runlog::json {

using Value = rapidjson::Value;
using Document = rapidjson::Document;

inline const Value* Find(const Value& object, std::string_view key) {
  if (!object.IsObject()) return nullptr;
  // As a Value: a bare StringRef would convert to const char* and be read to its NUL.
  const Value name(rapidjson::StringRef(key.data(), key.size()));
  auto it = object.FindMember(name);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

// The member `key` if it is present and not null.
inline const Value* FindSet(const Value& object, std::string_view key) {
  const Value* v = Find(object, key);
  return v == nullptr || v->IsNull() ? nullptr : v;
}

inline std::string String(const Value& object, std::string_view key, std::string fallback = {}) {
  const Value* v = Find(object, key);
  return v != nullptr && v->IsString() ? std::string(v->GetString(), v->GetStringLength())
                                       : fallback;
}

inline int64_t Int(const Value& object, std::string_view key, int64_t fallback = 0) {
  const Value* v = Find(object, key);
  return v != nullptr && v->IsInt64() ? v->GetInt64() : fallback;
}

inline bool Bool(const Value& object, std::string_view key, bool fallback = false) {
  const Value* v = Find(object, key);
  return v != nullptr && v->IsBool() ? v->GetBool() : fallback;
}

// Compact JSON text of a value (not canonical: use events::WriteCanonical for hashing).
inline std::string Write(const Value& v) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  v.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

// A document for a short-lived parse on the stack: its values live in an
// inline buffer, so a small payload parses without the 64 KiB heap chunk a
// default Document allocates. Not copyable or movable.
class ScratchDocument {
 public:
  ScratchDocument() = default;
  ScratchDocument(const ScratchDocument&) = delete;
  ScratchDocument& operator=(const ScratchDocument&) = delete;
  Document& doc() { return doc_; }

 private:
  char buffer_[8192];
  rapidjson::MemoryPoolAllocator<> pool_{buffer_, sizeof buffer_};
  Document doc_{&pool_};
};

// Parses text known to be valid JSON written by runlog itself.
inline bool Parse(std::string_view text, Document* doc) {
  // Full precision: numbers must come back as the doubles that were written.
  doc->Parse<rapidjson::kParseFullPrecisionFlag>(text.data(), text.size());
  return !doc->HasParseError();
}

}  // namespace runlog::json
