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
  // The duration field held something that is not a duration (negative, not a number, over
  // a day): the request still counts, without a duration observation.
  bool duration_invalid = false;
};

enum class ParseError : uint8_t {
  kNone,
  kInvalidJson,
  kMissingField,
  kInvalidStatus,
  kInvalidRequestLine,
  kNoMatch,  // looks like an access line, but does not have the configured format
  kInvalidEnvelope,
  kInvalidPath,
  kLineTooLong,
  // Plainly not an access line: the server's own log lines written to the same stream
  // (uvicorn's "Started server process", tracebacks, WebSocket lines), another kind of JSON
  // record. Counted, but neither the parse-error alert nor the dashboard treats it as one.
  kNotAccessLine,
  // A journal entry whose MESSAGE is binary (a NUL, or not UTF-8): no line to parse.
  kBinaryMessage,
};
inline constexpr std::size_t kParseErrorCount = 11;

// The `reason` label value: "invalid_json", ...
std::string_view ParseErrorName(ParseError error);

// "200" -> 200; three digits from 100 to 599, anything else -> 0.
int ParseStatusCode(std::string_view text);

// A duration in `unit_seconds` units -> seconds; rejects negative, NaN and absurd values
// (more than a day). Returns false when rejected.
bool ParseDuration(std::string_view text, double unit_seconds, double& seconds);
bool CheckDuration(double value, double unit_seconds, double& seconds);

// A duration field as logs write it, into `out`: "" and "-" are no observation; a number
// in `unit_seconds` units; nginx's list of upstream times ("0.010, 0.020 : 0.005", one per
// upstream tried, '-' for none) is their sum. Anything else sets out.duration_invalid.
void ReadDurationField(std::string_view text, double unit_seconds, ParsedRequest& out);

// Whether a line holds something shaped like a request ("GET /", "POST http://"): used to
// tell a line that is not an access line at all from a broken access line.
bool LooksLikeAccessLine(std::string_view line);

}  // namespace fastapi_exporter::access_log
