// Turns a request target into the `path` label: the route template, never a raw id.
//
// The query string and fragment are dropped, percent-encoding of unreserved characters is
// decoded (others stay encoded, so "/a%2Fb" is not "/a/b"), the configured routes are tried in
// order, and otherwise segments that look like ids (numbers, UUIDs, long hex or token strings)
// become "{id}". Distinct values other than the configured routes are capped at max_paths;
// past it every new value is "__other__", so a stream of random paths adds no series.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/route_template.hpp"

namespace fastapi_exporter::access_log {

class RouteNormalizer {
 public:
  RouteNormalizer(std::vector<config::RouteTemplate> routes,
                  const std::vector<std::string>& exclude_paths, int max_paths);

  enum class Outcome { kPath, kExcluded, kInvalid };
  struct Result {
    Outcome outcome = Outcome::kInvalid;
    uint32_t path_id = 0;     // stable per label value; indexes PathLabel
    bool overflowed = false;  // a new value past max_paths went to "__other__"
  };

  // Does not allocate once the path's label has been seen before.
  Result Normalize(std::string_view target);

  // Routes read from the service (its OpenAPI document), tried after the configured ones:
  // replaces the previous discovered table. Labels already seen keep their ids (and so their
  // series); discovered routes do not count towards max_paths.
  void SetDiscoveredRoutes(std::vector<config::RouteTemplate> routes);
  std::size_t discovered_routes() const { return discovered_.routes.size(); }

  const std::string& PathLabel(uint32_t path_id) const { return labels_[path_id]; }
  std::size_t distinct_paths() const { return labels_.size(); }

  static constexpr std::string_view kOverflowLabel = "__other__";

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
      return std::hash<std::string_view>{}(text);
    }
  };
  using LabelIds = std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>>;

  bool Clean(std::string_view target);  // into decoded_, false if invalid
  // A table of routes indexed so that a line looks at few of them: each route is filed under
  // its rarest literal segment (position and word), and a line only tries the routes filed
  // under its own words, plus those with no literal segment. Each list is in table order, and
  // the lowest index matching in any list wins: first match in table order, as FastAPI does.
  struct RouteTable {
    std::vector<config::RouteTemplate> routes;
    std::vector<uint32_t> ids;  // label ids
    // by_literal[position][word] -> route indices, ascending
    std::vector<std::unordered_map<std::string, std::vector<uint32_t>, Hash, std::equal_to<>>>
        by_literal;
    std::vector<uint32_t> no_literal;
  };
  void BuildTable(std::vector<config::RouteTemplate> routes, RouteTable& table);
  // Index into table.routes, or -1.
  int MatchRoute(const RouteTable& table) const;
  bool RouteMatches(const config::RouteTemplate& route) const;
  uint32_t RouteId(std::string_view text);
  void CollapseIds();  // decoded_ -> collapsed_
  uint32_t Intern(std::string_view label);
  bool IsExcluded(std::string_view path) const;

  RouteTable configured_;
  RouteTable discovered_;
  LabelIds excluded_;
  LabelIds ids_;
  std::vector<std::string> labels_;
  std::size_t max_other_paths_;
  std::size_t other_paths_ = 0;
  uint32_t overflow_id_;

  std::string decoded_;    // scratch: the path, query dropped, unreserved bytes decoded
  std::string collapsed_;  // scratch: decoded_ with id-like segments as {id}
  std::vector<std::string_view> segments_;  // scratch: segments of decoded_
};

// Whether a path segment looks like an id rather than a fixed word of the API.
bool LooksLikeId(std::string_view segment);

}  // namespace fastapi_exporter::access_log
