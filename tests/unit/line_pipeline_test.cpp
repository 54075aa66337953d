// The shipped per-line chain (LinePipeline): what each kind of line counts under, with exact
// counts, read back from the registry and the request store independently.
#include "collectors/access_log/line_pipeline.hpp"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <map>
#include <string>

#include "collectors/access_log/config_translation.hpp"
#include "collectors/access_log/tailer.hpp"
#include "config/config.hpp"

namespace fastapi_exporter::access_log {
namespace {

// Every series of `name` whose labels include `labels`, summed.
double Sum(prometheus::Registry& registry, const std::string& name,
           const std::map<std::string, std::string>& labels = {}) {
  double total = 0;
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      std::size_t matched = 0;
      for (const auto& label : metric.label) {
        auto it = labels.find(label.name);
        if (it != labels.end() && it->second == label.value) ++matched;
      }
      if (matched == labels.size()) total += metric.counter.value;
    }
  }
  return total;
}

std::size_t Series(prometheus::Registry& registry, const std::string& name) {
  for (const auto& family : registry.Collect()) {
    if (family.name == name) return family.metric.size();
  }
  return 0;
}

config::AccessLogConfig Log(const std::string& log_yaml) {
  const auto loaded =
      config::ParseConfig("services:\n  - name: s\n    access_logs:\n      - " + log_yaml + "\n");
  EXPECT_TRUE(loaded.ok());
  return loaded.config.services.at(0).access_logs.at(0);
}

class LinePipelineTest : public ::testing::Test {
 protected:
  LinePipelineTest() : service_(Options(), store_, RegisterLineFamilies(registry_)) {
    service_.SetRecentLines(recent_);
  }
  static ServiceOptions Options() {
    ServiceOptions options;
    options.name = "api";
    options.exclude_paths = {"/health"};
    options.max_paths = 2;
    options.buckets = {0.1, 1};
    return options;
  }
  std::string Text() {
    std::string text;
    store_.RenderText(text);
    return text;
  }

  prometheus::Registry registry_;
  RequestStore store_{"fastapi"};
  ServicePipeline service_;
  std::shared_ptr<history::RecentLines> recent_ = std::make_shared<history::RecentLines>(10);
};

TEST_F(LinePipelineTest, CountsEachLineUnderOneOutcome) {
  const auto log = Log("{path: /x, format: json}");
  LinePipeline pipeline(SourceOptionsOf(log, 1024), service_);
  const std::map<std::string, std::string> source{{"service", "api"}, {"source", "/x"}};
  pipeline.Handle(R"({"endpoint":"/a/1","method":"GET","status_code":200,"duration_ms":5})");
  // Terminal colours around the line are stripped before parsing.
  pipeline.Handle("\x1b[32m{\"endpoint\":\"/a/2\",\"method\":\"GET\",\"status_code\":200}\x1b[0m");
  pipeline.Handle(R"({"endpoint":"/health","method":"GET","status_code":200})");
  pipeline.Handle(R"({"endpoint":"/b/x","method":"POST","status_code":201,"duration_ms":-4})");
  pipeline.Handle(R"({"endpoint":"/c/x","method":"GET","status_code":404})");  // over max_paths
  pipeline.Handle(R"({"endpoint":"/a/1","method":"GET")");
  pipeline.Handle(R"({"endpoint":"no-slash","method":"GET","status_code":200})");
  pipeline.OnSkipped(ParseError::kBinaryMessage, "\x01\x02");

  EXPECT_EQ(Sum(registry_, "fastapi_exporter_log_lines_total", source), 8);
  EXPECT_EQ(Sum(registry_, "fastapi_exporter_log_requests_total", source), 4);
  EXPECT_EQ(pipeline.requests(), 4u);
  EXPECT_EQ(service_.metrics().recorded(), 4u);
  EXPECT_EQ(recent_->added(), 4u);
  EXPECT_EQ(Sum(registry_, "fastapi_exporter_log_excluded_total", source), 1);
  EXPECT_EQ(Sum(registry_, "fastapi_exporter_log_invalid_durations_total", source), 1);
  EXPECT_EQ(Sum(registry_, "fastapi_exporter_paths_overflow_total", {{"service", "api"}}), 1);
  EXPECT_EQ(Sum(registry_, "fastapi_exporter_log_parse_errors_total", source), 3);
  EXPECT_EQ(Sum(registry_, "fastapi_exporter_log_parse_errors_total", {{"reason", "invalid_json"}}),
            1);
  EXPECT_EQ(Sum(registry_, "fastapi_exporter_log_parse_errors_total", {{"reason", "invalid_path"}}),
            1);
  EXPECT_EQ(
      Sum(registry_, "fastapi_exporter_log_parse_errors_total", {{"reason", "binary_message"}}), 1);
  // The request series, as a scrape shows them: two on /a/{id} (the id collapsed), one on
  // /b/x, one on __other__ (the third distinct path past max_paths 2).
  const std::string text = Text();
  EXPECT_NE(text.find(R"(fastapi_requests_total{service="api",method="GET",path="/a/{id}",)"
                      R"(status_code="200"} 2)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(path="__other__",status_code="404"} 1)"), std::string::npos) << text;
}

