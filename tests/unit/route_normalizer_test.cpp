#include "collectors/access_log/route_normalizer.hpp"

#include <gtest/gtest.h>

#include <random>

namespace fastapi_exporter::access_log {
namespace {

std::vector<config::RouteTemplate> Routes(std::initializer_list<const char*> texts) {
  std::vector<config::RouteTemplate> routes;
  for (const char* text : texts) {
    std::string problem;
    auto route = config::ParseRouteTemplate(text, &problem);
    EXPECT_TRUE(route) << problem;
    routes.push_back(*route);
  }
  return routes;
}

class Normalizer {
 public:
  explicit Normalizer(std::vector<config::RouteTemplate> routes = {},
                      std::vector<std::string> exclude = {}, int max_paths = 200)
      : normalizer(std::move(routes), exclude, max_paths) {}
  std::string operator()(std::string_view target) {
    const auto result = normalizer.Normalize(target);
    if (result.outcome == RouteNormalizer::Outcome::kInvalid) return "<invalid>";
    if (result.outcome == RouteNormalizer::Outcome::kExcluded) return "<excluded>";
    return normalizer.PathLabel(result.path_id);
  }
  RouteNormalizer normalizer;
};

TEST(RouteNormalizer, ConfiguredRoutesFirstMatchWins) {
  Normalizer normalize(Routes({"/api/users/me", "/api/users/{user_id}", "/items/{id:int}",
                               "/files/{file_path:path}", "/v/{u:uuid}", "/"}));
  EXPECT_EQ(normalize("/api/users/me"), "/api/users/me");
  EXPECT_EQ(normalize("/api/users/42"), "/api/users/{user_id}");
  EXPECT_EQ(normalize("/api/users/alice?x=1"), "/api/users/{user_id}");
  EXPECT_EQ(normalize("/items/17"), "/items/{id:int}");
  EXPECT_EQ(normalize("/items/abc"), "/items/abc");  // int convertor does not match
  EXPECT_EQ(normalize("/files/a/b/c.txt"), "/files/{file_path:path}");
  EXPECT_EQ(normalize("/files/"), "/files/{file_path:path}");
  EXPECT_EQ(normalize("/v/123e4567-e89b-12d3-a456-426614174000"), "/v/{u:uuid}");
  EXPECT_EQ(normalize("/"), "/");
  EXPECT_EQ(normalize("/?q=1"), "/");
}

TEST(RouteNormalizer, IdsCollapseWithoutRoutes) {
  Normalizer normalize;
  EXPECT_EQ(normalize("/api/users/123"), "/api/users/{id}");
  EXPECT_EQ(normalize("/api/users/123/orders/456"), "/api/users/{id}/orders/{id}");
  EXPECT_EQ(normalize("/o/123e4567-e89b-12d3-a456-426614174000"), "/o/{id}");
  EXPECT_EQ(normalize("/blob/5f2b9c0e8d7a6b5c4d3e2f1a"), "/blob/{id}");
  EXPECT_EQ(normalize("/t/eyJhbGciOiJIUzI1NiIsInR5cCI6"), "/t/{id}");
  EXPECT_EQ(normalize("/api/v2/health"), "/api/v2/health");                // words stay
  EXPECT_EQ(normalize("/api/deadbeefcafebabe"), "/api/deadbeefcafebabe");  // hex word, no digit
  EXPECT_EQ(normalize("http://example.com/api/users/9?x"), "/api/users/{id}");
}

TEST(RouteNormalizer, PercentDecodingOnlyWhereSafe) {
  Normalizer normalize;
  EXPECT_EQ(normalize("/caf%65/%7Euser"), "/cafe/~user");
  EXPECT_EQ(normalize("/a%2fb"), "/a%2Fb");  // an encoded slash is not a separator
  EXPECT_EQ(normalize("/a%2Fb"), "/a%2Fb");
  EXPECT_EQ(normalize("/bad%zz"), "/bad%zz");
  EXPECT_EQ(normalize("/x/%31%32%33"), "/x/{id}");  // decoded digits are an id
}

TEST(RouteNormalizer, InvalidTargets) {
  Normalizer normalize;
  EXPECT_EQ(normalize(""), "<invalid>");
  EXPECT_EQ(normalize("api/users"), "<invalid>");
  EXPECT_EQ(normalize(std::string("/a\0b", 4)), "<invalid>");
  EXPECT_EQ(normalize("/a\x01"), "<invalid>");
  EXPECT_EQ(normalize("/caf\xc3"), "<invalid>");  // truncated UTF-8
  EXPECT_EQ(normalize("/caf\xc3\xa9"), "/caf\xc3\xa9");
}

TEST(RouteNormalizer, ExcludedPaths) {
  Normalizer normalize(Routes({"/static/{p:path}"}), {"/metrics", "/health", "/static/{p:path}"});
  EXPECT_EQ(normalize("/metrics"), "<excluded>");
  EXPECT_EQ(normalize("/health?probe=1"), "<excluded>");
  EXPECT_EQ(normalize("/static/app.js"), "<excluded>");
  EXPECT_EQ(normalize("/healthz"), "/healthz");
}

TEST(RouteNormalizer, AttackerPathsAreCapped) {
  Normalizer normalize(Routes({"/api/users/{id}"}), {}, 50);
  std::mt19937 random(7);
  std::uniform_int_distribution<int> letter('a', 'z');
  int overflowed = 0;
  for (int i = 0; i < 100000; ++i) {
    std::string path = "/";
    for (int j = 0; j < 8; ++j) path += char(letter(random));
    overflowed += normalize.normalizer.Normalize(path).overflowed;
  }
  // The route and the overflow label are always there; 50 others at most.
  EXPECT_EQ(normalize.normalizer.distinct_paths(), 1u + 1u + 50u);
  EXPECT_EQ(overflowed, 100000 - 50);
  EXPECT_EQ(normalize("/api/users/7"), "/api/users/{id}");
  EXPECT_EQ(normalize("/brand/new"), "__other__");
}

TEST(RouteTemplate, InvalidTemplates) {
  std::string problem;
  EXPECT_FALSE(config::ParseRouteTemplate("users/{id}", &problem));
  EXPECT_FALSE(config::ParseRouteTemplate("/users/{id", &problem));
  EXPECT_FALSE(config::ParseRouteTemplate("/users/x{id}", &problem));
  EXPECT_NE(problem.find("whole path segment"), std::string::npos);
  EXPECT_FALSE(config::ParseRouteTemplate("/users/{id:bogus}", &problem));
  EXPECT_NE(problem.find("unknown convertor 'bogus'"), std::string::npos);
  EXPECT_FALSE(config::ParseRouteTemplate("/f/{p:path}/x", &problem));
  EXPECT_FALSE(config::ParseRouteTemplate("/u/{1x}", &problem));
}

}  // namespace
}  // namespace fastapi_exporter::access_log
