#include "config/route_template.hpp"

#include <cctype>

namespace fastapi_exporter::config {

std::optional<RouteTemplate> ParseRouteTemplate(const std::string& text, std::string* problem) {
  auto fail = [&](const std::string& why) -> std::optional<RouteTemplate> {
    if (problem) *problem = "route '" + text + "': " + why;
    return std::nullopt;
  };
  if (text.empty() || text[0] != '/') return fail("must start with '/'");
  RouteTemplate route;
  route.text = text;
  std::size_t pos = 1;
  while (pos <= text.size()) {
    std::size_t end = text.find('/', pos);
    if (end == std::string::npos) end = text.size();
    const std::string segment = text.substr(pos, end - pos);
    RouteSegment parsed;
    const bool opens = segment.find('{') != std::string::npos;
    const bool closes = segment.find('}') != std::string::npos;
    if (opens || closes) {
      if (segment.size() < 3 || segment.front() != '{' || segment.back() != '}' ||
          segment.find_first_of("{}", 1) != segment.size() - 1) {
        return fail("a parameter must be a whole path segment, as in /users/{user_id}");
      }
      const std::string inner = segment.substr(1, segment.size() - 2);
      const std::size_t colon = inner.find(':');
      const std::string name = inner.substr(0, colon);
      const std::string convertor = colon == std::string::npos ? "str" : inner.substr(colon + 1);
      if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) {
        return fail("parameter name '" + name + "' is not an identifier");
      }
      parsed.kind = RouteSegment::Kind::kParameter;
      if (convertor == "str") {
        parsed.convertor = RouteSegment::Convertor::kStr;
      } else if (convertor == "int") {
        parsed.convertor = RouteSegment::Convertor::kInt;
      } else if (convertor == "float") {
        parsed.convertor = RouteSegment::Convertor::kFloat;
      } else if (convertor == "uuid") {
        parsed.convertor = RouteSegment::Convertor::kUuid;
      } else if (convertor == "path") {
        parsed.convertor = RouteSegment::Convertor::kPath;
        parsed.kind = RouteSegment::Kind::kRest;
        if (end != text.size()) return fail("{" + inner + "} must be the last segment");
      } else {
        return fail("unknown convertor '" + convertor + "' (str, int, float, uuid, path)");
      }
    } else {
      parsed.literal = segment;
    }
    route.segments.push_back(std::move(parsed));
    pos = end + 1;
  }
  return route;
}

}  // namespace fastapi_exporter::config
