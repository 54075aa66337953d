// The scrape cache of Exposition::Serve: unchanged sources give the same bytes, a changed one
// is rendered again, and a cached response never hides what was counted before it began.
#include "collectors/exposition.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <zlib.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <thread>
#include <vector>

#include "collectors/access_log/request_metrics.hpp"

namespace fastapi_exporter {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace al = access_log;

// Every member of a gzip file, decompressed one after another (what Go's gzip.Reader does).
std::string GunzipAll(const std::string& compressed) {
  std::string out;
  z_stream stream{};
  inflateInit2(&stream, 15 + 16);
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());
  char buffer[1 << 16];
  while (true) {
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof buffer;
    const int rc = inflate(&stream, Z_NO_FLUSH);
    out.append(buffer, sizeof buffer - stream.avail_out);
    if (rc == Z_STREAM_END) {
      if (stream.avail_in == 0) break;
      inflateReset(&stream);  // the next member
    } else if (rc != Z_OK) {
      ADD_FAILURE() << "inflate: " << rc;
      break;
    }
  }
  inflateEnd(&stream);
  return out;
}

using Body = std::vector<std::shared_ptr<const std::string>>;

std::string Join(const Body& pieces) {
  std::string text;
  for (const auto& piece : pieces) text += *piece;
  return text;
}

// The text without the collectors' durations and successes, which change on every scrape
// (exposition_collectors_test.cpp tests them).
std::string WithoutCollectorLines(const std::string& text) {
  std::string out;
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t end = std::min(text.find('\n', at), text.size() - 1) + 1;
    const std::string_view line(text.data() + at, end - at);
    at = end;
    if (line.find("fastapi_exporter_collector_") > std::string_view("# HELP ").size()) out += line;
  }
  return out;
}

std::string Text(const Exposition& exposition, bool gzip) {
  const std::string joined = Join(exposition.Serve(gzip));
  return WithoutCollectorLines(gzip ? GunzipAll(joined) : joined);
}

// The value of the first sample line starting with `prefix` (name and labels), or -1.
double Sample(const std::string& text, std::string_view prefix) {
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t end = text.find('\n', at);
    const std::string_view line(text.data() + at,
                                (end == std::string::npos ? text.size() : end) - at);
    at = end == std::string::npos ? text.size() : end + 1;
    if (line.substr(0, prefix.size()) != prefix) continue;
    double value = -1;
    const std::size_t space = line.rfind(' ');
    std::from_chars(line.data() + space + 1, line.data() + line.size(), value);
    return value;
  }
  return -1;
}

struct Fixture {
  Fixture() {
    counter = &prometheus::BuildCounter()
                   .Name("fastapi_exporter_log_lines_total")
                   .Help("Lines read.")
                   .Register(*registry)
                   .Add({});
    exposition.Register("sources", registry);
    exposition.Register("requests", store);
  }

  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Counter* counter = nullptr;
  std::shared_ptr<al::RequestStore> store = std::make_shared<al::RequestStore>("fastapi");
  al::RequestMetrics api{*store, "api", {0.1, 1}};
  Exposition exposition;
};

constexpr std::string_view kRequests =
    "fastapi_requests_total{service=\"api\",method=\"GET\",path=\"/a\",status_code=\"200\"} ";
constexpr std::string_view kCount =
    "fastapi_request_duration_seconds_count{service=\"api\",method=\"GET\",path=\"/a\","
    "status_code=\"200\"} ";

TEST(ExpositionCache, UnchangedSourceGivesTheSameBytes) {
  Fixture f;
  f.api.Record(al::HttpMethod::kGet, 1, "/a", 200, true, 0.05);
  const Body first = f.exposition.Serve(true);
  const Body second = f.exposition.Serve(true);
  // The gzip header, the registry, the request store's counters and histograms of its one
  // block, the collectors' durations and successes, the trailer.
  ASSERT_EQ(first.size(), 6u);
  ASSERT_EQ(second.size(), first.size());
  EXPECT_NE(first[1], second[1]);  // the registry: collected on every scrape
  EXPECT_EQ(first[2], second[2]);  // the request store: not rendered nor deflated again
  EXPECT_EQ(first[3], second[3]);
  // Plain text is rendered on every scrape (not kept: Prometheus asks for gzip).
  const Body plain = f.exposition.Serve(false);
  ASSERT_EQ(plain.size(), 3u);
  EXPECT_NE(plain[1], f.exposition.Serve(false)[1]);
}

