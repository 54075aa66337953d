#include "daemon/tls.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace fastapi_exporter {
namespace {

// What identifies a version of a file: a rotation replaces or rewrites it.
struct FileStamp {
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  timespec modified{};
  bool operator==(const FileStamp& other) const {
    return device == other.device && inode == other.inode && size == other.size &&
           modified.tv_sec == other.modified.tv_sec && modified.tv_nsec == other.modified.tv_nsec;
  }
};

bool Stamp(const std::string& path, FileStamp& stamp) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return false;
  stamp = {info.st_dev, info.st_ino, info.st_size, info.st_mtim};
  return true;
}

// OpenSSL's reason for the last failure, or `fallback` when it recorded none.
std::string OpenSslError(const char* fallback) {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return fallback;
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

int AcceptAnyCertificate(int, X509_STORE_CTX*) {
  return 1;
}

}  // namespace

struct TlsServer::Material {
  config::TlsServerConfig config;
  FileStamp cert_stamp;
  FileStamp key_stamp;
  X509* certificate = nullptr;
  STACK_OF(X509) * chain = nullptr;
  EVP_PKEY* key = nullptr;
  X509_STORE* client_ca = nullptr;
  STACK_OF(X509_NAME) * client_ca_names = nullptr;

  Material() = default;
  Material(const Material&) = delete;
  Material& operator=(const Material&) = delete;
  ~Material() {
    X509_free(certificate);
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    X509_STORE_free(client_ca);
    sk_X509_NAME_pop_free(client_ca_names, X509_NAME_free);
  }

  static std::unique_ptr<Material> Load(const config::TlsServerConfig& config, std::string& error) {
    auto material = std::make_unique<Material>();
    material->config = config;
    // Stamped before reading: a change while reading shows as a change at the next handshake.
    if (!Stamp(config.cert_file, material->cert_stamp)) {
      error = "cert_file " + config.cert_file + ": " + std::strerror(errno);
      return nullptr;
    }
    if (!Stamp(config.key_file, material->key_stamp)) {
      error = "key_file " + config.key_file + ": " + std::strerror(errno);
      return nullptr;
    }
    ERR_clear_error();
    BIO* cert_bio = BIO_new_file(config.cert_file.c_str(), "r");
    if (cert_bio) {
      material->certificate = PEM_read_bio_X509(cert_bio, nullptr, nullptr, nullptr);
      material->chain = sk_X509_new_null();
      while (X509* extra = PEM_read_bio_X509(cert_bio, nullptr, nullptr, nullptr)) {
        sk_X509_push(material->chain, extra);
      }
      ERR_clear_error();  // the loop ends on "no start line"
      BIO_free(cert_bio);
    }
    if (!material->certificate) {
      error = "cert_file " + config.cert_file + ": " + OpenSslError("no PEM certificate in it");
      return nullptr;
    }
    BIO* key_bio = BIO_new_file(config.key_file.c_str(), "r");
    if (key_bio) {
      material->key = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
      BIO_free(key_bio);
    }
    if (!material->key) {
      error = "key_file " + config.key_file + ": " + OpenSslError("no PEM private key in it");
      return nullptr;
    }
    if (X509_check_private_key(material->certificate, material->key) != 1) {
      ERR_clear_error();
      error = "key_file " + config.key_file + " does not match the certificate in cert_file " +
              config.cert_file;
      return nullptr;
    }
    if (!config.client_ca_file.empty()) {
      material->client_ca = X509_STORE_new();
      if (X509_STORE_load_file(material->client_ca, config.client_ca_file.c_str()) != 1) {
        error = "client_ca_file " + config.client_ca_file + ": " +
                OpenSslError("no PEM certificate in it");
        return nullptr;
      }
      material->client_ca_names = SSL_load_client_CA_file(config.client_ca_file.c_str());
      ERR_clear_error();
    }
    return material;
  }

  bool FilesChanged() const {
    FileStamp cert;
    FileStamp key;
    // A file missing for a moment (being replaced) is not a change yet.
    if (!Stamp(config.cert_file, cert) || !Stamp(config.key_file, key)) return false;
    return !(cert == cert_stamp) || !(key == key_stamp);
  }

  int VerifyMode() const {
    switch (config.client_auth) {
      case config::ClientAuth::kNone:
        return SSL_VERIFY_NONE;
      case config::ClientAuth::kRequest:
      case config::ClientAuth::kVerifyIfGiven:
        return SSL_VERIFY_PEER;
      case config::ClientAuth::kRequireAny:
      case config::ClientAuth::kRequireAndVerify:
        return SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    }
    return SSL_VERIFY_NONE;
  }

  bool Verifies() const {
    return config.client_auth == config::ClientAuth::kVerifyIfGiven ||
           config.client_auth == config::ClientAuth::kRequireAndVerify;
  }
};

TlsServer::TlsServer() = default;
TlsServer::~TlsServer() = default;

bool TlsServer::Update(const config::TlsServerConfig& config, std::string& error) {
  std::unique_ptr<Material> loaded = Material::Load(config, error);
  if (!loaded) return false;
  std::lock_guard lock(mutex_);
  material_ = std::move(loaded);
  last_reload_error_.clear();
  if (context_) SSL_CTX_set_min_proto_version(context_, config.min_version);
  return true;
}

void TlsServer::ConfigureContext(SSL_CTX* context) {
  std::lock_guard lock(mutex_);
  context_ = context;
  if (material_) SSL_CTX_set_min_proto_version(context, material_->config.min_version);
  // Client certificates and resumed sessions need a session id context.
  static const unsigned char kSessionContext[] = "fastapi-exporter";
  SSL_CTX_set_session_id_context(context, kSessionContext, sizeof kSessionContext - 1);
  SSL_CTX_set_cert_cb(context, &TlsServer::OnHandshake, this);
}

std::shared_ptr<const TlsServer::Material> TlsServer::Current() {
  std::lock_guard lock(mutex_);
  if (material_ && material_->FilesChanged()) {
    std::string error;
    if (auto reloaded = Material::Load(material_->config, error)) {
      spdlog::info("TLS certificate {} changed: serving the new one", material_->config.cert_file);
      material_ = std::move(reloaded);
      last_reload_error_.clear();
    } else if (error != last_reload_error_) {
      // Half-written files are normal during a rotation; the old pair stays in use meanwhile.
      spdlog::warn(
          "TLS files changed but cannot be used, still serving the previous "
          "certificate: {}",
          error);
      last_reload_error_ = error;
    }
  }
  return material_;
}

int TlsServer::OnHandshake(SSL* ssl, void* self) {
  const std::shared_ptr<const Material> material = static_cast<TlsServer*>(self)->Current();
  if (!material) return 0;
  if (SSL_use_cert_and_key(ssl, material->certificate, material->key, material->chain, 1) != 1) {
    return 0;
  }
  SSL_set_verify(ssl, material->VerifyMode(),
                 material->Verifies() ? nullptr : AcceptAnyCertificate);
  if (material->client_ca) SSL_set1_verify_cert_store(ssl, material->client_ca);
  if (material->client_ca_names) {
    SSL_set_client_CA_list(ssl, SSL_dup_CA_list(material->client_ca_names));
  }
  return 1;
}

}  // namespace fastapi_exporter
