#include "collectors/access_log/route_normalizer.hpp"

#include <simdjson.h>

#include <algorithm>
#include <map>

namespace fastapi_exporter::access_log {
namespace {

using config::RouteSegment;

using config::HexDigitValue;
using config::IsUnreservedByte;

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}
bool IsHex(char c) {
  return HexDigitValue(c) >= 0;
}
bool IsAlpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool AllOf(std::string_view text, bool (*predicate)(char)) {
  for (char c : text) {
    if (!predicate(c)) return false;
  }
  return !text.empty();
}

bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !IsHex(s[i])) return false;
  }
  return true;
}

bool IsFloat(std::string_view s) {
  bool digits = false, dot = false;
  for (char c : s) {
    if (IsDigit(c)) {
      digits = true;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      return false;
    }
  }
  return digits;
}

bool SegmentMatches(const RouteSegment& segment, std::string_view value) {
  switch (segment.kind) {
    case RouteSegment::Kind::kLiteral:
      return value == segment.literal;
    case RouteSegment::Kind::kRest:
      return true;
    case RouteSegment::Kind::kParameter:
      break;
  }
  switch (segment.convertor) {
    case RouteSegment::Convertor::kInt:
      return AllOf(value, IsDigit);
    case RouteSegment::Convertor::kFloat:
      return IsFloat(value);
    case RouteSegment::Convertor::kUuid:
      return IsUuid(value);
    default:
      return !value.empty();
  }
}

// "/health/" and "/health" are one path to exclude: FastAPI redirects one to the other, and
// users write either.
std::string_view WithoutTrailingSlash(std::string_view path) {
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  return path;
}

}  // namespace

bool LooksLikeId(std::string_view s) {
  if (s.empty()) return false;
  if (AllOf(s, IsDigit) || IsUuid(s)) return true;
  bool has_digit = false, has_alpha = false, token = true;
  for (char c : s) {
    has_digit |= IsDigit(c);
    has_alpha |= IsAlpha(c);
    token &= IsDigit(c) || IsAlpha(c) || c == '-' || c == '_' || c == '+' || c == '=' || c == '.' ||
             c == '~';
  }
  // Hashes, object ids: 16+ hex digits with at least one digit ("deadbeef..." words aside).
  if (s.size() >= 16 && has_digit && AllOf(s, IsHex)) return true;
  // Tokens and base64 ids: long, mixing letters and digits.
  return token && s.size() >= 20 && has_digit && has_alpha;
}

RouteNormalizer::RouteNormalizer(std::vector<config::RouteTemplate> routes,
                                 const std::vector<std::string>& exclude_paths, int max_paths)
    : max_other_paths_(std::size_t(max_paths)) {
  BuildTable(std::move(routes), configured_);
  overflow_id_ = uint32_t(labels_.size());
  labels_.emplace_back(kOverflowLabel);
  ids_.try_emplace(std::string(kOverflowLabel), overflow_id_);
  for (const auto& path : exclude_paths) {
    excluded_.try_emplace(std::string(WithoutTrailingSlash(path)), 0);
  }
  decoded_.reserve(256);
  collapsed_.reserve(256);
  segments_.reserve(32);
}

