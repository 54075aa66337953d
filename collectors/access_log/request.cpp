#include "collectors/access_log/request.hpp"

#include <charconv>
#include <cmath>

namespace fastapi_exporter::access_log {

HttpMethod ParseHttpMethod(std::string_view text) {
  switch (text.size()) {
    case 3:
      if (text == "GET") return HttpMethod::kGet;
      if (text == "PUT") return HttpMethod::kPut;
      break;
    case 4:
      if (text == "POST") return HttpMethod::kPost;
      if (text == "HEAD") return HttpMethod::kHead;
      break;
    case 5:
      if (text == "PATCH") return HttpMethod::kPatch;
      if (text == "TRACE") return HttpMethod::kTrace;
      break;
    case 6:
      if (text == "DELETE") return HttpMethod::kDelete;
      break;
    case 7:
      if (text == "OPTIONS") return HttpMethod::kOptions;
      if (text == "CONNECT") return HttpMethod::kConnect;
      break;
  }
  return HttpMethod::kOther;
}

std::string_view HttpMethodName(HttpMethod method) {
  static constexpr std::string_view kNames[kHttpMethodCount] = {
      "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "OTHER"};
  return kNames[static_cast<std::size_t>(method)];
}

std::string_view ParseErrorName(ParseError error) {
  static constexpr std::string_view kNames[kParseErrorCount] = {
      "none",           "invalid_json",     "missing_field",
      "invalid_status", "invalid_duration", "invalid_request_line",
      "no_match",       "invalid_envelope", "invalid_path",
      "line_too_long"};
  return kNames[static_cast<std::size_t>(error)];
}

int ParseStatusCode(std::string_view text) {
  if (text.size() != 3) return 0;
  int status = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return 0;
    status = status * 10 + (c - '0');
  }
  return status >= 100 && status <= 599 ? status : 0;
}

bool CheckDuration(double value, double unit_seconds, double& seconds) {
  if (!std::isfinite(value) || value < 0) return false;
  seconds = value * unit_seconds;
  return seconds <= 86400.0;
}

bool ParseDuration(std::string_view text, double unit_seconds, double& seconds) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return false;
  return CheckDuration(value, unit_seconds, seconds);
}

}  // namespace fastapi_exporter::access_log
