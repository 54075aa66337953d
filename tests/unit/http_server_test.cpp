#include "daemon/http_server.hpp"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

namespace fastapi_exporter {
namespace {

using ::testing::HasSubstr;

std::string Gunzip(const std::string& compressed) {
  z_stream stream{};
  inflateInit2(&stream, 15 + 16);
  std::string out(1 << 20, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&stream, Z_FINISH), Z_STREAM_END);
  out.resize(stream.total_out);
  inflateEnd(&stream);
  return out;
}

TEST(Gzip, RoundTrips) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "process_cpu_seconds_total{service=\"api\"} 1.5\n";
  const std::string compressed = GzipCompress(text);
  EXPECT_LT(compressed.size(), text.size() / 10);
  EXPECT_EQ(Gunzip(compressed), text);
  EXPECT_EQ(Gunzip(GzipCompress("")), "");
}

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
  options.render_metrics = [] { return std::string(); };
  HttpServer server(options);
  std::string error;
  EXPECT_FALSE(server.Start(error));
  EXPECT_THAT(error, HasSubstr("cannot listen on 127.0.0.1:" + std::to_string(port)));
  close(holder);
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
