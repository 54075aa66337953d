// Micro-benchmarks of the per-line path and of rendering. Run: build/bench/micro_bench
#include <benchmark/benchmark.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "collectors/access_log/line_parser.hpp"
#include "collectors/access_log/request_metrics.hpp"
#include "collectors/access_log/route_normalizer.hpp"
#include "collectors/exposition.hpp"
#include "config/config.hpp"

namespace fe = fastapi_exporter;
namespace al = fastapi_exporter::access_log;

namespace {

const char* kBases[] = {"users",    "orders",   "items",    "products", "carts",
                        "payments", "invoices", "sessions", "accounts", "reviews"};
const char* kSubs[] = {"", "/details", "/history", "/settings", "/status"};

std::vector<std::string> Paths(int n) {
  std::mt19937 random(42);
  std::vector<std::string> paths;
  for (int i = 0; i < n; ++i) {
    paths.push_back(std::string("/api/") + kBases[random() % 10] + "/" +
                    std::to_string(random() % 9999 + 1) + kSubs[random() % 5]);
  }
  return paths;
}

std::vector<std::string> Lines(const std::string& format) {
  std::vector<std::string> lines;
  int i = 0;
  for (const auto& path : Paths(1000)) {
    const int status = i % 30 == 0 ? 500 : 200;
    if (format == "json") {
      lines.push_back(
          R"({"timestamp":"2026-11-27T10:00:00.000Z","level":"INFO","service":"api","endpoint":")" +
          path + R"(","method":"GET","status_code":)" + std::to_string(status) +
          R"(,"duration_ms":)" + std::to_string(i % 400) + R"(,"message":"Request completed"})");
    } else if (format == "nginx") {
      lines.push_back("10.0.0." + std::to_string(i % 256) +
                      " - - [27/Nov/2026:10:00:00 +0000] \"GET " + path + " HTTP/1.1\" " +
                      std::to_string(status) + " 1779 \"-\" \"python-requests/2.31\" 0.0" +
                      std::to_string(i % 1000));
    } else if (format == "gunicorn") {
      lines.push_back("10.0.0.1 - - [27/Nov/2026:10:00:00 +0000] \"GET " + path + " HTTP/1.1\" " +
                      std::to_string(status) + " 512 \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\" " +
                      std::to_string(i * 37));
    } else {
      lines.push_back("INFO:     127.0.0.1:54321 - \"GET " + path + "?q=x HTTP/1.1\" " +
                      std::to_string(status) + " OK");
    }
    ++i;
  }
  return lines;
}

std::unique_ptr<al::LineParser> Parser(const std::string& log_yaml) {
  const auto loaded = fe::config::ParseConfig("services:\n  - name: s\n    access_logs:\n      - " +
                                              log_yaml + "\n");
  return al::MakeLineParser(loaded.config.services.at(0).access_logs.at(0));
}

