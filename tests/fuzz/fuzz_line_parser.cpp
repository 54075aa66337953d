// Every format's line parser, on lines in sequence. Checks, for each line:
// - differential: a parser that has parsed every earlier line answers exactly what a fresh
//   parser answers (a line's result is a function of that line alone);
// - an accepted request is one the metrics can use: an A-Z method, a target, a status from
//   100 to 599, a finite non-negative duration.
// The first byte picks the format.
#include <cmath>
#include <memory>

#include "collectors/access_log/config_translation.hpp"
#include "tests/fuzz/fuzz_common.hpp"

namespace fastapi_exporter::fuzz {
namespace {

const char* const kFormats[] = {
    "{path: /l, format: json}",
    "{path: /l, format: json, json: {method: m, path: p, status: s, duration: d, duration_unit: "
    "s}}",
    "{path: /l, format: uvicorn}",
    "{path: /l, format: gunicorn}",
    "{path: /l, format: gunicorn, gunicorn: {log_format: '%(h)s %(t)s \"%(r)s\" %(s)s %(D)s'}}",
    "{path: /l, format: nginx}",
    "{path: /l, format: nginx, nginx: {log_format: '$remote_addr [$time_local] \"$request\" "
    "$status $request_time $upstream_response_time'}}",
    "{path: /l, format: nginx, nginx: {log_format: '$request_method $uri $status "
    "$upstream_response_time'}}",
    "{path: /l, format: regex, regex: {pattern: '^(?P<method>\\S+) (?P<path>\\S+) "
    "(?P<status>\\d+)(?: (?P<duration>\\S+))?', duration_unit: ms}}",
};
constexpr std::size_t kFormatCount = sizeof kFormats / sizeof kFormats[0];

struct Result {
  access_log::ParseError error = access_log::ParseError::kNone;
  std::string method, target;
  int status = 0;
  bool has_duration = false;
  double seconds = 0;
  bool operator==(const Result&) const = default;
};

Result Parse(access_log::LineParser& parser, std::string_view line) {
  access_log::ParsedRequest request;
  Result result;
  result.error = parser.Parse(line, request);
  if (result.error == access_log::ParseError::kNone) {
    result.method = request.method;
    result.target = request.target;
    result.status = request.status;
    result.has_duration = request.has_duration;
    result.seconds = request.has_duration ? request.duration_seconds : 0;
  }
  return result;
}

}  // namespace
}  // namespace fastapi_exporter::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace fastapi_exporter;
  if (size < 1) return 0;
  static std::vector<config::AccessLogConfig> configs = [] {
    std::vector<config::AccessLogConfig> all;
    for (const char* format : fuzz::kFormats) {
      all.push_back(fuzz::ServiceOf(format).access_logs.at(0));
    }
    return all;
  }();
  const config::AccessLogConfig& log = configs[data[0] % fuzz::kFormatCount];
  auto warm = access_log::MakeLineParser(log);
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  for (std::string_view line : fuzz::SplitLines(input)) {
    const fuzz::Result seen = fuzz::Parse(*warm, line);
    auto fresh_parser = access_log::MakeLineParser(log);
    const fuzz::Result fresh = fuzz::Parse(*fresh_parser, line);
    if (!(seen == fresh)) {
      fuzz::Fail("after earlier lines: " + std::string(access_log::ParseErrorName(seen.error)) +
                 ", fresh: " + std::string(access_log::ParseErrorName(fresh.error)));
    }
    if (seen.error != access_log::ParseError::kNone) continue;
    if (!access_log::IsMethodToken(seen.method)) fuzz::Fail("accepted method " + seen.method);
    if (seen.target.empty()) fuzz::Fail("accepted an empty target");
    if (seen.status < 100 || seen.status > 599) fuzz::Fail("accepted a status out of range");
    if (seen.has_duration && (!std::isfinite(seen.seconds) || seen.seconds < 0)) {
      fuzz::Fail("accepted a duration that is not finite and non-negative");
    }
  }
  return 0;
}
