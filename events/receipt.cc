#include "events/receipt.h"

#include "events/codec.h"
#include "events/merkle.h"
#include "events/sha256.h"
#include "infra/base/json.h"

namespace runlog::events {
namespace {

std::unexpected<Error> Refused(const std::string& why) {
  return Fail(codes::kInvalidArgument, why);
}

}  // namespace

Result<VerifiedReceipt> VerifyReceipt(std::string_view receipt_json, const NoteKey& key) {
  json::Document doc;
  if (!json::Parse(receipt_json, &doc) || !doc.IsObject()) return Refused("not a JSON object");
  const json::Value* partition = json::Find(doc, "partition");
  const json::Value* size = json::Find(doc, "tree_size");
  const json::Value* records = json::Find(doc, "records");
  if (partition == nullptr || !partition->IsUint() || size == nullptr || !size->IsUint64() ||
      records == nullptr || !records->IsArray()) {
    return Refused("a receipt has task_id, partition, tree_size, checkpoint and records");
  }
  VerifiedReceipt out;
  out.task_id = json::String(doc, "task_id");
  out.partition = partition->GetUint();
  out.tree_size = size->GetUint64();
  auto checkpoint = VerifyCheckpointNote(json::String(doc, "checkpoint"), key);
  if (!checkpoint) return Refused("checkpoint: " + checkpoint.error().message);
  out.checkpoint = std::move(*checkpoint);
  if (out.partition >= out.checkpoint.partitions.size() ||
      out.checkpoint.partitions[out.partition].size != out.tree_size) {
    return Refused("the checkpoint does not sign tree_size records of partition " +
                   std::to_string(out.partition));
  }
  const std::string& root = out.checkpoint.partitions[out.partition].root;
  if (records->Size() == 0) return Refused("no records");
  for (rapidjson::SizeType i = 0; i < records->Size(); ++i) {
    const json::Value& r = (*records)[i];
    const std::string at = "record " + std::to_string(i + 1) + ": ";
    const json::Value* offset = r.IsObject() ? json::Find(r, "offset") : nullptr;
    const json::Value* leaf = r.IsObject() ? json::Find(r, "leaf_index") : nullptr;
    const json::Value* proof = r.IsObject() ? json::Find(r, "proof") : nullptr;
    if (offset == nullptr || !offset->IsUint64() || leaf == nullptr || !leaf->IsUint64() ||
        proof == nullptr || !proof->IsArray()) {
      return Refused(at + "needs offset, leaf_index, record and proof");
    }
    const std::string bytes = FromBase64(json::String(r, "record"));
    if (bytes.empty()) return Refused(at + "record is not base64");
    std::vector<std::string> path;
    for (const json::Value& h : proof->GetArray()) {
      std::string hash = h.IsString() ? FromBase64(h.GetString()) : "";
      if (hash.size() != 32) return Refused(at + "a proof hash is not 32 bytes of base64");
      path.push_back(std::move(hash));
    }
    if (!merkle::VerifyInclusion(merkle::LeafHash(RecordHash(bytes)), leaf->GetUint64(),
                                 out.tree_size, path, root)) {
      return Refused(at + "not in the signed tree (its inclusion proof fails)");
    }
    auto decoded = DecodeRecord(out.partition, offset->GetUint64(), bytes);
    if (!decoded) return Refused(at + decoded.error().message);
    if (decoded->event.aggregate_id != out.task_id) {
      return Refused(at + "belongs to " + decoded->event.aggregate_id + ", not " + out.task_id);
    }
    if (decoded->event.sequence != i + 1) {
      return Refused(at + "has sequence " + std::to_string(decoded->event.sequence) +
                     ": the task's records must run 1, 2, … with none left out");
    }
    out.records.push_back(std::move(*decoded));
  }
  return out;
}

}  // namespace runlog::events
