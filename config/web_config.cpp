#include "config/web_config.hpp"

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>

#include "config/schema_reader.hpp"

namespace fastapi_exporter::config {
namespace {

// A bcrypt hash as crypt(3) writes it: $2a$, $2b$ or $2y$, a two-digit cost, then 53
// characters of salt and hash in bcrypt's base64 alphabet.
bool IsBcryptHash(const std::string& hash) {
  if (hash.size() != 60 || hash[0] != '$' || hash[1] != '2' || hash[3] != '$' || hash[6] != '$') {
    return false;
  }
  if (hash[2] != 'a' && hash[2] != 'b' && hash[2] != 'y') return false;
  if (!std::isdigit(static_cast<unsigned char>(hash[4])) ||
      !std::isdigit(static_cast<unsigned char>(hash[5]))) {
    return false;
  }
  const int cost = (hash[4] - '0') * 10 + (hash[5] - '0');
  if (cost < 4 || cost > 31) return false;
  for (std::size_t i = 7; i < hash.size(); ++i) {
    const char c = hash[i];
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '/') return false;
  }
  return true;
}

void RequireReadable(SchemaReader& reader, const SchemaReader::Entry& entry,
                     const std::string& path, const std::string& file) {
  if (::access(file.c_str(), R_OK) != 0) {
    reader.Error(entry.key, path, "cannot read " + file + ": " + std::strerror(errno));
  }
}

void ReadTls(SchemaReader& reader, const SchemaReader::Entry& tls_entry,
             std::optional<TlsServerConfig>& out) {
  const std::string path = "tls_server_config";
  auto entries = reader.Mapping(
      tls_entry.value, tls_entry.key, path,
      {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version"});
  if (!entries) return;
  TlsServerConfig tls;
  const SchemaReader::Entry* ca_entry = nullptr;
  for (const auto& [name, entry] : *entries) {
    const std::string key = SchemaReader::Join(path, name);
    if (name == "cert_file" || name == "key_file" || name == "client_ca_file") {
      auto file = reader.NonEmptyString(entry, key);
      if (!file) continue;
      RequireReadable(reader, entry, key, *file);
      (name == "cert_file"  ? tls.cert_file
       : name == "key_file" ? tls.key_file
                            : tls.client_ca_file) = *file;
      if (name == "client_ca_file") ca_entry = &entry;
    } else if (name == "client_auth_type") {
      if (auto auth = reader.OneOf<ClientAuth>(
              entry, key,
              {{"NoClientCert", ClientAuth::kNone},
               {"RequestClientCert", ClientAuth::kRequest},
               {"RequireAnyClientCert", ClientAuth::kRequireAny},
               {"VerifyClientCertIfGiven", ClientAuth::kVerifyIfGiven},
               {"RequireAndVerifyClientCert", ClientAuth::kRequireAndVerify}})) {
        tls.client_auth = *auth;
      }
    } else if (name == "min_version") {
      if (auto version = reader.OneOf<int>(
              entry, key,
              {{"TLS10", 0x0301}, {"TLS11", 0x0302}, {"TLS12", 0x0303}, {"TLS13", 0x0304}})) {
        tls.min_version = *version;
      }
    }
  }
  if (tls.cert_file.empty()) reader.Error(tls_entry.value, path + ".cert_file", "is required");
  if (tls.key_file.empty()) reader.Error(tls_entry.value, path + ".key_file", "is required");
  const bool verifies = tls.client_auth == ClientAuth::kVerifyIfGiven ||
                        tls.client_auth == ClientAuth::kRequireAndVerify;
  if (verifies && tls.client_ca_file.empty()) {
    reader.Error(tls_entry.value, path + ".client_ca_file",
                 "is required when client_auth_type verifies client certificates");
  }
  if (!verifies && ca_entry) {
    reader.Error(ca_entry->key, path + ".client_ca_file",
                 "is only used when client_auth_type is VerifyClientCertIfGiven or "
                 "RequireAndVerifyClientCert");
  }
  out = std::move(tls);
}

void ReadUsers(SchemaReader& reader, const SchemaReader::Entry& users_entry,
               std::map<std::string, std::string>& out) {
  const std::string path = "basic_auth_users";
  if (users_entry.value.IsNull()) return;
  if (!users_entry.value.IsMap()) {
    reader.Error(
        users_entry.key, path,
        "must be a mapping of user name to bcrypt hash, got " + TypeName(users_entry.value));
    return;
  }
  for (const auto& item : users_entry.value) {
    const std::string user = item.first.Scalar();
    const std::string key = path + "." + user;
    if (user.empty() || user.find(':') != std::string::npos) {
      reader.Error(item.first, key, "a user name must be non-empty and contain no ':'");
      continue;
    }
    if (!item.second.IsScalar() || !IsBcryptHash(item.second.Scalar())) {
      reader.Error(item.first, key,
                   "must be a bcrypt hash ($2y$, $2b$ or $2a$, 60 characters), as "
                   "`fastapi-exporter --web.hash-password` prints");
      continue;
    }
    if (!out.emplace(user, item.second.Scalar()).second) {
      reader.Error(item.first, key, "user given more than once");
    }
  }
}

}  // namespace

WebConfigResult ParseWebConfig(const std::string& yaml_text) {
  WebConfigResult result;
  const std::optional<YAML::Node> parsed = ParseYaml(yaml_text, result.errors);
  if (!parsed || parsed->IsNull()) return result;
  SchemaReader reader(result.errors);
  auto entries = reader.Mapping(*parsed, *parsed, "", {"tls_server_config", "basic_auth_users"});
  if (!entries) return result;
  for (const auto& [name, entry] : *entries) {
    if (name == "tls_server_config") {
      if (!entry.value.IsNull()) ReadTls(reader, entry, result.config.tls);
    } else if (name == "basic_auth_users") {
      ReadUsers(reader, entry, result.config.basic_auth_users);
    }
  }
  return result;
}

WebConfigResult LoadWebConfigFile(const std::string& path) {
  std::string problem;
  const std::optional<std::string> text = ReadWholeFile(path, problem);
  if (!text) {
    WebConfigResult result;
    result.errors.push_back({"", {}, "cannot read web config file: " + problem});
    return result;
  }
  return ParseWebConfig(*text);
}

}  // namespace fastapi_exporter::config
