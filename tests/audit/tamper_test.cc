// The tamper-evident log (docs/receipts.md), tried as an attacker holding the
// disk would: on copies of a real data directory written by runlogd (edited
// through RocksDB, checksums recomputed) and of its export (edited as text),
// each edit, forgery, reordering and deletion must make `runlog audit` fail,
// naming the partition and offset. Receipts verify with `runlog
// verify-receipt` and with the Python script in docs/receipts.md, and are
// refused with one byte changed.

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "events/canonical_json.h"
#include "events/checkpoint.h"
#include "events/codec.h"
#include "events/embedded_log.h"
#include "events/hashes.h"
#include "events/merkle.h"
#include "events/partitioner.h"
#include "events/sha256.h"
#include "events/types.h"
#include "infra/base/json.h"
#include "tests/testing/http_client.h"
#include "tests/testing/process.h"
#include "tests/testing/runlogd.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace runlog {
namespace {

using namespace std::chrono_literals;
using runlog::testing::Execute;
using runlog::testing::HttpClient;
using runlog::testing::Outcome;
namespace fs = std::filesystem;

constexpr char kKey[] = "tamper-admin-key";
constexpr uint32_t kPartitions = 4;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// One real log, written once for every case: tasks with plans of two math
// steps, a replay, shut down cleanly (a last checkpoint covers everything).
class Tamper : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new runlog::testing::TempDir();
    const std::string data = *dir_ / "data";
    ::setenv("RUNLOG_ADMIN_KEY", kKey, 1);
    std::string url;
    auto server = runlog::testing::StartRunlogd(data, &url, {"--sign-every-ms", "300"});
    ASSERT_TRUE(server);
    HttpClient client(url);
    client.SetKey(kKey);
    std::vector<std::string> ids;
    runlog::testing::HttpResponse first;  // the consistency test's "from"
    for (int i = 0; i < 24; ++i) {
      if (i == 12) {  // half the tasks done, then a checkpoint signed after them
        for (const std::string& id : ids) {
          ASSERT_TRUE(runlog::testing::WaitFor(
              [&] { return client.Get("/v1/tasks/" + id).Str("status") == "succeeded"; }, 20s));
        }
        std::this_thread::sleep_for(700ms);  // two signing intervals
        first = client.Get("/v1/checkpoints/latest");
        ASSERT_EQ(first.status, 200) << first.body;
      }
      auto created = client.Post(
          "/v1/tasks", R"({"type":"sum","input":{"n":)" + std::to_string(i) +
                           R"(},"plan":{"steps":[{"tool":"math","input":{"expression":"1+)" +
                           std::to_string(i) +
                           R"("}},{"tool":"math","input":{"expression":"2*3"}}]}})");
      ASSERT_EQ(created.status, 201) << created.body;
      ids.push_back(created.Str("id"));
    }
    for (const std::string& id : ids) {
      ASSERT_TRUE(runlog::testing::WaitFor(
          [&] { return client.Get("/v1/tasks/" + id).Str("status") == "succeeded"; }, 20s));
    }
    auto replay = client.Post("/v1/tasks/" + ids[0] + "/replay", "{}");
    ASSERT_TRUE(replay.status == 200 || replay.status == 201) << replay.body;
    const std::string replay_id = replay.Str("id");
    ASSERT_TRUE(runlog::testing::WaitFor(
        [&] { return client.Get("/v1/tasks/" + replay_id).Str("status") == "succeeded"; }, 20s));
    auto receipt = client.Get("/v1/tasks/" + ids[1] + "/receipt");
    ASSERT_EQ(receipt.status, 200) << receipt.body;
    WriteFile(*dir_ / "receipt.json", receipt.body);
    std::this_thread::sleep_for(700ms);  // a checkpoint signed after everything
    auto last = client.Get("/v1/checkpoints/latest");
    ASSERT_EQ(last.status, 200) << last.body;
    ASSERT_GT(last["tree_size"].GetUint64(), first["tree_size"].GetUint64());
    auto consistency = client.Get(
        "/v1/checkpoints/consistency?from=" + std::to_string(first["tree_size"].GetUint64()) +
        "&to=" + std::to_string(last["tree_size"].GetUint64()));
    ASSERT_EQ(consistency.status, 200) << consistency.body;
    WriteFile(*dir_ / "consistency.json", consistency.body);
    auto key = client.Get("/v1/checkpoints/key");
    ASSERT_EQ(key.status, 200) << key.body;
    WriteFile(*dir_ / "vkey", key.Str("verifier_key") + "\n");
    server->Signal(SIGTERM);
    ASSERT_EQ(server->Wait(), 0);
    Outcome exported = Execute({RUNLOG_PATH, "export", "--data", data, "--partitions", "4", "--out",
                                *dir_ / "export.jsonl"});
    ASSERT_EQ(exported.code, 0) << exported.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static std::string Data() { return *dir_ / "data"; }
  static std::string Vkey() { return *dir_ / "vkey"; }

  // A copy of the data directory, to damage.
  std::string CopyOfData() {
    const std::string copy = scratch_ / ("data-" + std::to_string(copies_++));
    fs::copy(Data(), copy, fs::copy_options::recursive);
    return copy;
  }

  // The records of every partition of `data`, read through the log.
  static std::vector<std::vector<events::LogRecord>> Records(const std::string& data) {
    events::LogOptions o;
    o.data_dir = data;
    o.partitions = kPartitions;
    auto log = events::OpenEventLog(o);
    EXPECT_TRUE(log.has_value());
    std::vector<std::vector<events::LogRecord>> out(kPartitions);
    for (uint32_t p = 0; p < kPartitions; ++p) {
      auto r = (*log)->Read(p, 0, 100000);
      EXPECT_TRUE(r.has_value());
      out[p] = std::move(*r);
    }
    return out;
  }

  // The busiest partition other than the checkpoints', and a step.finished
  // in its middle (not its last record).
  static void Pick(const std::vector<std::vector<events::LogRecord>>& all, uint32_t* p,
                   uint64_t* offset) {
    const uint32_t cp = events::PartitionFor(events::kCheckpointAggregate, kPartitions);
    *p = cp == 0 ? 1 : 0;
    for (uint32_t q = 0; q < kPartitions; ++q) {
      if (q != cp && all[q].size() > all[*p].size()) *p = q;
    }
    const auto& records = all[*p];
    for (size_t i = records.size() / 2; i + 1 < records.size(); ++i) {
      if (records[i].event.type == "step.finished") {
        *offset = records[i].offset;
        return;
      }
    }
    FAIL() << "no step.finished in the middle of partition " << *p;
  }

  // Runs the audit over `data` and expects it to fail naming each of `wanted`.
  static void ExpectCaught(const std::vector<std::string>& audit_args,
                           const std::vector<std::string>& wanted) {
    std::vector<std::string> argv = {RUNLOG_PATH, "audit", "--partitions", "4"};
    argv.insert(argv.end(), audit_args.begin(), audit_args.end());
    Outcome r = Execute(argv);
    EXPECT_EQ(r.code, 1) << r.out << r.err;
    for (const std::string& w : wanted) {
      EXPECT_NE(r.out.find(w), std::string::npos) << "wanted \"" << w << "\" in:\n" << r.out;
    }
  }

  // Rewrites the log of `data` through RocksDB: `edit` changes the stored records.
  static void EditLog(const std::string& data, const std::function<void(rocksdb::DB&)>& edit) {
    rocksdb::DB* raw = nullptr;
    rocksdb::Options o;
    ASSERT_TRUE(rocksdb::DB::Open(o, data + "/log", &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    edit(*db);
    ASSERT_TRUE(db->Flush(rocksdb::FlushOptions()).ok());
  }

  static std::string Get(rocksdb::DB& db, uint32_t p, uint64_t offset) {
    std::string v;
    EXPECT_TRUE(db.Get(rocksdb::ReadOptions(), events::EmbeddedLogKey(p, offset), &v).ok());
    return v;
  }
  static void Put(rocksdb::DB& db, uint32_t p, uint64_t offset, const std::string& v) {
    ASSERT_TRUE(db.Put(rocksdb::WriteOptions(), events::EmbeddedLogKey(p, offset), v).ok());
  }
  static void Delete(rocksdb::DB& db, uint32_t p, uint64_t offset) {
    ASSERT_TRUE(db.Delete(rocksdb::WriteOptions(), events::EmbeddedLogKey(p, offset)).ok());
  }

  // The record re-encoded after `change`, keeping its link: what a forger
  // who knows the format writes (the checksum is right).
  static std::string Forged(const std::string& stored,
                            const std::function<void(events::Event&)>& change) {
    std::string prev;
    auto e = events::DecodeEvent(stored, &prev);
    EXPECT_TRUE(e.has_value());
    change(*e);
    return events::EncodeRecord(*e, false, prev);
  }

  // A step.finished payload whose output is changed and whose step_hash is
  // recomputed to match (docs/hashing.md), given its step.started's payload.
  static std::string ForgedStep(const std::string& finished, const std::string& started) {
    auto start = events::Decode(events::Event{"step.started", 1, "e", "a", "", 1, 0, started});
    EXPECT_TRUE(start.has_value());
    const auto& s = std::get<events::StepStarted>(*start);
    events::StepRecord step;
    step.index = s.step_index;
    step.tool = s.tool;
    step.tool_version = s.tool_version;
    step.input = s.input;
    step.status = "succeeded";
    step.output = R"({"result":1000})";
    json::Document doc;
    EXPECT_TRUE(json::Parse(finished, &doc));
    json::Document output;
    EXPECT_TRUE(json::Parse(step.output, &output));
    doc["output"].CopyFrom(output, doc.GetAllocator());
    doc["step_hash"].SetString(events::StepHash(step).c_str(), doc.GetAllocator());
    return events::CanonicalText(doc);
  }
  // The payload of the step.started before `o` in `records` (same task).
  static std::string StartedBefore(const std::vector<events::LogRecord>& records, uint64_t o) {
    std::string task, started;
    for (const auto& r : records) {
      if (r.offset == o) task = r.event.aggregate_id;
    }
    for (const auto& r : records) {
      if (r.offset < o && r.event.aggregate_id == task && r.event.type == "step.started") {
        started = r.event.payload;
      }
    }
    return started;
  }

  static std::string At(uint32_t p, uint64_t offset) {
    return "partition " + std::to_string(p) + " offset " + std::to_string(offset) + ":";
  }

  static runlog::testing::TempDir* dir_;
  runlog::testing::TempDir scratch_;
  int copies_ = 0;
};
runlog::testing::TempDir* Tamper::dir_ = nullptr;

TEST_F(Tamper, TheUntouchedLogAndExportAuditCleanAndSayWhatTheyChecked) {
  Outcome r = Execute({RUNLOG_PATH, "audit", "--data", Data(), "--partitions", "4", "--json"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  json::Document doc;
  ASSERT_TRUE(json::Parse(r.out, &doc)) << r.out;
  EXPECT_GT(json::Int(doc, "chained"), 100);
  EXPECT_EQ(json::Int(doc, "chained"), json::Int(doc, "events"));
  EXPECT_GE(json::Int(doc, "checkpoints"), 1);
  EXPECT_GE(json::Int(doc, "roots_checked"), 1);
  EXPECT_EQ(json::Int(doc, "results"), 25);  // every task, and the replay
  EXPECT_EQ(json::Int(doc, "replays"), 1);
  Outcome e = Execute({RUNLOG_PATH, "audit", "--export", *dir_ / "export.jsonl", "--partitions",
                       "4", "--key", Vkey(), "--json"});
  ASSERT_EQ(e.code, 0) << e.out << e.err;
  json::Document edoc;
  ASSERT_TRUE(json::Parse(e.out, &edoc)) << e.out;
  EXPECT_EQ(json::Int(edoc, "chained"), json::Int(doc, "chained"));
  EXPECT_EQ(json::Int(edoc, "roots_checked"), json::Int(doc, "roots_checked"));
}

// A witness holding the first checkpoint checks, from the two signed notes
// and the proofs alone, that the newer log only grew from it.
TEST_F(Tamper, ConsistencyProofsBetweenTwoCheckpointsVerifyAndAChangedOneDoesNot) {
  json::Document doc;
  ASSERT_TRUE(json::Parse(ReadFile(*dir_ / "consistency.json"), &doc));
  auto text = [](const rapidjson::Value& note) {
    std::string s = note.GetString();
    return s.substr(0, s.find("\n\n") + 1);  // the note's text, before its signatures
  };
  auto from = events::ParseCheckpointText(text(doc["from"]));
  auto to = events::ParseCheckpointText(text(doc["to"]));
  ASSERT_TRUE(from && to);
  int grown = 0;
  for (const auto& p : doc["partitions"].GetArray()) {
    const auto i = static_cast<size_t>(p["partition"].GetInt());
    const uint64_t a = p["from_size"].GetUint64(), b = p["to_size"].GetUint64();
    ASSERT_EQ(a, from->partitions[i].size);
    ASSERT_EQ(b, to->partitions[i].size);
    std::vector<std::string> proof;
    for (const auto& h : p["proof"].GetArray()) proof.push_back(events::FromBase64(h.GetString()));
    EXPECT_TRUE(events::merkle::VerifyConsistency(a, b, from->partitions[i].root,
                                                  to->partitions[i].root, proof))
        << "partition " << i << ": " << a << " -> " << b;
    if (a > 0 && b > a && !proof.empty()) {
      ++grown;
      proof.back()[0] ^= 1;
      EXPECT_FALSE(events::merkle::VerifyConsistency(a, b, from->partitions[i].root,
                                                     to->partitions[i].root, proof));
    }
  }
  EXPECT_GE(grown, 2) << "the partitions barely grew between the checkpoints: "
                      << ReadFile(*dir_ / "consistency.json");
}

TEST_F(Tamper, AFlippedByteIsCaughtAtItsRecord) {
  const std::string data = CopyOfData();
  uint32_t p;
  uint64_t o;
  Pick(Records(data), &p, &o);
  EditLog(data, [&](rocksdb::DB& db) {
    std::string v = Get(db, p, o);
    v[v.size() / 2] ^= 0x01;
    Put(db, p, o, v);
  });
  ExpectCaught({"--data", data}, {At(p, o) + " unreadable record: record checksum mismatch"});
}

TEST_F(Tamper, AnEditedPayloadWithItsHashesAndChecksumRecomputedBreaksTheChain) {
  const std::string data = CopyOfData();
  uint32_t p;
  uint64_t o;
  auto all = Records(data);
  Pick(all, &p, &o);
  const std::string started = StartedBefore(all[p], o);
  EditLog(data, [&](rocksdb::DB& db) {
    // The step's output changed, and its step_hash recomputed to match.
    Put(db, p, o, Forged(Get(db, p, o), [&](events::Event& e) {
          e.payload = ForgedStep(e.payload, started);
        }));
  });
  ExpectCaught({"--data", data},
               {At(p, o + 1) + " hash chain broken", "(offset " + std::to_string(o) + ")"});
}

TEST_F(Tamper, AnEditedUnhashedFieldBreaksTheChain) {
  const std::string data = CopyOfData();
  uint32_t p;
  uint64_t o;
  Pick(Records(data), &p, &o);
  EditLog(data, [&](rocksdb::DB& db) {
    Put(db, p, o, Forged(Get(db, p, o), [](events::Event& e) { e.timestamp_ms += 1; }));
  });
  ExpectCaught({"--data", data}, {At(p, o + 1) + " hash chain broken"});
}

TEST_F(Tamper, TwoReorderedRecordsBreakTheChainWhereTheySit) {
  const std::string data = CopyOfData();
  uint32_t p;
  uint64_t o;
  Pick(Records(data), &p, &o);
  EditLog(data, [&](rocksdb::DB& db) {
    const std::string a = Get(db, p, o), b = Get(db, p, o + 1);
    Put(db, p, o, b);
    Put(db, p, o + 1, a);
  });
  ExpectCaught({"--data", data}, {At(p, o) + " hash chain broken", At(p, o + 1)});
}

TEST_F(Tamper, ADeletedMiddleRecordIsMissingAndBreaksTheChain) {
  const std::string data = CopyOfData();
  uint32_t p;
  uint64_t o;
  Pick(Records(data), &p, &o);
  EditLog(data, [&](rocksdb::DB& db) { Delete(db, p, o); });
  ExpectCaught({"--data", data}, {At(p, o) + " record missing", At(p, o + 1) + " hash chain"});
}

TEST_F(Tamper, ADeletedLastRecordIsCaughtAgainstTheNewestCheckpoint) {
  const std::string data = CopyOfData();
  uint32_t p;
  uint64_t o;
  auto all = Records(data);
  Pick(all, &p, &o);
  const uint64_t last = all[p].back().offset;
  EditLog(data, [&](rocksdb::DB& db) { Delete(db, p, last); });
  ExpectCaught({"--data", data}, {At(p, last), "records at its end were removed"});
}

TEST_F(Tamper, AWholeTaskDeletedFromTheEndOfAPartitionIsCaughtAgainstTheNewestCheckpoint) {
  const std::string data = CopyOfData();
  uint32_t p;
  uint64_t o;
  auto all = Records(data);
  Pick(all, &p, &o);
  // From the first record of the task that wrote the partition's last record.
  const std::string task = all[p].back().event.aggregate_id;
  uint64_t first = all[p].back().offset;
  for (const auto& r : all[p]) {
    if (r.event.aggregate_id == task) {
      first = r.offset;
      break;
    }
  }
  ASSERT_LT(first, all[p].back().offset);
  EditLog(data, [&](rocksdb::DB& db) {
    for (uint64_t at = first; at <= all[p].back().offset; ++at) Delete(db, p, at);
  });
  ExpectCaught({"--data", data}, {At(p, first), "records at its end were removed"});
}

// The same cases on the export: lines edited as text.
class TamperedExport : public Tamper {
 protected:
  struct Line {
    uint32_t partition;
    uint64_t offset;
    std::string text;
  };
  static std::vector<Line> Lines() {
    std::vector<Line> out;
    std::string all = ReadFile(*dir_ / "export.jsonl");
    for (size_t at = 0; at < all.size();) {
      const size_t nl = all.find('\n', at);
      Line l{0, 0, all.substr(at, nl - at)};
      json::Document doc;
      EXPECT_TRUE(json::Parse(l.text, &doc));
      l.partition = static_cast<uint32_t>(json::Int(doc, "partition"));
      l.offset = static_cast<uint64_t>(json::Int(doc, "offset"));
      out.push_back(std::move(l));
      at = nl + 1;
    }
    return out;
  }
  // Index of a step.finished line in the middle of the busiest non-checkpoint partition.
  static size_t PickLine(const std::vector<Line>& lines, uint32_t* p) {
    uint64_t o = 0;
    Pick(Records(Data()), p, &o);
    for (size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].partition == *p && lines[i].offset == o) return i;
    }
    ADD_FAILURE() << "no line for partition " << *p << " offset " << o;
    return 0;
  }
  void ExpectExportCaught(const std::vector<Line>& lines, const std::vector<std::string>& wanted) {
    std::string text;
    for (const Line& l : lines) text += l.text + "\n";
    const std::string path = scratch_ / ("export-" + std::to_string(copies_++) + ".jsonl");
    WriteFile(path, text);
    ExpectCaught({"--export", path, "--key", Vkey()}, wanted);
  }
};

TEST_F(TamperedExport, EveryEditForgeryReorderingAndDeletionIsCaught) {
  uint32_t p;
  const auto original = Lines();
  const size_t i = PickLine(original, &p);
  const uint64_t o = original[i].offset;
  {  // a byte flipped (inside a string, so the line still parses)
    auto lines = original;
    const size_t at = lines[i].text.find("evt_") + 6;
    lines[i].text[at] = lines[i].text[at] == 'a' ? 'b' : 'a';
    ExpectExportCaught(lines, {At(p, o + 1) + " hash chain broken"});
  }
  {  // the payload edited, and its step_hash recomputed
    auto lines = original;
    json::Document doc;
    ASSERT_TRUE(json::Parse(lines[i].text, &doc));
    const std::string payload = events::CanonicalText(doc["event"]["payload"]);
    const std::string forged = ForgedStep(payload, StartedBefore(Records(Data())[p], o));
    lines[i].text.replace(lines[i].text.find(payload), payload.size(), forged);
    ExpectExportCaught(lines, {At(p, o + 1) + " hash chain broken"});
  }
  {  // an unhashed field edited
    auto lines = original;
    const size_t at = lines[i].text.find("\"timestamp_ms\":") + 16;
    lines[i].text[at] = lines[i].text[at] == '1' ? '2' : '1';
    ExpectExportCaught(lines, {At(p, o + 1) + " hash chain broken"});
  }
  {  // two events reordered
    auto lines = original;
    std::swap(lines[i].text, lines[i + 1].text);
    ExpectExportCaught(lines, {At(p, o) + " hash chain broken"});
  }
  {  // the middle event deleted
    auto lines = original;
    lines.erase(lines.begin() + static_cast<long>(i));
    ExpectExportCaught(lines, {At(p, o) + " record missing", At(p, o + 1) + " hash chain"});
  }
  size_t last = i;
  while (last + 1 < original.size() && original[last + 1].partition == p) ++last;
  {  // the last event of the partition deleted
    auto lines = original;
    lines.erase(lines.begin() + static_cast<long>(last));
    ExpectExportCaught(lines, {At(p, original[last].offset), "records at its end were removed"});
  }
  {  // a whole task at the end of the partition deleted
    json::Document doc;
    ASSERT_TRUE(json::Parse(original[last].text, &doc));
    const std::string task = doc["event"]["aggregate_id"].GetString();
    size_t first = last;
    for (size_t k = i; k <= last; ++k) {
      if (original[k].text.find("\"aggregate_id\":\"" + task + "\"") != std::string::npos) {
        first = k;
        break;
      }
    }
    auto lines = original;
    lines.erase(lines.begin() + static_cast<long>(first),
                lines.begin() + static_cast<long>(last) + 1);
    ExpectExportCaught(lines, {At(p, original[first].offset), "records at its end were removed"});
  }
}

// A receipt checks with runlog verify-receipt and with the Python script of
// docs/receipts.md, exactly as printed there; with one byte changed, neither accepts it.
TEST_F(Tamper, AReceiptVerifiesOfflineAndNotWithOneByteChanged) {
  const std::string doc = ReadFile(std::string(SOURCE_DIR) + "/docs/receipts.md");
  const std::string marker = "<!-- verify_receipt.py -->\n```python\n";
  const size_t start = doc.find(marker);
  ASSERT_NE(start, std::string::npos);
  const size_t end = doc.find("\n```", start + marker.size());
  const std::string script = scratch_ / "verify_receipt.py";
  WriteFile(script, doc.substr(start + marker.size(), end - start - marker.size() + 1));
  const std::string receipt = *dir_ / "receipt.json";
  Outcome ok = Execute({RUNLOG_PATH, "verify-receipt", receipt, "--key", Vkey()});
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("the last task.succeeded"), std::string::npos) << ok.out;
  Outcome py = Execute({"/usr/bin/env", "python3", script, receipt, Vkey()});
  EXPECT_EQ(py.code, 0) << py.out << py.err;
  EXPECT_NE(py.out.find("OK task_"), std::string::npos) << py.out;
  EXPECT_NE(py.out.find("task.succeeded"), std::string::npos) << py.out;

  std::string changed = ReadFile(receipt);
  const size_t at = changed.find("\"record\":\"") + 20;  // inside the first record's base64
  changed[at] = changed[at] == 'A' ? 'B' : 'A';
  const std::string bad = scratch_ / "receipt-changed.json";
  WriteFile(bad, changed);
  Outcome refused = Execute({RUNLOG_PATH, "verify-receipt", bad, "--key", Vkey()});
  EXPECT_EQ(refused.code, 1) << refused.out << refused.err;
  EXPECT_NE(refused.out.find("REFUSED"), std::string::npos) << refused.out;
  Outcome py_refused = Execute({"/usr/bin/env", "python3", script, bad, Vkey()});
  EXPECT_NE(py_refused.code, 0) << py_refused.out << py_refused.err;
  EXPECT_NE(py_refused.err.find("AssertionError"), std::string::npos) << py_refused.err;
}

}  // namespace
}  // namespace runlog
