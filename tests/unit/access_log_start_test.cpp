// `start_at: end` means "from when the exporter reports ready", even when the reader itself
// starts later: with routes_from it first waits (up to the fetch's timeout) for the routes.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <prometheus/registry.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "collectors/access_log/access_log_collector.hpp"
#include "config/config.hpp"

namespace fastapi_exporter::access_log {
namespace {

namespace fs = std::filesystem;

// A TCP listener that never accepts: the kernel completes the handshake, so a fetch of the
// OpenAPI document connects and then waits for an answer until its timeout.
class SilentServer {
 public:
  SilentServer() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), size) != 0 || ::listen(fd_, 8) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &size) != 0) {
      ADD_FAILURE() << "cannot listen on loopback";
    }
    port_ = ntohs(address.sin_port);
  }
  ~SilentServer() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

double RequestsCounted(prometheus::Registry& registry) {
  double total = 0;
  for (const auto& family : registry.Collect()) {
    if (family.name != "fastapi_exporter_log_requests_total") continue;
    for (const auto& metric : family.metric) total += metric.counter.value;
  }
  return total;
}

TEST(AccessLogStart, LinesWrittenOnceStartReturnsAreCountedWhileTheRoutesAreAwaited) {
  const fs::path dir = fs::temp_directory_path() / ("fe-start-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string log = (dir / "access.log").string();
  std::ofstream(log) << "INFO:     127.0.0.1:5000 - \"GET /items/0 HTTP/1.1\" 200 OK\n";
  SilentServer openapi;
  const auto loaded = config::ParseConfig(
      "services:\n  - name: s\n    routes_from: {openapi_url: 'http://127.0.0.1:" +
      std::to_string(openapi.port()) + "/openapi.json'}\n    access_logs:\n      - {path: " + log +
      ", format: uvicorn}\n");
  ASSERT_TRUE(loaded.ok()) << loaded.errors.front().message;
  prometheus::Registry registry;
  AccessLogOptions options;
  options.save_positions = false;
  AccessLogCollector collector(loaded.config, registry, options);
  collector.Start();
  {
    std::ofstream out(log, std::ios::app);
    for (int i = 1; i <= 3; ++i) {
      out << "INFO:     127.0.0.1:5000 - \"GET /items/" << i << " HTTP/1.1\" 200 OK\n";
    }
  }
  // The fetch times out after 5 s; the reader then starts, and must find the three lines.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (RequestsCounted(registry) < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(RequestsCounted(registry), 3);  // and not the line that was there before
  collector.Stop();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fastapi_exporter::access_log
