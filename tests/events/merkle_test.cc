// RFC 6962 trees, proofs and signed checkpoints (events/merkle.h,
// events/checkpoint.h), checked against RFC 6962's published test tree and
// against every tree and proof up to a size, and against tampering.

#include "events/merkle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "events/checkpoint.h"
#include "events/sha256.h"

namespace runlog::events {
namespace {

// A tree kept whole in memory, the way a store keeps it: every complete subtree.
struct MemoryTree {
  merkle::Frontier frontier;
  std::map<std::pair<int, uint64_t>, std::string> nodes;

  void Add(std::string_view data) {
    frontier.Append(merkle::LeafHash(data), [&](int level, uint64_t index, const std::string& h) {
      nodes[{level, index}] = h;
    });
  }
  merkle::NodeSource Source() const {
    return [this](int level, uint64_t index) -> Result<std::string> {
      auto it = nodes.find({level, index});
      if (it == nodes.end()) return Fail(codes::kNotFound, "no node");
      return it->second;
    };
  }
};

std::string Unhex(std::string_view hex) {
  std::string out;
  EXPECT_TRUE(UnHex(hex, &out)) << hex;
  return out;
}

// The eight leaves of the test tree in RFC 6962's reference implementation
// (certificate-transparency, merkle_tree_test), and its roots.
TEST(Merkle, MatchesTheReferenceTestTree) {
  const std::vector<std::string> leaves = {"",
                                           "00",
                                           "10",
                                           "2021",
                                           "3031",
                                           "40414243",
                                           "5051525354555657",
                                           "606162636465666768696a6b6c6d6e6f"};
  MemoryTree tree;
  EXPECT_EQ(HexOf(tree.frontier.Root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  for (const auto& l : leaves) tree.Add(Unhex(l));
  EXPECT_EQ(HexOf(tree.frontier.Root()),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328");
  MemoryTree one;
  one.Add("");
  EXPECT_EQ(HexOf(one.frontier.Root()),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
}

// Every root, inclusion proof and consistency proof up to 40 leaves checks,
// and a proof with any one byte changed, or for another leaf, does not.
TEST(Merkle, EveryProofUpToFortyLeavesVerifiesAndNoAlteredOneDoes) {
  MemoryTree tree;
  std::vector<std::string> roots = {merkle::EmptyRoot()};
  for (int i = 0; i < 40; ++i) {
    tree.Add("leaf " + std::to_string(i));
    roots.push_back(tree.frontier.Root());
    auto range = merkle::RangeHash(0, tree.frontier.size(), tree.Source());
    ASSERT_TRUE(range.has_value());
    EXPECT_EQ(*range, roots.back()) << "size " << i + 1;
    auto loaded = merkle::Frontier::Load(tree.frontier.size(), tree.Source());
    ASSERT_TRUE(loaded.has_value());
    EXPECT_EQ(loaded->Root(), roots.back());
  }
  for (uint64_t size = 1; size <= 40; ++size) {
    for (uint64_t i = 0; i < size; ++i) {
      auto proof = merkle::InclusionProof(i, size, tree.Source());
      ASSERT_TRUE(proof.has_value());
      const std::string leaf = merkle::LeafHash("leaf " + std::to_string(i));
      EXPECT_TRUE(merkle::VerifyInclusion(leaf, i, size, *proof, roots[size])) << i << "/" << size;
      EXPECT_FALSE(merkle::VerifyInclusion(leaf, i, size, *proof, roots[size - 1]));
      if (size > 1) {
        EXPECT_FALSE(merkle::VerifyInclusion(leaf, (i + 1) % size, size, *proof, roots[size]));
        auto bad = *proof;
        bad[0][3] ^= 1;
        EXPECT_FALSE(merkle::VerifyInclusion(leaf, i, size, bad, roots[size]));
      }
    }
    for (uint64_t from = 0; from <= size; ++from) {
      auto proof = merkle::ConsistencyProof(from, size, tree.Source());
      ASSERT_TRUE(proof.has_value());
      EXPECT_TRUE(merkle::VerifyConsistency(from, size, roots[from], roots[size], *proof))
          << from << " -> " << size;
      if (from > 0 && from < size) {
        EXPECT_FALSE(merkle::VerifyConsistency(from, size, roots[from - 1], roots[size], *proof));
        auto bad = *proof;
        bad.back()[0] ^= 1;
        EXPECT_FALSE(merkle::VerifyConsistency(from, size, roots[from], roots[size], bad));
      }
    }
  }
}

TEST(Checkpoint, SignsAndVerifiesAsACheckpointNoteAndRefusesAnyChange) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("runlog-checkpoint-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto signer = NoteSigner::LoadOrCreate((dir / "signing.key").string(), "");
  ASSERT_TRUE(signer.has_value()) << signer.error().ToString();
  EXPECT_EQ(
      std::filesystem::status(dir / "signing.key").permissions() & std::filesystem::perms::all,
      std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  // The same key comes back from the file.
  auto again = NoteSigner::LoadOrCreate((dir / "signing.key").string(), "");
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ((*again)->key().VerifierString(), (*signer)->key().VerifierString());
  auto key = NoteKey::FromVerifierString((*signer)->key().VerifierString());
  ASSERT_TRUE(key.has_value()) << key.error().ToString();
  // Base64 may hold '+', the separator: the name never does.
  NoteKey plus{"runlog/x", std::string(32, '\xFB')};
  const std::string text = plus.VerifierString();
  ASSERT_GT(std::count(text.begin(), text.end(), '+'), 2) << text;
  auto parsed = NoteKey::FromVerifierString(text + "\n");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().ToString();
  EXPECT_EQ(parsed->public_key, plus.public_key);
  EXPECT_EQ(parsed->name, "runlog/x");

  Checkpoint c{(*signer)->key().name, {{3, Sha256("a")}, {0, merkle::EmptyRoot()}}};
  auto note = (*signer)->Sign(c.Text());
  ASSERT_TRUE(note.has_value());
  EXPECT_TRUE(note->starts_with(c.origin + "\n3\n")) << *note;
  EXPECT_NE(note->find("\n\n\xE2\x80\x94 " + c.origin + " "), std::string::npos) << *note;
  auto verified = VerifyCheckpointNote(*note, *key);
  ASSERT_TRUE(verified.has_value()) << verified.error().ToString();
  EXPECT_EQ(verified->partitions.size(), 2u);
  EXPECT_EQ(verified->Root(), c.Root());
  for (size_t i = 0; i < note->size(); ++i) {
    std::string bad = *note;
    bad[i] = static_cast<char>(bad[i] ^ 1);
    EXPECT_FALSE(VerifyCheckpointNote(bad, *key).has_value()) << "byte " << i;
  }
  // Another key's signature is not this key's.
  std::filesystem::remove(dir / "signing.key");
  auto other = NoteSigner::LoadOrCreate((dir / "signing.key").string(), c.origin);
  ASSERT_TRUE(other.has_value());
  EXPECT_FALSE(VerifyCheckpointNote((*other)->Sign(c.Text()).value(), *key).has_value());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace runlog::events
