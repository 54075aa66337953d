#include "collectors/access_log/openapi_routes.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "collectors/access_log/route_normalizer.hpp"

namespace fastapi_exporter::access_log {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

std::vector<std::string> Texts(const std::vector<config::RouteTemplate>& routes) {
  std::vector<std::string> texts;
  for (const auto& route : routes) texts.push_back(route.text);
  return texts;
}

// What FastAPI itself served for examples/fastapi-app under `uvicorn --root-path /svc`: a
// router with a prefix, int/str/uuid parameters, a {file_path:path} route (shown as
// {file_path}) and a mounted sub-application (absent).
const std::string kFastApiDocument = ReadFile(FASTAPI_EXPORTER_TEST_DATA "/openapi_fastapi.json");

TEST(OpenApiRoutes, FastApisOwnDocument) {
  std::vector<config::RouteTemplate> routes;
  std::size_t skipped = 0;
  std::string message;
  ASSERT_EQ(RoutesFromOpenApi(kFastApiDocument, routes, skipped, message), OpenApiError::kNone)
      << message;
  EXPECT_EQ(skipped, 0u);
  const std::vector<std::string> paths = {"/api/users/{user_id}",
                                          "/api/items",
                                          "/api/items/{item_id}/reviews/{review_id}",
                                          "/api/slow",
                                          "/api/error",
                                          "/api/orders/{order_id}",
                                          "/api/orders/{order_id}/lines/{line_no}",
                                          "/api/sessions/{session_id}",
                                          "/files/{file_path}",
                                          "/health"};
  std::vector<std::string> expected;
  for (const auto& path : paths) expected.push_back("/svc" + path);  // root_path first
  expected.insert(expected.end(), paths.begin(), paths.end());
  EXPECT_EQ(Texts(routes), expected);
}

TEST(OpenApiRoutes, LabelsAreTheRouterTemplatesAfterConfiguredRoutes) {
  std::vector<config::RouteTemplate> routes;
  std::size_t skipped = 0;
  std::string message;
  ASSERT_EQ(RoutesFromOpenApi(kFastApiDocument, routes, skipped, message), OpenApiError::kNone);
  // What OpenAPI cannot say, configured: the path convertor.
  RouteNormalizer normalizer({*config::ParseRouteTemplate("/files/{file_path:path}", nullptr)}, {},
                             5);
  normalizer.SetDiscoveredRoutes(routes);
  auto label = [&](std::string_view target) {
    const auto result = normalizer.Normalize(target);
    return result.outcome == RouteNormalizer::Outcome::kPath ? normalizer.PathLabel(result.path_id)
                                                             : std::string("(not a path)");
  };
  EXPECT_EQ(label("/api/orders/12/lines/3?x=1"), "/api/orders/{order_id}/lines/{line_no}");
  EXPECT_EQ(label("/svc/api/orders/12"), "/svc/api/orders/{order_id}");
  // FastAPI routes by path, then validates types: a word where an int is declared is still
  // this route (answered 422), as in-process middleware labels it.
  EXPECT_EQ(label("/api/users/abc"), "/api/users/{user_id}");
  EXPECT_EQ(label("/api/sessions/not-a-uuid"), "/api/sessions/{session_id}");
  EXPECT_EQ(label("/api/items/7/reviews/great-review"), "/api/items/{item_id}/reviews/{review_id}");
  EXPECT_EQ(label("/files/a/b/c.txt"), "/files/{file_path:path}");  // the configured route
  EXPECT_EQ(label("/admin/stats"), "/admin/stats");                 // mounted: not in OpenAPI
  // A new table keeps the ids of labels seen before and drops what is gone.
  const auto before = normalizer.Normalize("/api/users/1").path_id;
  routes.erase(routes.begin(), routes.begin() + 10);  // only the unprefixed ones stay
  routes.push_back(*config::ParseRouteTemplate("/api/v2/things/{thing_id}", nullptr));
  normalizer.SetDiscoveredRoutes(routes);
  EXPECT_EQ(normalizer.Normalize("/api/users/1").path_id, before);
  EXPECT_EQ(label("/api/v2/things/x"), "/api/v2/things/{thing_id}");
  EXPECT_EQ(label("/svc/api/orders/12"), "/svc/api/orders/{id}");  // heuristics again
  EXPECT_EQ(normalizer.discovered_routes(), 11u);
}

TEST(OpenApiRoutes, AHandMadeDocumentWithFiveThousandPaths) {
  std::string document =
      R"({"openapi":"3.1.0","servers":[{"url":"http://gw.example:8080/base/"}],"paths":{)";
  for (int i = 0; i < 5000; ++i) {
    document += i ? ",\"/r" : "\"/r";
    document += std::to_string(i) + "/{id}\":{}";
  }
  document += "}}";
  std::vector<config::RouteTemplate> routes;
  std::size_t skipped = 0;
  std::string message;
  ASSERT_EQ(RoutesFromOpenApi(document, routes, skipped, message), OpenApiError::kNone);
  ASSERT_EQ(routes.size(), 10000u);
  EXPECT_EQ(routes[0].text, "/base/r0/{id}");
  EXPECT_EQ(routes[9999].text, "/r4999/{id}");
  // Over the limit: refused, the table given is untouched.
  std::string more = R"({"paths":{)";
  for (std::size_t i = 0; i <= kMaxOpenApiPaths; ++i)
    more += (i ? ",\"/p" : "\"/p") + std::to_string(i) + "\":{}";
  more += "}}";
  EXPECT_EQ(RoutesFromOpenApi(more, routes, skipped, message), OpenApiError::kTooManyPaths);
  EXPECT_THAT(message, HasSubstr("at most 10000"));
  EXPECT_EQ(routes.size(), 10000u);
}

TEST(OpenApiRoutes, BrokenDocumentsSayWhyAndKeepTheTable) {
  std::vector<config::RouteTemplate> routes = {*config::ParseRouteTemplate("/kept", nullptr)};
  std::size_t skipped = 0;
  std::string message;
  struct Case {
    std::string document;
    OpenApiError error;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"paths":{"/a":{}})", OpenApiError::kInvalidJson, "not JSON"},
           {"<html>502 Bad Gateway</html>", OpenApiError::kInvalidJson, "not JSON"},
           {"", OpenApiError::kInvalidJson, "not JSON"},
           {R"({"openapi":"3.1.0"})", OpenApiError::kInvalidOpenApi, "no \"paths\""},
           {R"({"paths":["/a"]})", OpenApiError::kInvalidOpenApi, "no \"paths\""},
           {R"([1,2])", OpenApiError::kInvalidOpenApi, "no \"paths\""},
       }) {
    EXPECT_EQ(RoutesFromOpenApi(c.document, routes, skipped, message), c.error) << c.document;
    EXPECT_THAT(message, HasSubstr(c.says)) << c.document;
    EXPECT_THAT(Texts(routes), ElementsAre("/kept"));
  }
  // Wrong types where nothing needs them, and paths that are not routes: used, or skipped.
  ASSERT_EQ(RoutesFromOpenApi(R"({"servers":"x","paths":{"/a":1,"b":{},"/c?d":{},"/e/{f}":null}})",
                              routes, skipped, message),
            OpenApiError::kNone);
  EXPECT_THAT(Texts(routes), ElementsAre("/a", "/e/{f}"));
  EXPECT_EQ(skipped, 2u);
}

