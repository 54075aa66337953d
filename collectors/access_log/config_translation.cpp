#include "collectors/access_log/config_translation.hpp"

#include <string>

#include "collectors/access_log/access_log_collector.hpp"

namespace fastapi_exporter::access_log {
namespace {

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

LogFormat FormatOf(config::LogFormatKind kind) {
  switch (kind) {
    case config::LogFormatKind::kUvicorn:
      return LogFormat::kUvicorn;
    case config::LogFormatKind::kGunicorn:
      return LogFormat::kGunicorn;
    case config::LogFormatKind::kNginx:
      return LogFormat::kNginx;
    case config::LogFormatKind::kRegex:
      return LogFormat::kRegex;
    default:
      return LogFormat::kJson;
  }
}

}  // namespace

ParserOptions ParserOptionsOf(const config::AccessLogConfig& log) {
  ParserOptions options;
  options.format = FormatOf(log.format);
  // Only what the format reads: options of another format do not make a source different.
  if (log.format == config::LogFormatKind::kJson) {
    options.json.method = log.json.method;
    options.json.path = log.json.path;
    options.json.status = log.json.status;
    options.json.duration = log.json.duration;
    options.json.duration_unit_seconds = SecondsPer(log.json.duration_unit);
  }
  if (log.format == config::LogFormatKind::kGunicorn ||
      log.format == config::LogFormatKind::kNginx) {
    options.field_format = log.field_format;
  }
  if (log.format == config::LogFormatKind::kRegex) {
    options.regex = log.regex;
    options.regex_duration_unit_seconds = SecondsPer(log.regex_duration_unit);
  }
  return options;
}

Envelope EnvelopeOf(config::Envelope envelope) {
  switch (envelope) {
    case config::Envelope::kDocker:
      return Envelope::kDocker;
    case config::Envelope::kCri:
      return Envelope::kCri;
    default:
      return Envelope::kNone;
  }
}

SourceOptions SourceOptionsOf(const config::AccessLogConfig& log, std::size_t max_line_bytes) {
  SourceOptions options;
  options.name = config::SourceName(log);
  options.parser = ParserOptionsOf(log);
  options.envelope = EnvelopeOf(log.envelope);
  options.max_line_bytes = max_line_bytes;
  return options;
}

ServiceOptions ServiceOptionsOf(const config::ServiceConfig& service) {
  ServiceOptions options;
  options.name = service.name;
  options.routes = service.routes;
  options.exclude_paths = ExcludedPaths(service);
  options.max_paths = service.max_paths;
  options.buckets = service.buckets;
  if (service.routes_from) {
    options.routes_from = service.routes_from->openapi_url + "\n" +
                          service.routes_from->openapi_file + "\n" +
                          std::to_string(service.routes_from->refresh.count());
  }
  return options;
}

std::unique_ptr<LineParser> MakeLineParser(const config::AccessLogConfig& log) {
  return MakeLineParser(ParserOptionsOf(log));
}

}  // namespace fastapi_exporter::access_log
