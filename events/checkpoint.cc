#include "events/checkpoint.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <filesystem>

#include "events/bytes.h"
#include "events/merkle.h"
#include "events/sha256.h"

namespace runlog::events {
namespace {

constexpr char kEd25519 = 0x01;
constexpr std::string_view kDash = "\xE2\x80\x94 ";  // U+2014 EM DASH, space

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    if (nl == std::string_view::npos) {
      out.push_back(text);
      break;
    }
    out.push_back(text.substr(0, nl));
    text.remove_prefix(nl + 1);
  }
  return out;
}

// Base64 that is exactly what encoding its bytes gives: no other spelling of
// the same bytes (unused low bits set, say) is accepted.
std::string StrictBase64(std::string_view text) {
  std::string bytes = FromBase64(text);
  return Base64(bytes) == text ? bytes : "";
}

bool ParseU64(std::string_view s, uint64_t* v) {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && end == s.data() + s.size();
}

Result<std::string> Root32(std::string_view base64) {
  std::string root = StrictBase64(base64);
  if (root.size() != 32) return Fail(codes::kInvalidArgument, "a root is not 32 bytes of base64");
  return root;
}

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

bool Ed25519Verify(std::string_view public_key, std::string_view message,
                   std::string_view signature) {
  Pkey key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                       reinterpret_cast<const unsigned char*>(public_key.data()),
                                       public_key.size()));
  if (!key) return false;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                          message.size()) == 1;
}

}  // namespace

uint64_t Checkpoint::total() const {
  uint64_t n = 0;
  for (const auto& p : partitions) n += p.size;
  return n;
}

std::string Checkpoint::Root() const {
  merkle::Frontier f;
  for (size_t p = 0; p < partitions.size(); ++p) {
    std::string leaf;
    PutBigEndian(leaf, p, 4);
    PutBigEndian(leaf, partitions[p].size, 8);
    leaf.append(partitions[p].root);
    f.Append(merkle::LeafHash(leaf));
  }
  return f.Root();
}

std::string Checkpoint::Text() const {
  std::string out = origin + "\n" + std::to_string(total()) + "\n" + Base64(Root()) + "\n";
  for (size_t p = 0; p < partitions.size(); ++p) {
    out += "partition " + std::to_string(p) + " " + std::to_string(partitions[p].size) + " " +
           Base64(partitions[p].root) + "\n";
  }
  return out;
}

Result<Checkpoint> ParseCheckpointText(std::string_view text) {
  if (text.empty() || text.back() != '\n') {
    return Fail(codes::kInvalidArgument, "a checkpoint's text ends with a newline");
  }
  const auto lines = Lines(text);
  if (lines.size() < 4) return Fail(codes::kInvalidArgument, "a checkpoint has at least 4 lines");
  Checkpoint c;
  c.origin = std::string(lines[0]);
  uint64_t total = 0;
  if (c.origin.empty() || !ParseU64(lines[1], &total)) {
    return Fail(codes::kInvalidArgument, "a checkpoint starts with its origin and tree size");
  }
  auto root = Root32(lines[2]);
  if (!root) return std::unexpected(root.error());
  for (size_t i = 3; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    const std::string expect = "partition " + std::to_string(i - 3) + " ";
    const size_t space = line.rfind(' ');
    PartitionHead head;
    if (!line.starts_with(expect) || space < expect.size() ||
        !ParseU64(line.substr(expect.size(), space - expect.size()), &head.size)) {
      return Fail(codes::kInvalidArgument,
                  "checkpoint line " + std::to_string(i + 1) + " is not `" + expect + "SIZE ROOT`");
    }
    auto r = Root32(line.substr(space + 1));
    if (!r) return std::unexpected(r.error());
    head.root = std::move(*r);
    c.partitions.push_back(std::move(head));
  }
  if (c.total() != total || c.Root() != *root) {
    return Fail(codes::kInvalidArgument,
                "the checkpoint's size and root are not those of its partitions");
  }
  return c;
}

uint32_t NoteKey::KeyId() const {
  std::string in = name + "\n";
  in.push_back(kEd25519);
  in.append(public_key);
  return static_cast<uint32_t>(GetBigEndian(std::string_view(Sha256(in)).substr(0, 4)));
}

std::string NoteKey::VerifierString() const {
  std::string id;
  PutBigEndian(id, KeyId(), 4);
  return name + "+" + HexOf(id) + "+" + Base64(std::string(1, kEd25519) + public_key);
}