// An OpenAPI file in a folder of its own (empty at first) and the self-metric families a
// RouteDiscovery of service "api" reports to.
struct DiscoveryFixture {
  explicit DiscoveryFixture(const std::string& name)
      : folder(::testing::TempDir() + name), file(folder + "/openapi.json") {
    InitRouteDiscovery();
    std::filesystem::remove_all(folder);
    std::filesystem::create_directories(folder);
  }
  config::RoutesFrom From(std::chrono::milliseconds refresh) const {
    config::RoutesFrom from;
    from.openapi_file = file;
    from.refresh = refresh;
    return from;
  }

  const std::string folder, file;
  prometheus::Registry registry;
  prometheus::Family<prometheus::Gauge>& discovered =
      prometheus::BuildGauge().Name("d").Register(registry);
  prometheus::Family<prometheus::Gauge>& last =
      prometheus::BuildGauge().Name("l").Register(registry);
  prometheus::Family<prometheus::Counter>& errors =
      prometheus::BuildCounter().Name("e").Register(registry);
};

TEST(RouteDiscovery, ReadsAFileKeepsTheLastGoodTableAndCountsErrors) {
  DiscoveryFixture f("route_discovery");
  const std::string& file = f.file;
  auto& discovered = f.discovered;
  auto& last = f.last;
  auto& errors = f.errors;
  std::ofstream(file) << kFastApiDocument;
  RouteDiscovery discovery("api", f.From(std::chrono::seconds(1)), {discovered, last, errors});
  discovery.WaitFirstAttempt(std::chrono::seconds(30));
  std::vector<config::RouteTemplate> routes;
  ASSERT_TRUE(discovery.TakeUpdate(routes));
  EXPECT_EQ(routes.size(), 20u);
  EXPECT_FALSE(discovery.TakeUpdate(routes));
  EXPECT_EQ(discovered.Add({{"service", "api"}}).Value(), 20);
  EXPECT_GT(last.Add({{"service", "api"}}).Value(), 1.7e9);
  // Every reason's series exists from the start, at 0.
  EXPECT_EQ(errors.Add({{"service", "api"}, {"reason", "invalid_json"}}).Value(), 0);
  std::ofstream(file) << "{broken";
  auto& invalid = errors.Add({{"service", "api"}, {"reason", "invalid_json"}});
  for (int i = 0; i < 300 && invalid.Value() < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GE(invalid.Value(), 1);
  EXPECT_FALSE(discovery.TakeUpdate(routes));  // the last good table stays
  EXPECT_EQ(discovered.Add({{"service", "api"}}).Value(), 20);
}

// The exporter started before the service (boot, deploy): the first fetch fails, and the
// table is read within seconds of the document appearing, not at the next `refresh` (an
// hour here); then refreshes are `refresh` apart again.
TEST(RouteDiscovery, UntilAFirstTableIsReadItRetriesWithinSeconds) {
  DiscoveryFixture f("route_discovery_late");
  const std::string& file = f.file;
  auto& errors = f.errors;
  RouteDiscovery discovery("api", f.From(std::chrono::hours(1)), {f.discovered, f.last, errors});
  discovery.WaitFirstAttempt(std::chrono::seconds(30));
  auto& fetch_errors = errors.Add({{"service", "api"}, {"reason", "fetch"}});
  EXPECT_EQ(fetch_errors.Value(), 1);
  std::vector<config::RouteTemplate> routes;
  EXPECT_FALSE(discovery.TakeUpdate(routes));
  std::ofstream(file) << kFastApiDocument;
  // Retries come 1, 2, 4... s apart: well inside 30 s even on a loaded machine.
  for (int i = 0; i < 1500 && !discovery.HasUpdate(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(discovery.TakeUpdate(routes));
  EXPECT_EQ(routes.size(), 20u);
  // Loaded: the next attempt is an hour away, so the document's change is not read now.
  const double errors_before = fetch_errors.Value();
  std::ofstream(file) << "{broken";
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_FALSE(discovery.HasUpdate());
  EXPECT_EQ(errors.Add({{"service", "api"}, {"reason", "invalid_json"}}).Value(), 0);
  EXPECT_EQ(fetch_errors.Value(), errors_before);
}

}  // namespace
}  // namespace fastapi_exporter::access_log

namespace fastapi_exporter::access_log {
namespace {

// The index must not change which route wins: the first in table order that matches, as a
// scan of one-route tables in order says, over a table whose routes shadow each other.
TEST(RouteIndex, FirstMatchInTableOrderAsAScanSays) {
  const std::vector<std::string> words = {"api", "users", "me", "orders", "v1", "7", "x"};
  const std::vector<std::string> params = {"{a}", "{b:int}", "{c:path}"};
  std::mt19937 random(42);
  auto pick = [&](const std::vector<std::string>& from) { return from[random() % from.size()]; };
  std::vector<config::RouteTemplate> routes;
  while (routes.size() < 300) {
    std::string text;
    const int length = 1 + int(random() % 4);
    for (int i = 0; i < length; ++i) {
      const bool param = random() % 3 == 0;
      std::string segment = param ? pick(params) : pick(words);
      if (segment == "{c:path}" && i + 1 < length) segment = "{d}";
      text += "/" + segment;
    }
    if (auto route = config::ParseRouteTemplate(text, nullptr)) routes.push_back(*route);
  }
  RouteNormalizer indexed({}, {}, 1000);
  indexed.SetDiscoveredRoutes(routes);
  for (int n = 0; n < 3000; ++n) {
    std::string target;
    const int length = 1 + int(random() % 5);
    for (int i = 0; i < length; ++i) {
      target += '/';
      target += pick(words);
    }
    std::string expected;
    for (const auto& route : routes) {
      RouteNormalizer one({route}, {}, 1000);
      const auto result = one.Normalize(target);
      if (one.PathLabel(result.path_id) == route.text) {
        expected = route.text;
        break;
      }
    }
    const auto result = indexed.Normalize(target);
    const std::string& label = indexed.PathLabel(result.path_id);
    if (expected.empty()) {
      EXPECT_EQ(std::find_if(routes.begin(), routes.end(),
                             [&](const auto& r) { return r.text == label; }),
                routes.end())
          << target << " matched " << label;
    } else {
      EXPECT_EQ(label, expected) << target;
    }
  }
}

}  // namespace
}  // namespace fastapi_exporter::access_log
