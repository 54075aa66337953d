// The format parsers behind MakeLineParser; internal to collectors/access_log.
#pragma once

#include <memory>
#include <string>

#include "collectors/access_log/line_parser.hpp"

namespace fastapi_exporter::access_log {

std::unique_ptr<LineParser> MakeJsonParser(const JsonFields& fields);
std::unique_ptr<LineParser> MakeUvicornParser();
std::unique_ptr<LineParser> MakeFieldFormatParser(const config::CompiledLogFormat& format);
std::unique_ptr<LineParser> MakeRegexParser(const std::string& pattern, double duration_unit);

}  // namespace fastapi_exporter::access_log
