// Parsers of one access-log line into a request: one per format (json, uvicorn, gunicorn,
// nginx, regex). A parser is used by one thread; it reuses its buffers, so parsing does not
// allocate once warm.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "collectors/access_log/request.hpp"
#include "config/log_format.hpp"

namespace fastapi_exporter::access_log {

class LineParser {
 public:
  virtual ~LineParser() = default;
  // Fills `out` (views valid until the next call) or says why the line is rejected.
  virtual ParseError Parse(std::string_view line, ParsedRequest& out) = 0;
};

// What a parser is made from (the config's access_logs entry, translated by
// access_log/config_translation.hpp). Equal options make parsers that parse alike.
enum class LogFormat { kJson, kUvicorn, kGunicorn, kNginx, kRegex };

// Field names of a JSON access log; the defaults are the reference guide's schema:
// {"endpoint": "/api/users/1", "method": "GET", "status_code": 200, "duration_ms": 45, ...}
struct JsonFields {
  std::string method = "method";
  std::string path = "endpoint";
  std::string status = "status_code";
  std::string duration = "duration_ms";  // empty: the log has no duration
  double duration_unit_seconds = 1e-3;   // seconds per unit of the duration field
  bool operator==(const JsonFields&) const = default;
};

struct ParserOptions {
  LogFormat format = LogFormat::kJson;
  JsonFields json;                         // json
  config::CompiledLogFormat field_format;  // gunicorn and nginx, compiled
  std::string regex;  // regex: RE2 with named groups method, path, status[, duration]
  double regex_duration_unit_seconds = 1;  // seconds per unit of the regex's duration group
  bool operator==(const ParserOptions&) const = default;
};

std::unique_ptr<LineParser> MakeLineParser(const ParserOptions& options);

// Whether `text` can be a request method as the exporter counts it: one or more of A-Z (every
// registered method is; RFC 9110 allows other tokens, which no FastAPI route can serve).
// Every format applies it, so a line's fate does not depend on which format carried it.
bool IsMethodToken(std::string_view text);

// "GET /items/5?q=x HTTP/1.1" -> method and target; false if it is not a request line.
bool SplitRequestLine(std::string_view request_line, ParsedRequest& out);

}  // namespace fastapi_exporter::access_log
