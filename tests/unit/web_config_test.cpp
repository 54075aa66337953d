#include "config/web_config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "daemon/basic_auth.hpp"

namespace fastapi_exporter::config {
namespace {

using ::testing::HasSubstr;

// A bcrypt hash of "secret" at cost 4 (fast for tests), made with libxcrypt's crypt().
constexpr const char* kSecretHash = "$2b$04$Z.2SUSaI/Xd1pBBq1.jQ7.dkUit5k02Tjv0LyVa/NFvc4RxeyfZ6q";

std::string Message(const WebConfigResult& result) {
  std::string all;
  for (const auto& error : result.errors) all += FormatError("web.yml", error) + "\n";
  return all;
}

TEST(WebConfig, EmptyFileMeansPlainHttpWithoutAuth) {
  const WebConfigResult result = ParseWebConfig("");
  ASSERT_TRUE(result.ok());
  EXPECT_FALSE(result.config.tls);
  EXPECT_TRUE(result.config.basic_auth_users.empty());
}

TEST(WebConfig, ReadsTlsAndUsers) {
  const WebConfigResult result = ParseWebConfig(std::string(R"(
tls_server_config:
  cert_file: /dev/null
  key_file: /dev/null
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: /dev/null
  min_version: TLS13
basic_auth_users:
  prometheus: ')") + kSecretHash + "'\n");
  ASSERT_TRUE(result.ok()) << Message(result);
  ASSERT_TRUE(result.config.tls);
  EXPECT_EQ(result.config.tls->cert_file, "/dev/null");
  EXPECT_EQ(result.config.tls->client_auth, ClientAuth::kRequireAndVerify);
  EXPECT_EQ(result.config.tls->min_version, 0x0304);
  EXPECT_EQ(result.config.basic_auth_users.at("prometheus"), kSecretHash);
}

TEST(WebConfig, EveryProblemNamesItsKeyAndLine) {
  const WebConfigResult result = ParseWebConfig(R"(
tls_server_config:
  cert_file: /nonexistent/tls.crt
  client_auth_type: RequireAndVerifyClientCert
  min_version: TLS9
  cipher_suites: [x]
basic_auth_users:
  alice: not-a-hash
  bob: '$2y$10$short'
)");
  const std::string message = Message(result);
  EXPECT_THAT(message, HasSubstr("web.yml:3:3: tls_server_config.cert_file: cannot read "
                                 "/nonexistent/tls.crt: No such file or directory"));
  EXPECT_THAT(message, HasSubstr("web.yml:5:3: tls_server_config.min_version: must be one of "
                                 "TLS10, TLS11, TLS12, TLS13, got 'TLS9'"));
  EXPECT_THAT(message, HasSubstr("web.yml:6:3: tls_server_config.cipher_suites: unknown key"));
  EXPECT_THAT(message, HasSubstr("tls_server_config.key_file: is required"));
  EXPECT_THAT(message, HasSubstr("tls_server_config.client_ca_file: is required when"));
  EXPECT_THAT(message, HasSubstr("web.yml:8:3: basic_auth_users.alice: must be a bcrypt hash"));
  EXPECT_THAT(message, HasSubstr("web.yml:9:3: basic_auth_users.bob: must be a bcrypt hash"));
  EXPECT_EQ(result.errors.size(), 7u) << message;
}

TEST(WebConfig, MissingFileIsOneError) {
  const WebConfigResult result = LoadWebConfigFile("/nonexistent/web.yml");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].message, "cannot read web config file: No such file or directory");
}

}  // namespace
}  // namespace fastapi_exporter::config

namespace fastapi_exporter {
namespace {

using Users = std::map<std::string, std::string>;

std::string Header(const std::string& credentials) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out = "Basic ";
  std::size_t i = 0;
  for (; i + 2 < credentials.size(); i += 3) {
    const uint32_t n = (uint8_t(credentials[i]) << 16) | (uint8_t(credentials[i + 1]) << 8) |
                       uint8_t(credentials[i + 2]);
    for (int shift : {18, 12, 6, 0}) out += kAlphabet[(n >> shift) & 63];
  }
  if (credentials.size() - i == 1) {
    const uint32_t n = uint8_t(credentials[i]) << 16;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += "==";
  } else if (credentials.size() - i == 2) {
    const uint32_t n = (uint8_t(credentials[i]) << 16) | (uint8_t(credentials[i + 1]) << 8);
    for (int shift : {18, 12, 6}) out += kAlphabet[(n >> shift) & 63];
    out += '=';
  }
  return out;
}

TEST(BasicAuth, AcceptsOnlyTheRightPasswordOfAKnownUser) {
  BasicAuth auth(Users{{"prometheus", config::kSecretHash}});
  ASSERT_TRUE(auth.enabled());
  EXPECT_TRUE(auth.Allows(Header("prometheus:secret").c_str()));
  EXPECT_TRUE(auth.Allows(Header("prometheus:secret").c_str()));  // remembered, same answer
  EXPECT_FALSE(auth.Allows(Header("prometheus:Secret").c_str()));
  EXPECT_FALSE(auth.Allows(Header("prometheus:secret ").c_str()));
  EXPECT_FALSE(auth.Allows(Header("other:secret").c_str()));
  EXPECT_FALSE(auth.Allows(Header("prometheussecret").c_str()));
  EXPECT_FALSE(auth.Allows(nullptr));
  EXPECT_FALSE(auth.Allows("Bearer abc"));
  EXPECT_FALSE(auth.Allows("Basic !!!!"));
  EXPECT_FALSE(auth.Allows("Basic"));
}

TEST(BasicAuth, PasswordsMayContainColons) {
  BasicAuth auth(Users{{"u", config::kSecretHash}});
  EXPECT_FALSE(auth.Allows(Header("u:secret:").c_str()));
  EXPECT_TRUE(auth.Allows(Header("u:secret").c_str()));
}

TEST(BasicAuth, NoUsersMeansNoAuthentication) {
  BasicAuth auth(Users{});
  EXPECT_FALSE(auth.enabled());
  EXPECT_TRUE(auth.Allows(nullptr));
}

TEST(BasicAuth, HashPasswordMakesAHashThatVerifies) {
  std::string error;
  const std::string hash = HashPassword("correct horse", error);
  ASSERT_EQ(hash.size(), 60u) << error;
  EXPECT_EQ(hash.substr(0, 7), "$2b$10$");
  EXPECT_NE(HashPassword("correct horse", error), hash);  // a new salt each time
  BasicAuth auth(Users{{"u", hash}});
  EXPECT_TRUE(auth.Allows(Header("u:correct horse").c_str()));
  EXPECT_FALSE(auth.Allows(Header("u:correct horse ").c_str()));
  // And the web config takes it.
  const auto parsed = config::ParseWebConfig("basic_auth_users:\n  u: '" + hash + "'\n");
  EXPECT_TRUE(parsed.ok());
}

TEST(Base64, DecodesWithAndWithoutPadding) {
  std::string out;
  ASSERT_TRUE(DecodeBase64("cHJvbTpzZWNyZXQ=", out));
  EXPECT_EQ(out, "prom:secret");
  ASSERT_TRUE(DecodeBase64("YWI=", out));
  EXPECT_EQ(out, "ab");
  ASSERT_TRUE(DecodeBase64("YQ==", out));
  EXPECT_EQ(out, "a");
  ASSERT_TRUE(DecodeBase64("YWJj", out));
  EXPECT_EQ(out, "abc");
  EXPECT_FALSE(DecodeBase64("YWJ", out));
  EXPECT_FALSE(DecodeBase64("Y!==", out));
}

}  // namespace
}  // namespace fastapi_exporter
