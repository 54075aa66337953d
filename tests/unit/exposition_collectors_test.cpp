// The collector contract of Exposition: collectors registered by name, each timed and its
// success reported in fastapi_exporter_collector_{duration_seconds,success}, a throwing one
// left out while the others render.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <atomic>
#include <sstream>
#include <stdexcept>

#include "collectors/exposition.hpp"
#include "tests/unit/count.hpp"

namespace fastapi_exporter {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// A collector giving one gauge, or throwing while `fail` is set.
class FakeCollector final : public Collector {
 public:
  explicit FakeCollector(std::string metric) : metric_(std::move(metric)) {}
  void RenderText(std::string& out) const override {
    ++renders;
    // Half a family first: a failed collector's text must not reach the page at all.
    out += "# TYPE " + metric_ + " gauge\n";
    if (fail) throw std::runtime_error("cannot read " + metric_);
    out += metric_ + " 7\n";
  }
  std::atomic<bool> fail{false};
  mutable std::atomic<int> renders{0};

 private:
  std::string metric_;
};

std::vector<std::string> Lines(const std::string& text, std::string_view prefix) {
  std::vector<std::string> lines;
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t end = text.find('\n', at);
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    if (line.starts_with(prefix)) lines.push_back(line);
  }
  return lines;
}

// One gzip member, decompressed.
std::string Gunzip(const std::string& compressed) {
  z_stream stream{};
  inflateInit2(&stream, 15 + 16);
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());
  std::string out(1 << 20, '\0');
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&stream, Z_FINISH), Z_STREAM_END);
  out.resize(stream.total_out);
  inflateEnd(&stream);
  return out;
}

std::string Body(const Exposition& exposition, bool gzip) {
  std::string body;
  for (const auto& piece : exposition.Serve(gzip)) body += *piece;
  return gzip ? Gunzip(body) : body;
}

struct Fixture {
  Fixture() {
    prometheus::BuildCounter()
        .Name("fastapi_exporter_scrapes_total")
        .Help("Scrapes.")
        .Register(*registry)
        .Add({})
        .Increment(3);
    exposition.Register("exporter", registry);
    exposition.Register("first", first);
    exposition.Register("second", second);
  }
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::shared_ptr<FakeCollector> first = std::make_shared<FakeCollector>("first_value");
  std::shared_ptr<FakeCollector> second = std::make_shared<FakeCollector>("second_value");
  Exposition exposition;
};

TEST(ExpositionCollectors, NamesAreListedInRegistrationOrder) {
  Fixture f;
  EXPECT_THAT(f.exposition.Names(), ElementsAre("exporter", "first", "second"));
}

TEST(ExpositionCollectors, ANameTakenTwiceIsRefused) {
  Fixture f;
  EXPECT_THROW(f.exposition.Register("first", std::make_shared<FakeCollector>("x")),
               std::invalid_argument);
  EXPECT_THAT(f.exposition.Names(), ElementsAre("exporter", "first", "second"));
}

TEST(ExpositionCollectors, EveryCollectorIsTimedAndSucceeds) {
  Fixture f;
  const std::string text = f.exposition.Render();
  EXPECT_THAT(text, HasSubstr("\nfastapi_exporter_scrapes_total 3\n"));
  EXPECT_THAT(text, HasSubstr("\nfirst_value 7\n"));
  EXPECT_THAT(text, HasSubstr("\nsecond_value 7\n"));
  EXPECT_THAT(Lines(text, "fastapi_exporter_collector_success"),
              ElementsAre("fastapi_exporter_collector_success{collector=\"exporter\"} 1",
                          "fastapi_exporter_collector_success{collector=\"first\"} 1",
                          "fastapi_exporter_collector_success{collector=\"second\"} 1"));
  const auto durations = Lines(text, "fastapi_exporter_collector_duration_seconds{");
  ASSERT_EQ(durations.size(), 3u);
  const char* names[] = {"exporter", "first", "second"};
  for (std::size_t i = 0; i < 3; ++i) {
    const std::string start =
        std::string("fastapi_exporter_collector_duration_seconds{collector=\"") + names[i] + "\"} ";
    ASSERT_TRUE(durations[i].starts_with(start)) << durations[i];
    const double seconds = std::stod(durations[i].substr(start.size()));
    EXPECT_GE(seconds, 0);
  }
  EXPECT_EQ(f.first->renders, 1);
  EXPECT_EQ(f.second->renders, 1);
}

