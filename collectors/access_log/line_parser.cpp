#include "collectors/access_log/line_parser.hpp"

#include "collectors/access_log/parsers.hpp"

namespace fastapi_exporter::access_log {

double SecondsPer(config::DurationUnit unit) {
  switch (unit) {
    case config::DurationUnit::kMilliseconds:
      return 1e-3;
    case config::DurationUnit::kMicroseconds:
      return 1e-6;
    default:
      return 1.0;
  }
}

bool IsMethodToken(std::string_view text) {
  for (char c : text) {
    if (c < 'A' || c > 'Z') return false;
  }
  return !text.empty();
}

bool SplitRequestLine(std::string_view request_line, ParsedRequest& out) {
  const std::size_t first = request_line.find(' ');
  const std::size_t last = request_line.rfind(' ');
  if (first == std::string_view::npos || first == 0) return false;
  out.method = request_line.substr(0, first);
  if (!IsMethodToken(out.method)) return false;
  // "GET /path HTTP/1.1"; HTTP/0.9 lines have no version.
  if (last != first && request_line.substr(last + 1).starts_with("HTTP/")) {
    out.target = request_line.substr(first + 1, last - first - 1);
  } else {
    out.target = request_line.substr(first + 1);
  }
  return !out.target.empty() && out.target.find(' ') == std::string_view::npos;
}

std::unique_ptr<LineParser> MakeLineParser(const config::AccessLogConfig& config) {
  switch (config.format) {
    case config::LogFormatKind::kJson:
      return MakeJsonParser(config.json);
    case config::LogFormatKind::kUvicorn:
      return MakeUvicornParser();
    case config::LogFormatKind::kGunicorn:
    case config::LogFormatKind::kNginx:
      return MakeFieldFormatParser(config.field_format);
    case config::LogFormatKind::kRegex:
      return MakeRegexParser(config.regex, SecondsPer(config.regex_duration_unit));
  }
  return nullptr;
}

}  // namespace fastapi_exporter::access_log
