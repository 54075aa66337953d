// The per-line path (read, split, parse, normalize, count: the tailer and the shipped
// LinePipeline) must not allocate once warm: every operator new in this binary is counted.
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <stdlib.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>

#include "collectors/access_log/config_translation.hpp"
#include "collectors/access_log/line_pipeline.hpp"
#include "collectors/access_log/tailer.hpp"
#include "collectors/history/recent_lines.hpp"
#include "config/config.hpp"

namespace {
std::atomic<long> allocations{0};
}

void* operator new(std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace fastapi_exporter::access_log {
namespace {

namespace fs = std::filesystem;

void CheckNoAllocationPerLine(const std::string& log_yaml,
                              const std::function<std::string(int)>& line,
                              std::size_t discovered_routes = 0) {
  const auto loaded = config::ParseConfig(
      "services:\n  - name: s\n    routes: ['/api/users/{id}']\n    access_logs:\n      - " +
      log_yaml + "\n");
  ASSERT_TRUE(loaded.ok());
  const auto& service = loaded.config.services[0];
  prometheus::Registry registry;
  RequestStore store("fastapi");
  ServiceOptions service_options;
  service_options.name = "s";
  service_options.routes = service.routes;
  service_options.buckets = service.buckets;
  ServicePipeline counting(service_options, store, RegisterLineFamilies(registry));
  std::vector<config::RouteTemplate> discovered;
  for (std::size_t n = 0; n < discovered_routes; ++n) {
    discovered.push_back(
        *config::ParseRouteTemplate("/api/r" + std::to_string(n) + "/{item_id}", nullptr));
  }
  counting.SetDiscoveredRoutes(discovered);
  auto recent = std::make_shared<history::RecentLines>(1000);
  counting.SetRecentLines(recent);
  // The collector's chain for this source, as shipped: envelope, parser, normalizer, metrics.
  LinePipeline pipeline(SourceOptionsOf(service.access_logs[0], 64 * 1024), counting);

  const fs::path dir = fs::temp_directory_path() / ("noalloc-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "a.log").string();
  std::ofstream(path).close();
  TailSource source;
  source.id = "s";
  source.glob = path;
  source.start_at = config::StartAt::kBeginning;
  source.make_sink = [&] { return pipeline.MakeFileSink(); };
  TailerOptions options;
  options.use_inotify = true;  // Poll(false) then reads without rescanning
  Tailer tailer({source}, options);
  tailer.Poll(true);

  auto append = [&](int first, int count) {
    std::ofstream out(path, std::ios::app);
    for (int i = first; i < first + count; ++i) out << line(i) << "\n";
  };
  // Warm up with lines of the same shape (ids of as many digits): afterwards every series
  // exists and every buffer has grown to the longest line.
  append(100000, 5000);
  tailer.Poll(false);
  append(105000, 20000);
  const long before = allocations.load();
  tailer.Poll(false);
  const long during = allocations.load() - before;
  EXPECT_EQ(counting.metrics().recorded(), 25000u);
  EXPECT_EQ(pipeline.requests(), 25000u);
  EXPECT_EQ(recent->added(), 25000u);
  EXPECT_EQ(during, 0) << "allocations while handling 20000 lines";
  fs::remove_all(dir);
}

TEST(NoAllocation, JsonLines) {
  CheckNoAllocationPerLine("{path: /x, format: json}", [](int i) {
    return R"({"timestamp":"2026-11-27T10:00:00.000Z","level":"INFO","endpoint":"/api/users/)" +
           std::to_string(i) + R"(","method":"GET","status_code":)" +
           std::to_string(200 + (i % 3)) + R"(,"duration_ms":)" + std::to_string(i % 97) + "}";
  });
}

TEST(NoAllocation, NginxLines) {
  CheckNoAllocationPerLine(
      R"({path: /x, format: nginx, nginx: {log_format: '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time'}})",
      [](int i) {
        return "10.0.0.1 - - [27/Nov/2026:10:00:00 +0000] \"GET /api/orders/" + std::to_string(i) +
               "/items?x=1 HTTP/1.1\" 200 12 \"-\" \"curl/8\" 0.0" + std::to_string(i % 10);
      });
}

TEST(NoAllocation, JsonLinesWith500DiscoveredRoutes) {
  CheckNoAllocationPerLine(
      "{path: /x, format: json}",
      [](int i) {
        return R"({"endpoint":"/api/r)" + std::to_string(i % 500) + "/" + std::to_string(i) +
               R"(","method":"GET","status_code":200,"duration_ms":3})";
      },
      500);
}

TEST(NoAllocation, UvicornLines) {
  CheckNoAllocationPerLine("{path: /x, format: uvicorn}", [](int i) {
    return "INFO:     127.0.0.1:5000 - \"POST /api/users/" + std::to_string(i) +
           " HTTP/1.1\" 201 Created";
  });
}

}  // namespace
}  // namespace fastapi_exporter::access_log
