// TLS of the metrics endpoint, following the exporter-toolkit's tls_server_config.
//
// civetweb creates the SSL_CTX and does the I/O; this class fills the context in (through
// civetweb's init_ssl callback) and chooses, at each handshake, the certificate, key and
// client verification to use. The certificate and key files are checked at each handshake
// and read again when they change, so a rotated certificate is served without a restart; a
// new configuration (SIGHUP) is applied with Update().
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "config/web_config.hpp"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace fastapi_exporter {

class TlsServer {
 public:
  TlsServer();
  ~TlsServer();
  TlsServer(const TlsServer&) = delete;
  TlsServer& operator=(const TlsServer&) = delete;

  // Loads and checks the certificate (with its chain), the key and the client CA. On failure
  // keeps what it had and says why, naming the file ("cert_file /x.crt: no certificate ...").
  bool Update(const config::TlsServerConfig& config, std::string& error);

  // Prepares civetweb's context; called once, before the first handshake.
  void ConfigureContext(SSL_CTX* context);

  struct Material;

 private:
  static int OnHandshake(SSL* ssl, void* self);
  std::shared_ptr<const Material> Current();

  std::mutex mutex_;
  std::shared_ptr<const Material> material_;
  SSL_CTX* context_ = nullptr;
  std::string last_reload_error_;  // logged once per distinct problem
};

}  // namespace fastapi_exporter