// A file's sink unwraps the envelope: every record counts as a line, partial records join.
TEST_F(LinePipelineTest, FileSinkUnwrapsTheEnvelope) {
  const auto log = Log("{path: /x, format: uvicorn, envelope: cri}");
  LinePipeline pipeline(SourceOptionsOf(log, 100), service_);
  const std::map<std::string, std::string> source{{"service", "api"}, {"source", "/x"}};
  auto sink = pipeline.MakeFileSink();
  sink->OnLine(R"(t stdout F INFO:     1.2.3.4:5 - "GET /a/1 HTTP/1.1" 200 OK)");
  sink->OnLine(R"(t stdout P INFO:     1.2.3.4:5 - "GET /a/2)");
  EXPECT_TRUE(sink->HoldsPartial());
  sink->OnLine(R"(t stdout F  HTTP/1.1" 500 Internal Server Error)");
  EXPECT_FALSE(sink->HoldsPartial());
  sink->OnLine("not a CRI record");
  const std::string sixty(60, '7');
  sink->OnLine("t stdout P " + sixty);
  sink->OnLine("t stdout F " + sixty);  // joined: over 100 bytes
  sink->OnLineTooLong();

  EXPECT_EQ(Sum(registry_, "fastapi_exporter_log_lines_total", source), 7);
  EXPECT_EQ(Sum(registry_, "fastapi_exporter_log_requests_total", source), 2);
  EXPECT_EQ(
      Sum(registry_, "fastapi_exporter_log_parse_errors_total", {{"reason", "invalid_envelope"}}),
      1);
  EXPECT_EQ(
      Sum(registry_, "fastapi_exporter_log_parse_errors_total", {{"reason", "line_too_long"}}), 2);
  EXPECT_EQ(Sum(registry_, "fastapi_exporter_log_parse_errors_total", source), 3);
  EXPECT_NE(Text().find(R"(path="/a/{id}",status_code="500"} 1)"), std::string::npos) << Text();
}

// A pipeline's series leave /metrics with it; the service's stay while the service does.
TEST_F(LinePipelineTest, SeriesLeaveWithThePipeline) {
  const auto log = Log("{path: /x, format: uvicorn}");
  {
    LinePipeline pipeline(SourceOptionsOf(log, 1024), service_);
    pipeline.Handle(R"(INFO:     1.2.3.4:5 - "GET /a/1 HTTP/1.1" 200 OK)");
    EXPECT_EQ(Series(registry_, "fastapi_exporter_log_lines_total"), 1u);
    EXPECT_EQ(Series(registry_, "fastapi_exporter_log_parse_errors_total"), kParseErrorCount - 1);
  }
  EXPECT_EQ(Series(registry_, "fastapi_exporter_log_lines_total"), 0u);
  EXPECT_EQ(Series(registry_, "fastapi_exporter_log_parse_errors_total"), 0u);
  EXPECT_EQ(Series(registry_, "fastapi_exporter_paths_overflow_total"), 1u);
  EXPECT_EQ(service_.metrics().recorded(), 1u);
}

TEST(ServiceOptions, EqualWhenEverythingThatShapesTheSeriesIs) {
  ServiceOptions a;
  a.name = "api";
  a.routes.push_back(*config::ParseRouteTemplate("/a/{id}", nullptr));
  a.exclude_paths = {"/health"};
  a.buckets = {0.1, 1};
  ServiceOptions b = a;
  EXPECT_TRUE(a == b);
  b.routes[0] = *config::ParseRouteTemplate("/a/{id:int}", nullptr);
  EXPECT_FALSE(a == b);
  b = a;
  b.exclude_paths.clear();
  EXPECT_FALSE(a == b);
  b = a;
  b.max_paths = 201;
  EXPECT_FALSE(a == b);
  b = a;
  b.buckets.push_back(2);
  EXPECT_FALSE(a == b);
  b = a;
  b.routes_from = "http://x/openapi.json";
  EXPECT_FALSE(a == b);
  b = a;
  b.name = "web";
  EXPECT_FALSE(a == b);
}

}  // namespace
}  // namespace fastapi_exporter::access_log
