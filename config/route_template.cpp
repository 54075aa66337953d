#include "config/route_template.hpp"

#include <simdjson.h>

#include <cctype>

namespace fastapi_exporter::config {
namespace {

bool IsIdentifier(const std::string& name) {
  if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) {
    return false;
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

}  // namespace

bool CheckComparablePath(const std::string& path, std::string* problem) {
  auto fail = [&](const std::string& why) {
    if (problem) *problem = why;
    return false;
  };
  if (path.empty() || path[0] != '/') return fail("must start with '/'");
  if (!simdjson::validate_utf8(path.data(), path.size())) return fail("is not valid UTF-8");
  for (std::size_t i = 0; i < path.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(path[i]);
    if (c == '?' || c == '#') {
      return fail(std::string("holds '") + char(c) +
                  "': requests are compared without their query string and fragment");
    }
    if (c < 0x20 || c == 0x7f) return fail("holds a control character");
    if (c != '%') continue;
    const int high = i + 2 < path.size() ? HexDigitValue(path[i + 1]) : -1;
    const int low = i + 2 < path.size() ? HexDigitValue(path[i + 2]) : -1;
    if (high < 0 || low < 0) return fail("holds a '%' that is not followed by two hex digits");
    const unsigned char decoded = static_cast<unsigned char>(high * 16 + low);
    const std::string encoded = path.substr(i, 3);
    if (IsUnreservedByte(decoded)) {
      return fail("write '" + std::string(1, char(decoded)) + "' rather than '" + encoded +
                  "': requests are compared with unreserved characters decoded");
    }
    if (std::islower(static_cast<unsigned char>(path[i + 1])) ||
        std::islower(static_cast<unsigned char>(path[i + 2]))) {
      std::string upper = encoded;
      for (char& u : upper) u = char(std::toupper(static_cast<unsigned char>(u)));
      return fail("write '" + upper + "' rather than '" + encoded +
                  "': requests are compared with percent-encoding in upper case");
    }
    i += 2;
  }
  return true;
}

std::optional<RouteTemplate> ParseRouteTemplate(const std::string& text, std::string* problem) {
  auto fail = [&](const std::string& why) -> std::optional<RouteTemplate> {
    if (problem) *problem = "route '" + text + "': " + why;
    return std::nullopt;
  };
  if (text.empty() || text[0] != '/') return fail("must start with '/'");
  std::string comparable_problem;
  if (!CheckComparablePath(text, &comparable_problem)) return fail(comparable_problem);
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
    if (opens != closes) {
      return fail(opens ? "'" + segment + "' has no closing '}'"
                        : "'" + segment + "' has a '}' with no opening '{'");
    }
    if (opens || closes) {
      if (segment.size() < 3 || segment.front() != '{' || segment.back() != '}' ||
          segment.find_first_of("{}", 1) != segment.size() - 1) {
        return fail("a parameter must be a whole path segment, as in /users/{user_id}");
      }
      const std::string inner = segment.substr(1, segment.size() - 2);
      const std::size_t colon = inner.find(':');
      const std::string name = inner.substr(0, colon);
      const std::string convertor = colon == std::string::npos ? "str" : inner.substr(colon + 1);
      if (!IsIdentifier(name)) {
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
