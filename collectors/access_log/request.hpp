// What a parsed access-log line yields, and why a line may be rejected.
#pragma once

#include <cstdint>
#include <string_view>

namespace fastapi_exporter::access_log {

enum class HttpMethod : uint8_t {
  kGet,
  kHead,
  kPost,
  kPut,
  kDelete,
  kConnect,
  kOptions,
  kTrace,
  kPatch,
  kOther,  // anything else: a bounded label whatever the log holds
};
inline constexpr std::size_t kHttpMethodCount = 10;

HttpMethod ParseHttpMethod(std::string_view text);
std::string_view HttpMethodName(HttpMethod method);

// Views into the line (or into the parser's own buffer), valid until the next parse.
struct ParsedRequest {
  std::string_view method;
  std::string_view target;  // path, possibly with query string
  int status = 0;
  double duration_seconds = 0;
  bool has_duration = false;
};

enum class ParseError : uint8_t {
  kNone,
  kInvalidJson,
  kMissingField,
  kInvalidStatus,
  kInvalidDuration,
  kInvalidRequestLine,
  kNoMatch,  // the line does not have the configured format
  kInvalidEnvelope,
  kInvalidPath,
  kLineTooLong,
};
inline constexpr std::size_t kParseErrorCount = 10;

// The `reason` label value: "invalid_json", ...
std::string_view ParseErrorName(ParseError error);

// "200" -> 200; three digits from 100 to 599, anything else -> 0.
int ParseStatusCode(std::string_view text);

// A duration in `unit_seconds` units -> seconds; rejects negative, NaN and absurd values
// (more than a day). Returns false when rejected.
bool ParseDuration(std::string_view text, double unit_seconds, double& seconds);
bool CheckDuration(double value, double unit_seconds, double& seconds);

}  // namespace fastapi_exporter::access_log
