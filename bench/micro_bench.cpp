// Micro-benchmarks of the per-line path and of rendering. Run: build/bench/micro_bench
#include <benchmark/benchmark.h>
#ifdef FE_BENCH_LIBDEFLATE
#include <libdeflate.h>
#endif
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <zlib.h>

#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "collectors/access_log/config_translation.hpp"
#include "collectors/access_log/line_pipeline.hpp"
#include "collectors/access_log/request_metrics.hpp"
#include "collectors/access_log/route_normalizer.hpp"
#include "collectors/exposition.hpp"
#include "collectors/history/recent_lines.hpp"
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

fe::config::AccessLogConfig LogConfig(const std::string& log_yaml) {
  const auto loaded = fe::config::ParseConfig("services:\n  - name: s\n    access_logs:\n      - " +
                                              log_yaml + "\n");
  return loaded.config.services.at(0).access_logs.at(0);
}

std::unique_ptr<al::LineParser> Parser(const std::string& log_yaml) {
  return al::MakeLineParser(LogConfig(log_yaml));
}

void BM_Parse(benchmark::State& state, const std::string& log_yaml, const std::string& format) {
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

// The whole per-line chain as the collector runs it (LinePipeline::Handle): terminal escapes,
// parser, route normalizer (id heuristics), request metrics, the live view's recent lines.
void BM_Pipeline(benchmark::State& state, const std::string& log_yaml, const std::string& format) {
  const auto log = LogConfig(log_yaml);
  prometheus::Registry registry;
  al::RequestStore store("fastapi");
  al::ServiceOptions options;
  options.name = "api";
  options.buckets = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  al::ServicePipeline service(options, store, al::RegisterLineFamilies(registry));
  service.SetRecentLines(std::make_shared<fe::history::RecentLines>(1000));
  al::LinePipeline pipeline(al::SourceOptionsOf(log, 64 * 1024), service);
  const auto lines = Lines(format);
  std::size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const std::string& line = lines[i++ % lines.size()];
    pipeline.Handle(line);
    bytes += line.size();
  }
  if (pipeline.requests() != uint64_t(state.iterations())) {
    state.SkipWithError("a line was not counted as a request");
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
  state.SetBytesProcessed(int64_t(bytes));
}

const char* kJsonLog = "{path: /x, format: json}";
const char* kNginxLog =
    R"({path: /x, format: nginx, nginx: {log_format: '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time'}})";
const char* kGunicornLog =
    R"({path: /x, format: gunicorn, gunicorn: {log_format: '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)s'}})";
const char* kUvicornLog = "{path: /x, format: uvicorn}";

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
  // The whole text, as a scrape renders it when every block changed (an unchanged one is
  // served from the cache: BM_ServeRequestStore).
  for (auto _ : state) {
    std::string text;
    store->RenderText(text);
    benchmark::DoNotOptimize(text);
  }
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
  for (auto _ : state) {
    std::string text;
    store->RenderText(text);
    benchmark::DoNotOptimize(text);
  }
}

// The request store of the scrape benchmark (bench/run.py --only=scrape): 5,600 label sets,
// 700 paths x 8 method/status pairs, 10-bucket histograms: 78,400 lines, ~9.5 MB.
struct ScrapeStore {
  static constexpr int kLabelSets = 5600;
  ScrapeStore() {
    for (int i = 0; i < kLabelSets / 8; ++i)
      paths.push_back("/api/res" + std::to_string(i) + "/{id}");
    for (int i = 0; i < kLabelSets; ++i) Record(i, 1 + i % 7);
  }
  void Record(int label_set, int times) {
    for (int t = 0; t < times; ++t) {
      metrics.Record(al::HttpMethod(label_set % 4), uint32_t(label_set / 8),
                     paths[std::size_t(label_set / 8)], 200 + label_set % 8, true,
                     0.0007 * (label_set % 3000) + 0.001 * t);
    }
  }
  std::shared_ptr<al::RequestStore> store = std::make_shared<al::RequestStore>("fastapi");
  al::RequestMetrics metrics{*store, "api", {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}};
  std::vector<std::string> paths;
};