TEST(ExpositionCache, OnlyTheBlockOfAChangedSeriesIsRenderedAgain) {
  Fixture f;
  const std::size_t series = 3 * al::RequestStore::kBlockSeries;
  std::vector<std::string> paths;
  for (std::size_t i = 0; i < series; ++i) paths.push_back("/p" + std::to_string(i));
  for (std::size_t i = 0; i < series; ++i) {
    f.api.Record(al::HttpMethod::kGet, uint32_t(i), paths[i], 200, true, 0.05);
  }
  const std::string plain = Text(f.exposition, false);
  const Body before = f.exposition.Serve(true);
  // The header, the registry, 3 blocks, the collectors' lines, the trailer.
  ASSERT_EQ(before.size(), 1 + 1 + 2 * 3u + 1 + 1);
  EXPECT_EQ(WithoutCollectorLines(GunzipAll(Join(before))), plain);
  // A series of the second block.
  f.api.Record(al::HttpMethod::kGet, uint32_t(al::RequestStore::kBlockSeries + 1),
               paths[al::RequestStore::kBlockSeries + 1], 200, true, 0.05);
  const Body after = f.exposition.Serve(true);
  ASSERT_EQ(after.size(), before.size());
  for (const std::size_t i : {2, 4, 5, 7}) EXPECT_EQ(before[i], after[i]) << i;
  for (const std::size_t i : {3, 6}) EXPECT_NE(before[i], after[i]) << i;
  const std::string changed = WithoutCollectorLines(GunzipAll(Join(after)));
  EXPECT_THAT(changed, HasSubstr("path=\"/p257\",status_code=\"200\"} 2\n"));
  EXPECT_EQ(changed, Text(f.exposition, false));
  // A new series starts a fourth block once the third is full.
  f.api.Record(al::HttpMethod::kPost, 0, paths[0], 201, false, 0);
  EXPECT_EQ(f.exposition.Serve(true).size(), 1 + 1 + 2 * 4u + 1 + 1);
  EXPECT_THAT(Text(f.exposition, true), HasSubstr("method=\"POST\",path=\"/p0\""));
}

TEST(ExpositionCache, AChangedSourceIsRenderedAgain) {
  Fixture f;
  f.api.Record(al::HttpMethod::kGet, 1, "/a", 200, true, 0.05);
  const Body before = f.exposition.Serve(true);
  EXPECT_EQ(Sample(Text(f.exposition, true), kRequests), 1);
  f.api.Record(al::HttpMethod::kGet, 1, "/a", 200, true, 0.05);
  const Body after = f.exposition.Serve(true);
  EXPECT_NE(before[2], after[2]);
  EXPECT_NE(before[3], after[3]);
  EXPECT_EQ(Sample(GunzipAll(Join(after)), kRequests), 2);
  // A new series, a new label set of an existing one, a removed service: all seen.
  f.api.Record(al::HttpMethod::kPost, 2, "/b", 201, false, 0);
  EXPECT_THAT(Text(f.exposition, true), HasSubstr("path=\"/b\""));
  auto other = std::make_unique<al::RequestMetrics>(*f.store, "other", std::vector<double>{1});
  other->Record(al::HttpMethod::kGet, 1, "/a", 200, false, 0);
  EXPECT_THAT(Text(f.exposition, false), HasSubstr("service=\"other\""));
  other.reset();
  EXPECT_THAT(Text(f.exposition, false), Not(HasSubstr("service=\"other\"")));
  f.store->SetMetricPrefix("renamed");
  EXPECT_THAT(Text(f.exposition, true), HasSubstr("renamed_requests_total{"));
}

// The same state gives the same text, plain or gzip, cached or not, and the same as the text
// sources rendered directly after the collectables.
TEST(ExpositionCache, TextIsByteIdenticalEveryWay) {
  Fixture f;
  f.api.Record(al::HttpMethod::kGet, 1, "/a", 200, true, 0.05);
  f.api.Record(al::HttpMethod::kPut, 7, "/q\"uote", 500, true, 7.5);
  std::string direct;
  f.store->RenderText(direct);
  const std::string plain = Text(f.exposition, false);
  EXPECT_EQ(plain.substr(plain.size() - direct.size()), direct);
  EXPECT_EQ(Text(f.exposition, false), plain);
  EXPECT_EQ(Text(f.exposition, true), plain);  // rendered and deflated
  EXPECT_EQ(Text(f.exposition, true), plain);  // the kept pieces
  EXPECT_EQ(WithoutCollectorLines(f.exposition.Render()), plain);
}

