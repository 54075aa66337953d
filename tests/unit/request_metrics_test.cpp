#include "collectors/access_log/request_metrics.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>

namespace fastapi_exporter::access_log {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Render(const RequestStore& store) {
  std::string out;
  store.RenderText(out);
  return out;
}

TEST(RequestStore, RendersCountersAndHistogramsOfEveryService) {
  RequestStore store("fastapi");
  RequestMetrics api(store, "api", {0.1, 1});
  api.Record(HttpMethod::kGet, 1, "/users/{id}", 200, true, 0.05);
  api.Record(HttpMethod::kGet, 1, "/users/{id}", 200, true, 0.5);
  api.Record(HttpMethod::kPost, 2, "/users", 201, false, 0);
  const std::string text = Render(store);
  EXPECT_THAT(text, HasSubstr("fastapi_requests_total{service=\"api\",method=\"GET\","
                              "path=\"/users/{id}\",status_code=\"200\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("fastapi_requests_total{service=\"api\",method=\"POST\","
                              "path=\"/users\",status_code=\"201\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("fastapi_request_duration_seconds_bucket{service=\"api\","
                              "method=\"GET\",path=\"/users/{id}\",status_code=\"200\","
                              "le=\"0.1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("le=\"1\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("le=\"+Inf\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("fastapi_request_duration_seconds_sum{service=\"api\","
                              "method=\"GET\",path=\"/users/{id}\",status_code=\"200\"} 0.55\n"));
  // A request without duration counts, but makes no histogram.
  EXPECT_THAT(text, Not(HasSubstr("_count{service=\"api\",method=\"POST\"")));
  EXPECT_EQ(api.recorded(), 3u);
}

TEST(RequestStore, ARemovedServiceTakesOnlyItsOwnSeriesAway) {
  RequestStore store("fastapi");
  RequestMetrics kept(store, "kept", {1});
  auto removed = std::make_unique<RequestMetrics>(store, "removed", std::vector<double>{1});
  kept.Record(HttpMethod::kGet, 1, "/a", 200, true, 0.5);
  removed->Record(HttpMethod::kGet, 1, "/a", 200, true, 0.5);
  EXPECT_THAT(Render(store), HasSubstr("service=\"removed\""));
  removed.reset();
  const std::string text = Render(store);
  EXPECT_THAT(text, Not(HasSubstr("service=\"removed\"")));
  EXPECT_THAT(text, HasSubstr("fastapi_requests_total{service=\"kept\",method=\"GET\","
                              "path=\"/a\",status_code=\"200\"} 1\n"));
  // The kept service goes on counting into its series.
  kept.Record(HttpMethod::kGet, 1, "/a", 200, true, 0.5);
  EXPECT_THAT(Render(store), HasSubstr("status_code=\"200\"} 2\n"));
}

TEST(RequestStore, PrefixCanChange) {
  RequestStore store("fastapi");
  RequestMetrics api(store, "api", {1});
  api.Record(HttpMethod::kGet, 1, "/a", 200, false, 0);
  store.SetMetricPrefix("web");
  EXPECT_THAT(Render(store), HasSubstr("web_requests_total{service=\"api\""));
}

TEST(RequestStore, NothingWithoutSeries) {
  RequestStore store("fastapi");
  EXPECT_EQ(Render(store), "");
}

}  // namespace
}  // namespace fastapi_exporter::access_log
