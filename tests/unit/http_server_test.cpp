#include "daemon/http_server.hpp"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>

namespace fastapi_exporter {
namespace {

using ::testing::HasSubstr;

TEST(Gzip, AcceptEncoding) {
  EXPECT_TRUE(AcceptsGzip("gzip"));
  EXPECT_TRUE(AcceptsGzip("deflate, gzip;q=1.0, *;q=0.5"));
  EXPECT_TRUE(AcceptsGzip("br, *"));
  EXPECT_TRUE(AcceptsGzip("gzip;q=0.5"));
  EXPECT_FALSE(AcceptsGzip(nullptr));
  EXPECT_FALSE(AcceptsGzip(""));
  EXPECT_FALSE(AcceptsGzip("identity"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0.000"));
  EXPECT_FALSE(AcceptsGzip("x-gzip-not"));
}

TEST(HttpServer, PortInUseIsAClearError) {
  const int holder = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(holder, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(listen(holder, 1), 0);
  socklen_t length = sizeof address;
  getsockname(holder, reinterpret_cast<sockaddr*>(&address), &length);
  const int port = ntohs(address.sin_port);

  HttpServerOptions options;
  options.listen_address = {"127.0.0.1", port};
  options.render_metrics = [](bool) { return MetricsBody{}; };
  HttpServer server(options);
  std::string error;
  EXPECT_FALSE(server.Start(error));
  EXPECT_THAT(error, HasSubstr("cannot listen on 127.0.0.1:" + std::to_string(port)));
  close(holder);
}

// A raw HTTP/1.0 GET on loopback: the whole response, headers included.
std::string Get(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(uint16_t(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return {};
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\n\r\n";
  [[maybe_unused]] const ssize_t sent = write(fd, request.data(), request.size());
  std::string response;
  char buffer[4096];
  for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) > 0;) response.append(buffer, size_t(n));
  close(fd);
  return response;
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

TEST(HttpServer, HealthzAnswers503WithTheReason) {
  std::atomic<bool> broken{false};
  HttpServerOptions options;
  options.listen_address = {"127.0.0.1", FreePort()};
  options.render_metrics = [](bool) { return MetricsBody{}; };
  options.unhealthy_reason = [&] {
    return broken ? std::string("the access-log reader stopped: test") : std::string();
  };
  HttpServer server(options);
  std::string error;
  ASSERT_TRUE(server.Start(error)) << error;
  const std::string ok = Get(options.listen_address.port, "/healthz");
  EXPECT_THAT(ok, HasSubstr(" 200 OK\r\n"));
  EXPECT_THAT(ok, HasSubstr("\r\n\r\nok\n"));
  broken = true;
  const std::string unhealthy = Get(options.listen_address.port, "/healthz");
  EXPECT_THAT(unhealthy, HasSubstr(" 503 Service Unavailable\r\n"));
  EXPECT_THAT(unhealthy, HasSubstr("unhealthy: the access-log reader stopped: test\n"));
  server.Stop();
}

TEST(HttpServer, UnresolvableHostIsAClearError) {
  HttpServerOptions options;
  options.listen_address = {"no-such-host.invalid", 9869};
  HttpServer server(options);
  std::string error;
  EXPECT_FALSE(server.Start(error));
  EXPECT_THAT(error, HasSubstr("cannot resolve listen host 'no-such-host.invalid'"));
}

}  // namespace
}  // namespace fastapi_exporter

namespace fastapi_exporter {
namespace {

// What civetweb does to load OpenSSL (see daemon/civetweb_openssl.cpp): the unversioned
// names resolve to the program's own libraries, with no file looked up (libssl-dev absent
// on user machines), and every function it needs is found, the OpenSSL 1.1 name included.
TEST(CivetwebOpenSsl, CivetwebFindsEveryFunctionItLooksUp) {
  void* program = dlopen(nullptr, RTLD_LAZY);
  void* ssl = dlopen("libssl.so", RTLD_LAZY);
  void* crypto = dlopen("libcrypto.so", RTLD_LAZY);
  EXPECT_EQ(ssl, program);
  EXPECT_EQ(crypto, program);
  // Every OpenSSL name in Debian's libcivetweb.so.1.15 (`strings`), in its two tables.
  for (const char* name : {"SSL_CIPHER_get_name",
                           "SSL_CTX_callback_ctrl",
                           "SSL_CTX_check_private_key",
                           "SSL_CTX_ctrl",
                           "SSL_CTX_free",
                           "SSL_CTX_load_verify_locations",
                           "SSL_CTX_new",
                           "SSL_CTX_set_alpn_protos",
                           "SSL_CTX_set_alpn_select_cb",
                           "SSL_CTX_set_cipher_list",
                           "SSL_CTX_set_default_passwd_cb",
                           "SSL_CTX_set_default_verify_paths",
                           "SSL_CTX_set_info_callback",
                           "SSL_CTX_set_next_protos_advertised_cb",
                           "SSL_CTX_set_options",
                           "SSL_CTX_set_session_id_context",
                           "SSL_CTX_set_timeout",
                           "SSL_CTX_set_verify",
                           "SSL_CTX_set_verify_depth",
                           "SSL_CTX_use_PrivateKey_file",
                           "SSL_CTX_use_certificate_chain_file",
                           "SSL_CTX_use_certificate_file",
                           "SSL_accept",
                           "SSL_connect",
                           "SSL_ctrl",
                           "SSL_free",
                           "SSL_get_current_cipher",
                           "SSL_get_error",
                           "SSL_get_ex_data",
                           "SSL_get_peer_certificate",
                           "SSL_get_servername",
                           "SSL_get_version",
                           "SSL_new",
                           "SSL_pending",
                           "SSL_read",
                           "SSL_set_SSL_CTX",
                           "SSL_set_ex_data",
                           "SSL_set_fd",
                           "SSL_shutdown",
                           "SSL_write",
                           "TLS_client_method",
                           "TLS_server_method",
                           "OPENSSL_init_ssl"}) {
    EXPECT_NE(dlsym(ssl, name), nullptr) << name;
  }
  for (const char* name :
       {"ASN1_INTEGER_to_BN", "BN_bn2hex", "BN_free", "CONF_modules_unload", "CRYPTO_free",
        "ERR_clear_error", "ERR_error_string", "ERR_get_error", "EVP_Digest",
        "EVP_get_digestbyname", "X509_NAME_oneline", "X509_free", "X509_get_issuer_name",
        "X509_get_serialNumber", "X509_get_subject_name", "i2d_X509"}) {
    EXPECT_NE(dlsym(crypto, name), nullptr) << name;
  }
  // Other libraries load as usual.
  void* zlib = dlopen("libz.so.1", RTLD_LAZY);
  ASSERT_NE(zlib, nullptr);
  EXPECT_NE(zlib, program);
  dlclose(zlib);
}

}  // namespace
}  // namespace fastapi_exporter
