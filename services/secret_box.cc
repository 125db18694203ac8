#include "services/secret_box.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "infra/base/error_codes.h"

namespace runlog::services {
namespace {

constexpr size_t kKeyBytes = 32, kNonceBytes = 12, kTagBytes = 16;

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("RAND_bytes failed");  // impossible state
  }
  return out;
}

using Ctx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

}  // namespace

Result<std::unique_ptr<SecretBox>> SecretBox::Open(const std::string& data_dir) {
  if (const char* env = std::getenv("RUNLOG_SECRET_KEY"); env != nullptr && *env != '\0') {
    std::string key;
    if (!events::UnHex(env, &key) || key.size() != kKeyBytes) {
      return Fail(codes::kInvalidArgument, "RUNLOG_SECRET_KEY must be 64 hex digits");
    }
    return std::make_unique<SecretBox>(std::move(key));
  }
  const std::string path = data_dir + "/secret.key";
  std::ifstream in(path);
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    std::string hex = text.str();
    while (!hex.empty() && (hex.back() == '\n' || hex.back() == ' ')) hex.pop_back();
    std::string key;
    if (!events::UnHex(hex, &key) || key.size() != kKeyBytes) {
      return Fail(codes::kInvalidArgument, path + " must hold 64 hex digits");
    }
    return std::make_unique<SecretBox>(std::move(key));
  }
  std::string key = RandomBytes(kKeyBytes);
  const std::string hex = events::HexOf(key) + "\n";
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Fail(codes::kUnavailable, "cannot create " + tmp);
  const bool ok =
      ::write(fd, hex.data(), hex.size()) == static_cast<ssize_t>(hex.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return Fail(codes::kUnavailable, "cannot write " + path);
  }
  return std::make_unique<SecretBox>(std::move(key));
}

std::string SecretBox::Seal(const std::string& secret) const {
  const std::string nonce = RandomBytes(kNonceBytes);
  std::string out = nonce;
  out.resize(kNonceBytes + secret.size() + kTagBytes);
  auto* cipher = reinterpret_cast<unsigned char*>(out.data()) + kNonceBytes;
  Ctx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int n = 0, tail = 0;
  if (!ctx ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                         reinterpret_cast<const unsigned char*>(key_.data()),
                         reinterpret_cast<const unsigned char*>(nonce.data())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), cipher, &n,
                        reinterpret_cast<const unsigned char*>(secret.data()),
                        static_cast<int>(secret.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), cipher + n, &tail) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, cipher + secret.size()) !=
          1) {
    throw std::runtime_error("AES-256-GCM seal failed");  // impossible state
  }
  return "v1:" + Base64(out);
}

Result<std::string> SecretBox::Unseal(const std::string& sealed) const {
  auto bad = [] { return Fail(codes::kInvalidArgument, "not a secret sealed with this key"); };
  if (!sealed.starts_with("v1:")) return bad();
  std::string raw = FromBase64(std::string_view(sealed).substr(3));
  if (raw.size() < kNonceBytes + kTagBytes) return bad();
  const size_t size = raw.size() - kNonceBytes - kTagBytes;
  std::string out(size, '\0');
  auto* in = reinterpret_cast<unsigned char*>(raw.data());
  Ctx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int n = 0, tail = 0;
  if (!ctx ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                         reinterpret_cast<const unsigned char*>(key_.data()), in) != 1 ||
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &n,
                        in + kNonceBytes, static_cast<int>(size)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, in + kNonceBytes + size) !=
          1 ||
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + n, &tail) !=
          1) {
    return bad();
  }
  return out;
}

}  // namespace runlog::services