void RunParser(benchmark::State& state, const std::string& log_yaml, const std::string& format) {
  auto parser = Parser(log_yaml);
  const auto lines = Lines(format);
  std::size_t i = 0, bytes = 0;
  al::ParsedRequest request;
  for (auto _ : state) {
    const std::string& line = lines[i++ % lines.size()];
    benchmark::DoNotOptimize(parser->Parse(line, request));
    bytes += line.size();
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
  state.SetBytesProcessed(int64_t(bytes));
}

void BM_ParseJson(benchmark::State& state) {
  RunParser(state, "{path: /x, format: json}", "json");
}
void BM_ParseNginx(benchmark::State& state) {
  RunParser(
      state,
      R"({path: /x, format: nginx, nginx: {log_format: '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time'}})",
      "nginx");
}
void BM_ParseGunicorn(benchmark::State& state) {
  RunParser(
      state,
      R"({path: /x, format: gunicorn, gunicorn: {log_format: '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)s'}})",
      "gunicorn");
}
void BM_ParseUvicorn(benchmark::State& state) {
  RunParser(state, "{path: /x, format: uvicorn}", "uvicorn");
}

void BM_NormalizeRoute(benchmark::State& state) {
  std::vector<fe::config::RouteTemplate> routes;
  if (state.range(0)) {
    for (const char* base : kBases) {
      for (const char* sub : kSubs) {
        std::string problem;
        routes.push_back(*fe::config::ParseRouteTemplate(
            std::string("/api/") + base + "/{id:int}" + sub, &problem));
      }
    }
  }
  // Arg 2: a service's OpenAPI table of 500 routes, the 50 that match after 450 others (the
  // matcher tries routes in order, so this is near its worst case).
  std::vector<fe::config::RouteTemplate> discovered;
  if (state.range(0) == 2) {
    for (int n = 0; n < 450; ++n) {
      discovered.push_back(*fe::config::ParseRouteTemplate(
          "/api/other" + std::to_string(n) + "/{item_id}/parts", nullptr));
    }
    discovered.insert(discovered.end(), routes.begin(), routes.end());
    routes.clear();
  }
  al::RouteNormalizer normalizer(routes, {}, 200);
  normalizer.SetDiscoveredRoutes(discovered);
  const auto paths = Paths(1000);
  std::size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(normalizer.Normalize(paths[i++ % paths.size()]));
  state.SetItemsProcessed(int64_t(state.iterations()));
  state.SetLabel(state.range(0) == 2   ? "500 discovered routes"
                 : state.range(0) == 1 ? "50 routes"
                                       : "id heuristics");
}

void BM_RecordRequest(benchmark::State& state) {
  al::RequestStore store("fastapi");
  al::RequestMetrics metrics(store, "api", {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  const std::string label = "/api/users/{id}";
  uint32_t i = 0;
  for (auto _ : state) {
    metrics.Record(al::HttpMethod::kGet, i % 50, label, 200 + int(i % 4), true,
                   double(i % 100) / 100);
    ++i;
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}

// 10,000 series: 1,000 label sets of a counter and a 10-bucket histogram (12 lines each) would
// be far more; this is 10,000 counter series like a large deployment's requests_total.
std::shared_ptr<prometheus::Registry> RegistryWithSeries(int series) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto& family = prometheus::BuildCounter()
                     .Name("fastapi_requests_total")
                     .Help("HTTP requests served.")
                     .Register(*registry);
  for (int i = 0; i < series; ++i) {
    family
        .Add({{"service", "fastapi-backend"},
              {"method", i % 2 ? "GET" : "POST"},
              {"path", "/api/route" + std::to_string(i / 8) + "/{id}"},
              {"status_code", std::to_string(200 + i % 8)}})
        .Increment(double(i * 7));
  }
  return registry;
}

void BM_RenderPrometheusCpp(benchmark::State& state) {
  auto registry = RegistryWithSeries(int(state.range(0)));
  for (auto _ : state) {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, registry->Collect());
    benchmark::DoNotOptimize(out.str());
  }
}

// The same 10,000 counter series in the exporter's request store, rendered by the exposition.
void BM_RenderRequestStore(benchmark::State& state) {
  auto store = std::make_shared<al::RequestStore>("fastapi");
  std::vector<std::unique_ptr<al::RequestMetrics>> services;
  services.push_back(
      std::make_unique<al::RequestMetrics>(*store, "fastapi-backend", std::vector<double>{0.1, 1}));
  const int series = int(state.range(0));
  std::vector<std::string> labels;
  for (int i = 0; i < series / 8 + 1; ++i)
    labels.push_back("/api/route" + std::to_string(i) + "/{id}");
  for (int i = 0; i < series; ++i) {
    services[0]->Record(i % 2 ? al::HttpMethod::kGet : al::HttpMethod::kPost, uint32_t(i / 8),
                        labels[std::size_t(i / 8)], 200 + i % 8, false, 0);
  }
  fe::Exposition exposition;
  exposition.Register(std::static_pointer_cast<fe::TextSource>(store));
  for (auto _ : state) benchmark::DoNotOptimize(exposition.Render());
}

// What the default config gives: 800 label sets, each a counter and a 10-bucket histogram
// (800 x 14 = 11,200 series), for 50 routes x 4 methods x 4 statuses.
void BM_RenderRequestStoreHistograms(benchmark::State& state) {
  auto store = std::make_shared<al::RequestStore>("fastapi");
  al::RequestMetrics metrics(*store, "fastapi-backend",
                             {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  std::vector<std::string> labels;
  for (int i = 0; i < 50; ++i) labels.push_back("/api/route" + std::to_string(i) + "/{id}");
  for (int i = 0; i < 800; ++i) {
    metrics.Record(al::HttpMethod(i % 4), uint32_t(i / 16), labels[std::size_t(i / 16)],
                   200 + (i / 4) % 4, true, 0.001 * i);
  }
  fe::Exposition exposition;
  exposition.Register(std::static_pointer_cast<fe::TextSource>(store));
  for (auto _ : state) benchmark::DoNotOptimize(exposition.Render());
}

}  // namespace

BENCHMARK(BM_ParseJson);
BENCHMARK(BM_ParseNginx);
BENCHMARK(BM_ParseGunicorn);
BENCHMARK(BM_ParseUvicorn);
BENCHMARK(BM_NormalizeRoute)->Arg(0)->Arg(1)->Arg(2);
BENCHMARK(BM_RecordRequest);
BENCHMARK(BM_RenderPrometheusCpp)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RenderRequestStore)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RenderRequestStoreHistograms)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();

namespace {
void BM_CollectOnly(benchmark::State& state) {
  auto registry = RegistryWithSeries(int(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(registry->Collect());
}
}  // namespace
BENCHMARK(BM_CollectOnly)->Arg(10000)->Unit(benchmark::kMillisecond);
