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
  static constexpr std::string_view kNames[kParseErrorCount] = {"none",
                                                                "invalid_json",
                                                                "missing_field",
                                                                "invalid_status",
                                                                "invalid_request_line",
                                                                "no_match",
                                                                "invalid_envelope",
                                                                "invalid_path",
                                                                "line_too_long",
                                                                "not_access_line",
                                                                "binary_message"};
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

void ReadDurationField(std::string_view text, double unit_seconds, ParsedRequest& out) {
  double sum = 0;
  bool present = false;
  while (!text.empty()) {
    const std::size_t end = text.find_first_of(",:");
    std::string_view item = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item == "-" || item.empty()) continue;
    double value = 0;
    if (!ParseDuration(item, unit_seconds, value)) {
      out.duration_invalid = true;
      return;
    }
    sum += value;
    present = true;
  }
  if (!present) return;
  if (CheckDuration(sum, 1.0, out.duration_seconds)) {
    out.has_duration = true;
  } else {
    out.duration_invalid = true;
  }
}

bool LooksLikeAccessLine(std::string_view line) {
  // An upper-case word of 3+ letters (every method), a space, then '/', 'h' (absolute-form)
  // or '*' (OPTIONS *).
  std::size_t run = 0;
  for (std::size_t i = 0; i + 1 < line.size(); ++i) {
    const char c = line[i];
    if (c >= 'A' && c <= 'Z') {
      ++run;
      continue;
    }
    if (c == ' ' && run >= 3) {
      const char next = line[i + 1];
      const bool word_starts = i == run || !(line[i - run - 1] >= 'a' && line[i - run - 1] <= 'z');
      if (word_starts && (next == '/' || next == 'h' || next == '*')) return true;
    }
    run = 0;
  }
  return false;
}

}  // namespace fastapi_exporter::access_log
