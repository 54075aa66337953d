#include "daemon/basic_auth.hpp"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <strings.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace fastapi_exporter {
namespace {

// Compared against when the user is unknown, so that an unknown user takes as long as a
// wrong password and names cannot be probed by timing. (bcrypt of "x", cost 10.)
constexpr const char* kDummyHash = "$2b$10$SWbKB9iglz0XzptMnw.JUedoXtDA.IIE8vmaWKfThEt4aCvdMwjN.";

constexpr std::size_t kMaxRemembered = 256;

}  // namespace

bool DecodeBase64(std::string_view text, std::string& out) {
  out.clear();
  if (text.size() % 4 != 0) return false;
  if (text.empty()) return true;
  std::string decoded(text.size() / 4 * 3, '\0');
  const int length =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                      reinterpret_cast<const unsigned char*>(text.data()), int(text.size()));
  if (length < 0) return false;
  // EVP_DecodeBlock counts the padding as zero bytes.
  std::size_t padding = 0;
  if (text.back() == '=') ++padding;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++padding;
  decoded.resize(std::size_t(length) - padding);
  out = std::move(decoded);
  return true;
}

std::string HashPassword(const std::string& password, std::string& error) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  // A null random source: libxcrypt reads the system's (getrandom).
  if (!crypt_gensalt_rn("$2b$", 10, nullptr, 0, salt, sizeof salt)) {
    error = std::string("cannot make a bcrypt salt: ") + std::strerror(errno);
    return {};
  }
  auto state = std::make_unique<crypt_data>();
  const char* hash = crypt_r(password.c_str(), salt, state.get());
  if (!hash || hash[0] == '*') {
    error = std::string("cannot hash the password: ") + std::strerror(errno);
    return {};
  }
  return hash;
}

BasicAuth::BasicAuth(std::map<std::string, std::string> users) : users_(std::move(users)) {}

bool BasicAuth::Allows(const char* authorization_header) {
  if (!enabled()) return true;
  if (!authorization_header) return false;
  std::string_view header(authorization_header);
  constexpr std::string_view kScheme = "Basic ";
  if (header.size() <= kScheme.size() || strncasecmp(header.data(), "Basic ", 6) != 0) {
    return false;
  }
  header.remove_prefix(kScheme.size());
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  std::string credentials;
  if (!DecodeBase64(header, credentials)) return false;
  const auto colon = credentials.find(':');
  if (colon == std::string::npos) return false;
  return Verify(credentials.substr(0, colon), std::string_view(credentials).substr(colon + 1));
}

bool BasicAuth::Verify(const std::string& user, std::string_view password) {
  const auto found = users_.find(user);
  const std::string& hash = found != users_.end() ? found->second : std::string(kDummyHash);

  Digest digest{};
  std::string material = user;
  material += '\0';
  material += hash;
  material += '\0';
  material += password;
  unsigned int digest_length = 0;
  EVP_Digest(material.data(), material.size(), digest.data(), &digest_length, EVP_sha256(),
             nullptr);
  OPENSSL_cleanse(material.data(), material.size());
  {
    std::lock_guard lock(mutex_);
    if (found != users_.end() && verified_.contains(digest)) return true;
  }

  // crypt_r's state is large (about 32 KB): on the heap, not the server thread's stack.
  auto state = std::make_unique<crypt_data>();
  const std::string password_text(password);
  const char* computed = crypt_r(password_text.c_str(), hash.c_str(), state.get());
  const bool matches = computed && computed[0] != '*' && std::strlen(computed) == hash.size() &&
                       CRYPTO_memcmp(computed, hash.data(), hash.size()) == 0;
  if (!matches || found == users_.end()) return false;
  std::lock_guard lock(mutex_);
  if (verified_.size() >= kMaxRemembered) verified_.clear();
  verified_.insert(digest);
  return true;
}

}  // namespace fastapi_exporter