bool RouteNormalizer::Clean(std::string_view target) {
  // absolute-form (proxies): "http://host/path" -> "/path"
  if (target.starts_with("http://") || target.starts_with("https://")) {
    const std::size_t slash = target.find('/', target.find("//") + 2);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  target = target.substr(0, target.find_first_of("?#"));
  if (target.empty() || target[0] != '/') return false;
  decoded_.clear();
  for (std::size_t i = 0; i < target.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(target[i]);
    if (c < 0x20 || c == 0x7f) return false;
    if (c == '%' && i + 2 < target.size() && HexDigitValue(target[i + 1]) >= 0 &&
        HexDigitValue(target[i + 2]) >= 0) {
      const unsigned char decoded = static_cast<unsigned char>(HexDigitValue(target[i + 1]) * 16 +
                                                               HexDigitValue(target[i + 2]));
      if (IsUnreservedByte(decoded)) {
        decoded_.push_back(char(decoded));
      } else {
        // Keep it encoded, in one spelling: "%2f" and "%2F" are one label.
        constexpr char kHex[] = "0123456789ABCDEF";
        decoded_.push_back('%');
        decoded_.push_back(kHex[decoded >> 4]);
        decoded_.push_back(kHex[decoded & 0xf]);
      }
      i += 2;
      continue;
    }
    decoded_.push_back(char(c));
  }
  // Label values must be valid UTF-8.
  if (!simdjson::validate_utf8(decoded_.data(), decoded_.size())) return false;
  segments_.clear();
  std::string_view rest = std::string_view(decoded_).substr(1);
  for (;;) {
    const std::size_t slash = rest.find('/');
    segments_.push_back(rest.substr(0, slash));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return true;
}

uint32_t RouteNormalizer::RouteId(std::string_view text) {
  if (const auto it = ids_.find(text); it != ids_.end()) return it->second;
  const uint32_t id = uint32_t(labels_.size());
  ids_.emplace(std::string(text), id);
  labels_.emplace_back(text);
  return id;
}

void RouteNormalizer::SetDiscoveredRoutes(std::vector<config::RouteTemplate> routes) {
  BuildTable(std::move(routes), discovered_);
}

void RouteNormalizer::BuildTable(std::vector<config::RouteTemplate> routes, RouteTable& table) {
  table.routes = std::move(routes);
  table.ids.clear();
  table.by_literal.clear();
  table.no_literal.clear();
  // How many routes have each literal at each position.
  std::map<std::pair<std::size_t, std::string_view>, int> frequency;
  for (const auto& route : table.routes) {
    for (std::size_t i = 0; i < route.segments.size(); ++i) {
      if (route.segments[i].kind == RouteSegment::Kind::kLiteral) {
        ++frequency[{i, route.segments[i].literal}];
      }
    }
  }
  for (std::size_t r = 0; r < table.routes.size(); ++r) {
    const auto& route = table.routes[r];
    table.ids.push_back(RouteId(route.text));
    int rare = -1, best = 0;
    for (std::size_t i = 0; i < route.segments.size(); ++i) {
      if (route.segments[i].kind != RouteSegment::Kind::kLiteral) continue;
      const int count = frequency[{i, route.segments[i].literal}];
      if (rare < 0 || count < best) rare = int(i), best = count;
    }
    if (rare < 0) {
      table.no_literal.push_back(uint32_t(r));
      continue;
    }
    if (table.by_literal.size() <= std::size_t(rare))
      table.by_literal.resize(std::size_t(rare) + 1);
    table.by_literal[std::size_t(rare)][route.segments[std::size_t(rare)].literal].push_back(
        uint32_t(r));
  }
}

bool RouteNormalizer::RouteMatches(const config::RouteTemplate& route) const {
  const auto& segments = route.segments;
  const bool rest = !segments.empty() && segments.back().kind == RouteSegment::Kind::kRest;
  if (rest ? segments_.size() < segments.size() : segments_.size() != segments.size()) {
    return false;
  }
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (segments[i].kind == RouteSegment::Kind::kRest) break;
    if (!SegmentMatches(segments[i], segments_[i])) return false;
  }
  return true;
}

int RouteNormalizer::MatchRoute(const RouteTable& table) const {
  // The lowest matching index of each candidate list; lists are ascending, so each stops at
  // its first match or at the best found so far.
  int best = -1;
  auto scan = [&](const std::vector<uint32_t>& candidates) {
    for (const uint32_t r : candidates) {
      if (best >= 0 && r >= uint32_t(best)) return;
      if (RouteMatches(table.routes[r])) {
        best = int(r);
        return;
      }
    }
  };
  const std::size_t positions = std::min(table.by_literal.size(), segments_.size());
  for (std::size_t p = 0; p < positions; ++p) {
    const auto& words = table.by_literal[p];
    if (words.empty()) continue;
    if (const auto it = words.find(segments_[p]); it != words.end()) scan(it->second);
  }
  scan(table.no_literal);
  return best;
}

void RouteNormalizer::CollapseIds() {
  collapsed_.clear();
  for (std::string_view segment : segments_) {
    collapsed_.push_back('/');
    if (LooksLikeId(segment)) {
      collapsed_.append("{id}");
    } else {
      collapsed_.append(segment);
    }
  }
}

bool RouteNormalizer::IsExcluded(std::string_view path) const {
  return !excluded_.empty() && excluded_.contains(WithoutTrailingSlash(path));
}

uint32_t RouteNormalizer::Intern(std::string_view label) {
  if (const auto it = ids_.find(label); it != ids_.end()) return it->second;
  const uint32_t id = uint32_t(labels_.size());
  ids_.emplace(std::string(label), id);
  labels_.emplace_back(label);
  ++other_paths_;
  return id;
}

RouteNormalizer::Result RouteNormalizer::Normalize(std::string_view target) {
  Result result;
  if (!Clean(target)) return result;
  if (IsExcluded(decoded_)) {
    result.outcome = Outcome::kExcluded;
    return result;
  }
  result.outcome = Outcome::kPath;
  for (const RouteTable* table : {&configured_, &discovered_}) {
    if (const int route = MatchRoute(*table); route >= 0) {
      result.path_id = table->ids[std::size_t(route)];
      if (IsExcluded(table->routes[std::size_t(route)].text)) result.outcome = Outcome::kExcluded;
      return result;
    }
  }
  CollapseIds();
  if (IsExcluded(collapsed_)) {
    result.outcome = Outcome::kExcluded;
    return result;
  }
  if (const auto it = ids_.find(std::string_view(collapsed_)); it != ids_.end()) {
    result.path_id = it->second;
  } else if (other_paths_ >= max_other_paths_) {
    result.path_id = overflow_id_;
    result.overflowed = true;
  } else {
    result.path_id = Intern(collapsed_);
  }
  return result;
}

}  // namespace fastapi_exporter::access_log