// One gzip scrape of those series through the exposition's cache: state.range(0) is what
// changed since the previous scrape: 0 nothing, 1 one line, 2 every label set.
void BM_ServeRequestStoreGzip(benchmark::State& state) {
  ScrapeStore scrape;
  fe::Exposition exposition;
  exposition.Register("requests", scrape.store);
  benchmark::DoNotOptimize(exposition.Serve(true));
  int round = 0;
  std::size_t bytes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    if (state.range(0) == 1) scrape.Record(round % ScrapeStore::kLabelSets, 1);
    if (state.range(0) == 2) {
      for (int i = 0; i < ScrapeStore::kLabelSets; ++i) scrape.Record(i, 1);
    }
    ++round;
    state.ResumeTiming();
    const auto pieces = exposition.Serve(true);
    bytes = 0;
    for (const auto& piece : pieces) bytes += piece->size();
  }
  state.counters["bytes"] = double(bytes);
}

// The compressors the daemon could use, on the whole text of those series: state.range(0) is
// the level, state.range(1) 0 for zlib (level 6: the daemon's before), 1 for libdeflate (when
// built with it), 2 for ISA-L's igzip as the daemon uses it (DeflatePiece).
void BM_GzipScrapeText(benchmark::State& state) {
  ScrapeStore scrape;
  std::string text;
  scrape.store->RenderText(text);
  const int level = int(state.range(0));
  std::size_t bytes = 0;
  for (auto _ : state) {
    if (state.range(1) == 2) {
      bytes = fe::DeflatePiece(text).bytes.size() + 20;  // with gzip header and trailer
    } else if (state.range(1) == 1) {
#ifdef FE_BENCH_LIBDEFLATE
      libdeflate_compressor* compressor = libdeflate_alloc_compressor(level);
      std::string out(libdeflate_gzip_compress_bound(compressor, text.size()), '\0');
      bytes =
          libdeflate_gzip_compress(compressor, text.data(), text.size(), out.data(), out.size());
      libdeflate_free_compressor(compressor);
#else
      state.SkipWithError("built without libdeflate");
      break;
#endif
    } else {
      z_stream stream{};
      deflateInit2(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
      std::string out(deflateBound(&stream, text.size()), '\0');
      stream.next_in = reinterpret_cast<Bytef*>(text.data());
      stream.avail_in = static_cast<uInt>(text.size());
      stream.next_out = reinterpret_cast<Bytef*>(out.data());
      stream.avail_out = static_cast<uInt>(out.size());
      deflate(&stream, Z_FINISH);
      bytes = stream.total_out;
      deflateEnd(&stream);
    }
    benchmark::ClobberMemory();
  }
  state.counters["bytes"] = double(bytes);
  state.counters["text_bytes"] = double(text.size());
}

}  // namespace

BENCHMARK_CAPTURE(BM_Parse, Json, kJsonLog, "json");
BENCHMARK_CAPTURE(BM_Parse, Nginx, kNginxLog, "nginx");
BENCHMARK_CAPTURE(BM_Parse, Gunicorn, kGunicornLog, "gunicorn");
BENCHMARK_CAPTURE(BM_Parse, Uvicorn, kUvicornLog, "uvicorn");
BENCHMARK_CAPTURE(BM_Pipeline, Json, kJsonLog, "json");
BENCHMARK_CAPTURE(BM_Pipeline, Nginx, kNginxLog, "nginx");
BENCHMARK_CAPTURE(BM_Pipeline, Gunicorn, kGunicornLog, "gunicorn");
BENCHMARK_CAPTURE(BM_Pipeline, Uvicorn, kUvicornLog, "uvicorn");
BENCHMARK(BM_NormalizeRoute)->Arg(0)->Arg(1)->Arg(2);
BENCHMARK(BM_RecordRequest);
BENCHMARK(BM_RenderPrometheusCpp)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RenderRequestStore)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RenderRequestStoreHistograms)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ServeRequestStoreGzip)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GzipScrapeText)
    ->Args({1, 0})
    ->Args({6, 0})
    ->Args({1, 1})
    ->Args({6, 1})
    ->Args({1, 2})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();

namespace {
void BM_CollectOnly(benchmark::State& state) {
  auto registry = RegistryWithSeries(int(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(registry->Collect());
}
}  // namespace
BENCHMARK(BM_CollectOnly)->Arg(10000)->Unit(benchmark::kMillisecond);
