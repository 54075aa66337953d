// The configuration, translated into the option types of the access-log stages: the one
// place that knows both, so that parsers, envelopes, the normalizer and the line pipeline do
// not depend on config/config.hpp, and a reload compares what each stage is built from.
#pragma once

#include <memory>

#include "collectors/access_log/envelope.hpp"
#include "collectors/access_log/line_parser.hpp"
#include "collectors/access_log/line_pipeline.hpp"
#include "config/config.hpp"

namespace fastapi_exporter::access_log {

ParserOptions ParserOptionsOf(const config::AccessLogConfig& log);
Envelope EnvelopeOf(config::Envelope envelope);
// `max_line_bytes` is the config's top-level one.
SourceOptions SourceOptionsOf(const config::AccessLogConfig& log, std::size_t max_line_bytes);
// exclude_paths as ExcludedPaths (access_log_collector.hpp) gives them.
ServiceOptions ServiceOptionsOf(const config::ServiceConfig& service);

// MakeLineParser(ParserOptionsOf(log)).
std::unique_ptr<LineParser> MakeLineParser(const config::AccessLogConfig& log);

}  // namespace fastapi_exporter::access_log
