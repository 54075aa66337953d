// spdlog set up as Prometheus exporters log: to stderr, logfmt or JSON, one line per event.
#pragma once

#include <string>

namespace fastapi_exporter {

// level: debug|info|warn|error; format: logfmt|json. Returns false (and leaves the default
// logger alone) when either is not one of those.
bool SetupLogging(const std::string& level, const std::string& format);

}  // namespace fastapi_exporter
