// /v1/checkpoints and /v1/tasks/{id}/receipt (docs/receipts.md): the signing
// key, the newest signed checkpoint, consistency proofs between two
// checkpoints, and a task's records with inclusion proofs.

#include <charconv>

#include "api/api.h"
#include "api/checkpoints.h"
#include "api/exchange.h"
#include "events/merkle.h"
#include "events/sha256.h"

namespace runlog::api {
namespace {

std::string HashList(const std::vector<std::string>& hashes) {
  std::string out = "[";
  for (size_t i = 0; i < hashes.size(); ++i) {
    if (i > 0) out += ",";
    out += "\"" + events::Base64(hashes[i]) + "\"";
  }
  return out + "]";
}

// The checkpoint a signed note carries (its text, parsed; the signature is
// the reader's to check).
Result<events::Checkpoint> CheckpointOf(const std::string& note) {
  const size_t split = note.find("\n\n");
  if (split == std::string::npos)
    return Fail(codes::kInternal, "a stored checkpoint has no signature");
  return events::ParseCheckpointText(std::string_view(note).substr(0, split + 1));
}

events::Payload CheckpointBody(const std::string& note, const events::Checkpoint& c) {
  std::string partitions = "[";
  for (size_t p = 0; p < c.partitions.size(); ++p) {
    if (p > 0) partitions += ",";
    partitions += events::Payload()
                      .Int("partition", static_cast<int64_t>(p))
                      .Int("size", static_cast<int64_t>(c.partitions[p].size))
                      .Str("root", events::Base64(c.partitions[p].root))
                      .Build();
  }
  events::Payload body;
  body.Str("note", note)
      .Str("origin", c.origin)
      .Int("tree_size", static_cast<int64_t>(c.total()))
      .Str("root", events::Base64(c.Root()))
      .Raw("partitions", partitions + "]");
  return body;
}

bool ParseSize(const std::string& text, uint64_t* v) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *v);
  return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

void Api::GetCheckpointKey(Exchange& x) {
  if (deps_.checkpoints == nullptr) {
    return x.Error(codes::kUnavailable, "this server signs no checkpoints");
  }
  const events::NoteKey& key = deps_.checkpoints->key();
  char id[9];
  std::snprintf(id, sizeof id, "%08x", key.KeyId());
  x.Send(200,
         events::Payload()
             .Str("algorithm", "Ed25519")
             .Str("name", key.name)
             .Str("key_id", id)
             .Str("public_key", events::Base64(key.public_key))
             .Str("verifier_key", key.VerifierString()),
         ContractContext{});
}

void Api::GetLatestCheckpoint(Exchange& x) {
  auto note = deps_.views->Checkpoint();
  if (!note) return x.ErrorFrom(note.error());
  if (!*note) {
    if (deps_.checkpoints == nullptr) return x.Error(codes::kCheckpointNotFound, "no checkpoint");
    auto signed_now = deps_.checkpoints->SignNow();
    if (!signed_now) return x.ErrorFrom(signed_now.error());
    *note = *signed_now;
  }
  auto c = CheckpointOf(**note);
  if (!c) return x.ErrorFrom(c.error());
  x.Send(200, CheckpointBody(**note, *c), ContractContext{});
}

void Api::GetConsistency(Exchange& x) {
  auto get = [&](const char* name) {
    auto it = x.call.query.find(name);
    return it == x.call.query.end() ? std::string() : it->second;
  };
  uint64_t from = 0, to = 0;
  if (!ParseSize(get("from"), &from) || !ParseSize(get("to"), &to) || from > to) {
    return x.Error(codes::kValidationError,
                   "give from and to: two checkpoints' tree sizes (the second line of each "
                   "note), from <= to",
                   R"({"field":"from"})");
  }
  std::string notes[2];
  events::Checkpoint cps[2];
  for (int i = 0; i < 2; ++i) {
    auto note = deps_.views->Checkpoint(i == 0 ? from : to);
    if (!note) return x.ErrorFrom(note.error());
    if (!*note) {
      return x.Error(codes::kCheckpointNotFound,
                     "no checkpoint of tree size " + std::to_string(i == 0 ? from : to) +
                         "; GET /v1/checkpoints/latest gives the newest");
    }
    auto c = CheckpointOf(**note);
    if (!c) return x.ErrorFrom(c.error());
    notes[i] = std::move(**note);
    cps[i] = std::move(*c);
  }
  std::string proofs = "[";
  for (size_t p = 0; p < cps[1].partitions.size() && p < cps[0].partitions.size(); ++p) {
    const uint64_t a = cps[0].partitions[p].size, b = cps[1].partitions[p].size;
    auto proof = events::merkle::ConsistencyProof(a, b, [&](int level, uint64_t index) {
      return deps_.views->TreeNode(static_cast<uint32_t>(p), level, index);
    });
    if (!proof) return x.ErrorFrom(proof.error());
    if (p > 0) proofs += ",";
    proofs += events::Payload()
                  .Int("partition", static_cast<int64_t>(p))
                  .Int("from_size", static_cast<int64_t>(a))
                  .Int("to_size", static_cast<int64_t>(b))
                  .Raw("proof", HashList(*proof))
                  .Build();
  }
  x.Send(
      200,
      events::Payload().Str("from", notes[0]).Str("to", notes[1]).Raw("partitions", proofs + "]"),
      ContractContext{});
}

void Api::GetReceipt(Exchange& x, const std::string& id) {
  AfterOwnWrites(x, deps_.tasks->PartitionOf(id), id,
                 [this, id](Exchange& x) { ReadReceipt(x, id); });
}

void Api::ReadReceipt(Exchange& x, const std::string& id) {
  auto task = deps_.views->GetTask(id, x.key->tenant_id);
  if (!task) return x.ErrorFrom(task.error(), id);
  if (!*task) return x.Error(codes::kTaskNotFound, "no task " + id, "", id);
  auto records = deps_.views->Trace(id, *deps_.log);
  if (!records) return x.ErrorFrom(records.error(), id);
  const uint32_t partition = deps_.tasks->PartitionOf(id);
  // The newest checkpoint, signed now if it does not cover the task's last record.
  auto note = deps_.views->Checkpoint();
  if (!note) return x.ErrorFrom(note.error(), id);
  auto covers = [&](const std::string& n) {
    auto c = CheckpointOf(n);
    if (!c || partition >= c->partitions.size() || records->empty()) return false;
    auto leaf =
        deps_.views->LeafOf(partition, records->back().offset, c->partitions[partition].size);
    return leaf && leaf->has_value();
  };
  if (!*note || !covers(**note)) {
    if (deps_.checkpoints == nullptr) {
      return x.Error(codes::kReceiptPending, "no signed checkpoint covers this task yet", "", id,
                     1);
    }
    auto signed_now = deps_.checkpoints->SignNow();
    if (!signed_now || !covers(*signed_now)) {
      return x.Error(codes::kReceiptPending,
                     "no signed checkpoint covers this task yet" +
                         (signed_now ? std::string() : ": " + signed_now.error().message),
                     "", id, 1);
    }
    *note = std::move(*signed_now);
  }
  auto c = CheckpointOf(**note);
  if (!c) return x.ErrorFrom(c.error(), id);
  const uint64_t size = c->partitions[partition].size;
  auto nodes = [&](int level, uint64_t index) {
    return deps_.views->TreeNode(partition, level, index);
  };
  std::string rows = "[";
  for (size_t i = 0; i < records->size(); ++i) {
    const events::LogRecord& r = (*records)[i];
    auto raw = deps_.log->ReadRaw(partition, r.offset, 1);
    if (!raw) return x.ErrorFrom(raw.error(), id);
    if (raw->empty() || raw->front().offset != r.offset) {
      return x.Error(codes::kLogCorrupt,
                     "record at offset " + std::to_string(r.offset) + " is gone");
    }
    auto leaf = deps_.views->LeafOf(partition, r.offset, size);
    if (!leaf) return x.ErrorFrom(leaf.error(), id);
    if (!*leaf)
      return x.Error(codes::kReceiptPending, "a record is not in the tree yet", "", id, 1);
    auto proof = events::merkle::InclusionProof(**leaf, size, nodes);
    if (!proof) return x.ErrorFrom(proof.error(), id);
    if (i > 0) rows += ",";
    rows += events::Payload()
                .Int("offset", static_cast<int64_t>(r.offset))
                .Int("leaf_index", static_cast<int64_t>(**leaf))
                .Str("record", events::Base64(raw->front().bytes))
                .Raw("proof", HashList(*proof))
                .Build();
  }
  x.Send(200,
         events::Payload()
             .Str("task_id", id)
             .Int("partition", partition)
             .Int("tree_size", static_cast<int64_t>(size))
             .Str("checkpoint", **note)
             .Raw("records", rows + "]"),
         ContractContext{});
}

}  // namespace runlog::api
