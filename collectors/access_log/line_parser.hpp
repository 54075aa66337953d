// Parsers of one access-log line into a request: one per format (json, uvicorn, gunicorn,
// nginx, regex). A parser is used by one thread; it reuses its buffers, so parsing does not
// allocate once warm.
#pragma once

#include <memory>
#include <string_view>

#include "collectors/access_log/request.hpp"
#include "config/config.hpp"

namespace fastapi_exporter::access_log {

class LineParser {
 public:
  virtual ~LineParser() = default;
  // Fills `out` (views valid until the next call) or says why the line is rejected.
  virtual ParseError Parse(std::string_view line, ParsedRequest& out) = 0;
};

std::unique_ptr<LineParser> MakeLineParser(const config::AccessLogConfig& config);

// Seconds per unit of a configured duration unit.
double SecondsPer(config::DurationUnit unit);

// Whether `text` can be a request method as the exporter counts it: one or more of A-Z (every
// registered method is; RFC 9110 allows other tokens, which no FastAPI route can serve).
// Every format applies it, so a line's fate does not depend on which format carried it.
bool IsMethodToken(std::string_view text);

// "GET /items/5?q=x HTTP/1.1" -> method and target; false if it is not a request line.
bool SplitRequestLine(std::string_view request_line, ParsedRequest& out);

}  // namespace fastapi_exporter::access_log
