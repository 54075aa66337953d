// The --web.config.file: TLS and basic auth of the metrics endpoint, in the format of the
// Prometheus exporter-toolkit (node_exporter's web-config.yml), so one file serves both.
//
//   tls_server_config:
//     cert_file: /etc/fastapi-exporter/tls.crt
//     key_file: /etc/fastapi-exporter/tls.key
//     client_auth_type: RequireAndVerifyClientCert   # default NoClientCert
//     client_ca_file: /etc/fastapi-exporter/ca.crt
//     min_version: TLS12                             # default TLS12
//   basic_auth_users:
//     prometheus: $2y$10$...                         # bcrypt hash
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace fastapi_exporter::config {

enum class ClientAuth {
  kNone,              // NoClientCert
  kRequest,           // RequestClientCert: asked for, not verified
  kRequireAny,        // RequireAnyClientCert: required, not verified
  kVerifyIfGiven,     // VerifyClientCertIfGiven
  kRequireAndVerify,  // RequireAndVerifyClientCert
};

struct TlsServerConfig {
  std::string cert_file;
  std::string key_file;
  ClientAuth client_auth = ClientAuth::kNone;
  std::string client_ca_file;
  int min_version = 0x0303;  // TLS 1.2, as the protocol numbers it
  bool operator==(const TlsServerConfig&) const = default;
};

struct WebSecurityConfig {
  std::optional<TlsServerConfig> tls;
  std::map<std::string, std::string> basic_auth_users;  // user -> bcrypt hash
  bool operator==(const WebSecurityConfig&) const = default;
};

struct WebConfigResult {
  WebSecurityConfig config;
  std::vector<ConfigError> errors;
  bool ok() const { return errors.empty(); }
};

// Parses and checks the file: known keys only, readable certificate and key files, bcrypt
// hashes that are well-formed. Loading the certificate itself is the TLS layer's job.
WebConfigResult LoadWebConfigFile(const std::string& path);
WebConfigResult ParseWebConfig(const std::string& yaml_text);

}  // namespace fastapi_exporter::config