TEST(ExpositionCollectors, HelpAndTypeAppearOnceEach) {
  Fixture f;
  for (const bool gzip : {false, true}) {
    const std::string text = Body(f.exposition, gzip);
    for (const char* name :
         {"fastapi_exporter_collector_duration_seconds", "fastapi_exporter_collector_success"}) {
      EXPECT_EQ(Count(text, std::string("# HELP ") + name + " "), 1u) << name;
      EXPECT_EQ(Count(text, std::string("# TYPE ") + name + " gauge\n"), 1u) << name;
    }
  }
}

TEST(ExpositionCollectors, AThrowingCollectorGivesZeroAndTheOthersStillRender) {
  Fixture f;
  f.first->fail = true;
  for (const bool gzip : {false, true}) {
    const std::string text = Body(f.exposition, gzip);
    EXPECT_THAT(text, Not(HasSubstr("first_value")));  // not even its half family
    EXPECT_THAT(text, HasSubstr("\nsecond_value 7\n"));
    EXPECT_THAT(text, HasSubstr("\nfastapi_exporter_scrapes_total 3\n"));
    EXPECT_THAT(Lines(text, "fastapi_exporter_collector_success"),
                ElementsAre("fastapi_exporter_collector_success{collector=\"exporter\"} 1",
                            "fastapi_exporter_collector_success{collector=\"first\"} 0",
                            "fastapi_exporter_collector_success{collector=\"second\"} 1"));
    EXPECT_EQ(Lines(text, "fastapi_exporter_collector_duration_seconds{").size(), 3u);
  }
  // Back to work: 1 again, its text back.
  f.first->fail = false;
  const std::string text = f.exposition.Render();
  EXPECT_THAT(text, HasSubstr("\nfirst_value 7\n"));
  EXPECT_THAT(text, HasSubstr("fastapi_exporter_collector_success{collector=\"first\"} 1\n"));
}

TEST(ExpositionCollectors, AFailureIsLoggedOncePerChange) {
  Fixture f;
  std::ostringstream log;
  const auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
  f.first->fail = true;
  for (int i = 0; i < 3; ++i) f.exposition.Render();
  f.first->fail = false;
  for (int i = 0; i < 2; ++i) f.exposition.Render();
  f.first->fail = true;
  f.exposition.Render();
  spdlog::set_default_logger(previous);
  const std::string text = log.str();
  EXPECT_EQ(Count(text, "collector first failed, left out of the scrape: cannot read first_value"),
            2u)
      << text;
  EXPECT_EQ(Count(text, "collector first works again"), 1u) << text;
  EXPECT_EQ(Count(text, "collector second"), 0u) << text;
  EXPECT_EQ(f.first->renders, 6);
}

TEST(ExpositionCollectors, UnhealthyAfterFailingTheLastRendersInARow) {
  Fixture f;
  EXPECT_EQ(f.exposition.Unhealthy(3), "");
  f.second->fail = true;
  f.exposition.Render();
  f.exposition.Render();
  EXPECT_EQ(f.exposition.Unhealthy(3), "");  // two in a row
  EXPECT_EQ(f.exposition.Unhealthy(2),
            "collector second failed its last 2 renders: cannot read second_value");
  f.exposition.Serve(true);
  EXPECT_EQ(f.exposition.Unhealthy(3),
            "collector second failed its last 3 renders: cannot read second_value");
  // One success starts the count again.
  f.second->fail = false;
  f.exposition.Render();
  EXPECT_EQ(f.exposition.Unhealthy(1), "");
  f.second->fail = true;
  f.exposition.Render();
  EXPECT_EQ(f.exposition.Unhealthy(2), "");
  EXPECT_EQ(f.exposition.Unhealthy(1),
            "collector second failed its last 1 renders: cannot read second_value");
}

}  // namespace
}  // namespace fastapi_exporter