Result<NoteKey> NoteKey::FromVerifierString(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  // The name holds no '+'; the base64 key may.
  const size_t first = text.find('+');
  const size_t second = first == std::string_view::npos ? first : text.find('+', first + 1);
  if (second == std::string_view::npos || first == 0) {
    return Fail(codes::kInvalidArgument, "a verifier key is NAME+KEYID+BASE64");
  }
  NoteKey key{std::string(text.substr(0, first)), ""};
  const std::string raw = StrictBase64(text.substr(second + 1));
  if (raw.size() != 33 || raw[0] != kEd25519) {
    return Fail(codes::kInvalidArgument, "the verifier key is not an Ed25519 key");
  }
  key.public_key = raw.substr(1);
  std::string id;
  PutBigEndian(id, key.KeyId(), 4);
  if (text.substr(first + 1, second - first - 1) != HexOf(id)) {
    return Fail(codes::kInvalidArgument, "the verifier key's id does not match its name and key");
  }
  return key;
}

Result<Checkpoint> VerifyCheckpointNote(std::string_view note, const NoteKey& key) {
  const size_t split = note.find("\n\n");
  if (split == std::string_view::npos) {
    return Fail(codes::kInvalidArgument, "a signed note is text, a blank line, signatures");
  }
  const std::string_view text = note.substr(0, split + 1);
  std::string id;
  PutBigEndian(id, key.KeyId(), 4);
  bool signed_by_key = false;
  for (std::string_view line : Lines(note.substr(split + 2))) {
    if (!line.starts_with(kDash)) {
      return Fail(codes::kInvalidArgument, "a signature line starts with an em dash");
    }
    line.remove_prefix(kDash.size());
    const size_t space = line.rfind(' ');
    if (space == std::string_view::npos) return Fail(codes::kInvalidArgument, "bad signature line");
    const std::string sig = StrictBase64(line.substr(space + 1));
    if (line.substr(0, space) != key.name || sig.size() < 4 || sig.substr(0, 4) != id) {
      continue;  // another key's: ignored, as C2SP says
    }
    if (sig.size() != 68 || !Ed25519Verify(key.public_key, text, std::string_view(sig).substr(4))) {
      return Fail(codes::kInvalidArgument, "the signature by " + key.name + " does not verify");
    }
    signed_by_key = true;
  }
  if (!signed_by_key) return Fail(codes::kInvalidArgument, "no signature by " + key.name);
  auto c = ParseCheckpointText(text);
  if (!c) return c;
  if (c->origin != key.name) {
    return Fail(codes::kInvalidArgument, "the checkpoint's origin is not the key's name");
  }
  return c;
}

NoteSigner::~NoteSigner() { EVP_PKEY_free(static_cast<EVP_PKEY*>(pkey_)); }

Result<std::unique_ptr<NoteSigner>> NoteSigner::LoadOrCreate(const std::string& path,
                                                             const std::string& name) {
  Pkey pkey;
  if (std::FILE* f = std::fopen(path.c_str(), "r"); f != nullptr) {
    pkey.reset(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
    std::fclose(f);
    if (!pkey || EVP_PKEY_id(pkey.get()) != EVP_PKEY_ED25519) {
      return Fail(codes::kInvalidArgument, path + " does not hold an Ed25519 private key (PEM)");
    }
  } else {
    pkey.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    if (!pkey) return Fail(codes::kInternal, "cannot generate an Ed25519 key");
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    std::FILE* out = fd < 0 ? nullptr : ::fdopen(fd, "w");
    const bool ok = out != nullptr &&
                    PEM_write_PrivateKey(out, pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) &&
                    std::fflush(out) == 0 && ::fsync(fd) == 0;
    if (out != nullptr) std::fclose(out);
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
      return Fail(codes::kUnavailable, "cannot write the signing key to " + path);
    }
  }
  unsigned char pub[32];
  size_t len = sizeof(pub);
  if (EVP_PKEY_get_raw_public_key(pkey.get(), pub, &len) != 1 || len != 32) {
    return Fail(codes::kInternal, "cannot read the signing key's public half");
  }
  std::unique_ptr<NoteSigner> signer(new NoteSigner());
  signer->key_.public_key.assign(reinterpret_cast<const char*>(pub), len);
  signer->key_.name =
      name.empty() ? "runlog/" + Sha256Hex(signer->key_.public_key).substr(0, 16) : name;
  signer->pkey_ = pkey.release();
  return signer;
}

Result<std::string> NoteSigner::Sign(std::string_view text) const {
  if (text.empty() || text.back() != '\n') {
    return Fail(codes::kInvalidArgument, "a note's text ends with a newline");
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  unsigned char sig[64];
  size_t len = sizeof(sig);
  if (!ctx ||
      EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(pkey_)) !=
          1 ||
      EVP_DigestSign(ctx.get(), sig, &len, reinterpret_cast<const unsigned char*>(text.data()),
                     text.size()) != 1) {
    return Fail(codes::kInternal, "Ed25519 signing failed");
  }
  std::string blob;
  PutBigEndian(blob, key_.KeyId(), 4);
  blob.append(reinterpret_cast<const char*>(sig), len);
  return std::string(text) + "\n" + std::string(kDash) + key_.name + " " + Base64(blob) + "\n";
}

}  // namespace runlog::events
