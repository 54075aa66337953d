#include "collectors/access_log/line_parser.hpp"

#include "collectors/access_log/parsers.hpp"

namespace fastapi_exporter::access_log {

bool IsMethodToken(std::string_view text) {
  for (char c : text) {
    if (c < 'A' || c > 'Z') return false;
  }
  return !text.empty();
}

bool SplitRequestLine(std::string_view request_line, ParsedRequest& out) {
  // The method is the first word and the protocol the last; everything between is the
  // target, spaces included: servers log the request line as received, and scanners send
  // raw spaces ("GET /index.php?x=a b HTTP/1.1"). HTTP/0.9 lines have no protocol.
  const std::size_t first = request_line.find(' ');
  if (first == std::string_view::npos || first == 0) return false;
  out.method = request_line.substr(0, first);
  if (!IsMethodToken(out.method)) return false;
  std::string_view rest = request_line.substr(first + 1);
  const std::size_t last = rest.rfind(' ');
  if (last != std::string_view::npos && rest.substr(last + 1).starts_with("HTTP/")) {
    rest = rest.substr(0, last);
  }
  out.target = rest;
  return !out.target.empty() && out.target.front() != ' ' && out.target.back() != ' ';
}

std::unique_ptr<LineParser> MakeLineParser(const ParserOptions& options) {
  switch (options.format) {
    case LogFormat::kJson:
      return MakeJsonParser(options.json);
    case LogFormat::kUvicorn:
      return MakeUvicornParser();
    case LogFormat::kGunicorn:
    case LogFormat::kNginx:
      return MakeFieldFormatParser(options.field_format);
    case LogFormat::kRegex:
      return MakeRegexParser(options.regex, options.regex_duration_unit_seconds);
  }
  return nullptr;
}

}  // namespace fastapi_exporter::access_log
