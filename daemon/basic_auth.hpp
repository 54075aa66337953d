// HTTP basic authentication against bcrypt hashes (exporter-toolkit's basic_auth_users).
//
// bcrypt is slow on purpose (about 50 ms at cost 10), and Prometheus sends the same
// credentials with every scrape; a credential verified once is remembered by its SHA-256
// digest (never the password itself) so later scrapes cost a hash, not a bcrypt.
#pragma once

#include <array>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

namespace fastapi_exporter {

class BasicAuth {
 public:
  // user -> bcrypt hash ($2y$, $2b$, $2a$); empty: no authentication.
  explicit BasicAuth(std::map<std::string, std::string> users);

  bool enabled() const { return !users_.empty(); }

  // Whether an Authorization header value ("Basic base64(user:password)") names a user whose
  // password matches. Thread-safe.
  bool Allows(const char* authorization_header);

 private:
  using Digest = std::array<unsigned char, 32>;
  bool Verify(const std::string& user, std::string_view password);

  std::map<std::string, std::string> users_;
  std::mutex mutex_;
  std::set<Digest> verified_;
};

// A bcrypt hash ($2b$, cost 10, random salt) of `password` for basic_auth_users; empty with
// `error` set if the system cannot make one.
std::string HashPassword(const std::string& password, std::string& error);

// Decodes standard base64 (RFC 4648); false on a malformed input.
bool DecodeBase64(std::string_view text, std::string& out);

}  // namespace fastapi_exporter