TEST(Gzip, RoundTrips) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "process_cpu_seconds_total{service=\"api\"} 1.5\n";
  const std::string compressed = GzipCompress(text);
  EXPECT_LT(compressed.size(), text.size() / 10);
  EXPECT_EQ(GunzipAll(compressed), text);
  EXPECT_EQ(GunzipAll(GzipCompress("")), "");
  // Bigger than the first guess of the output's size, and incompressible.
  std::string noise(1 << 20, '\0');
  uint32_t state = 1;
  for (char& c : noise) c = char((state = state * 1664525 + 1013904223) >> 24);
  EXPECT_EQ(GunzipAll(GzipCompress(noise)), noise);
}

// Pieces deflated apart are one gzip member: readers that take only one (curl) read it all.
TEST(Gzip, PiecesJoinIntoOneMember) {
  ExpositionPieces pieces;
  std::string text;
  for (int i = 0; i < 5; ++i) {
    const std::string part =
        "piece " + std::to_string(i) + std::string(std::size_t(i) * 1000, 'x') + "\n";
    text += part;
    pieces.push_back(std::make_shared<const ExpositionPiece>(DeflatePiece(part)));
  }
  pieces.push_back(std::make_shared<const ExpositionPiece>(DeflatePiece("")));
  const std::string body = Join(GzipBody(pieces));
  z_stream stream{};
  inflateInit2(&stream, 15 + 16);
  std::string out(text.size() + 1, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  stream.avail_in = static_cast<uInt>(body.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&stream, Z_FINISH), Z_STREAM_END);  // checks the CRC-32 and length too
  EXPECT_EQ(stream.avail_in, 0u);                       // nothing after the one member
  out.resize(stream.total_out);
  inflateEnd(&stream);
  EXPECT_EQ(out, text);
}

TEST(ExpositionCache, GzipOfNothingIsStillAGzipFile) {
  Exposition exposition;
  const std::string body = Join(exposition.Serve(true));
  EXPECT_FALSE(body.empty());
  EXPECT_EQ(WithoutCollectorLines(GunzipAll(body)), "");
}

// A line counted before a scrape starts is in that scrape, whichever collector counts it and
// whichever scrape (of several at once, plain or gzip) serves the cached bytes. Run under
// ThreadSanitizer by `make test`.
TEST(ExpositionCache, ACachedResponseIsNeverStaleUnderConcurrentScrapes) {
  Fixture f;
  constexpr uint64_t kLines = 3000;
  std::atomic<uint64_t> counted{0};
  std::atomic<bool> failed{false};
  std::thread writer([&] {
    for (uint64_t i = 1; i <= kLines; ++i) {
      f.api.Record(al::HttpMethod::kGet, 1, "/a", 200, true, 0.05);
      f.counter->Increment();
      counted.store(i, std::memory_order_release);
      // Pauses, so that scrapes also find stretches with nothing changed (served from the cache).
      if (i % 16 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  std::vector<std::thread> scrapers;
  std::atomic<int> scrapes{0};
  for (int s = 0; s < 4; ++s) {
    scrapers.emplace_back([&, s] {
      bool gzip = s % 2 == 0;
      while (!failed) {
        const uint64_t before = counted.load(std::memory_order_acquire);
        const std::string text = Text(f.exposition, gzip);
        ++scrapes;
        const double requests = Sample(text, kRequests);
        const double histogram = Sample(text, kCount);
        const double lines = Sample(text, "fastapi_exporter_log_lines_total ");
        if ((before > 0 && (requests < double(before) || histogram < double(before))) ||
            lines < double(before)) {
          ADD_FAILURE() << "counted " << before << " before the scrape, served requests "
                        << requests << ", histogram count " << histogram << ", lines " << lines;
          failed = true;
        }
        if (before == kLines) break;
        gzip = !gzip;
      }
    });
  }
  writer.join();
  for (auto& scraper : scrapers) scraper.join();
  EXPECT_EQ(Sample(Text(f.exposition, true), kRequests), double(kLines));
  EXPECT_GT(scrapes.load(), 20);
}

}  // namespace
}  // namespace fastapi_exporter
