// FastAPI/Starlette route templates as written in the config's `routes`:
// "/api/users/{user_id}", "/items/{item_id:int}", "/files/{file_path:path}".
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace fastapi_exporter::config {

struct RouteSegment {
  enum class Kind { kLiteral, kParameter, kRest };  // kRest: {name:path}, the rest of the path
  enum class Convertor { kStr, kInt, kFloat, kUuid, kPath };
  Kind kind = Kind::kLiteral;
  std::string literal;  // when kLiteral
  Convertor convertor = Convertor::kStr;
};

struct RouteTemplate {
  std::string text;  // as written; the `path` label value of matching requests
  std::vector<RouteSegment> segments;
};

// nullopt with `problem` set when the template is not one FastAPI would accept (no leading
// '/', unbalanced braces, an unknown convertor, a parameter that is not a whole segment or
// whose name is not an identifier, {x:path} before the last segment), or when a request path
// could never match it (see CheckComparablePath).
std::optional<RouteTemplate> ParseRouteTemplate(const std::string& text, std::string* problem);

// Whether a request path, as the route normalizer compares it, can ever equal `path`: it
// starts with '/', is valid UTF-8, holds no query ('?') or fragment ('#') (they are cut off
// requests first), no control characters, and percent-encodes only what the normalizer keeps
// encoded, in upper case ("%2F", never "%2f" or "%7E" for '~'). Used for the literal parts of
// routes and for exclude_paths. False with `problem` set otherwise.
bool CheckComparablePath(const std::string& path, std::string* problem);

// The percent-encoding rules requests are compared under, shared with the route normalizer.
// The value of a hex digit, or -1.
inline int HexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}
// RFC 3986 unreserved characters: decoded when percent-encoded; every other byte stays
// encoded (so "/a%2Fb" is not "/a/b").
inline bool IsUnreservedByte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

}  // namespace fastapi_exporter::config
