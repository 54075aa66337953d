// Helpers shared by the fuzz targets: building parsers from config text as users write it,
// and splitting an input into lines.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace fastapi_exporter::fuzz {

// A finding: print what differs and abort, so libFuzzer saves the input.
[[noreturn]] inline void Fail(const std::string& what) {
  std::fprintf(stderr, "fuzz check failed: %s\n", what.c_str());
  std::abort();
}

// The access log of the one service of a config made of `log_yaml` ("{path: /l, format:
// nginx}"), which must be valid.
inline config::ServiceConfig ServiceOf(const std::string& log_yaml,
                                       const std::string& service_extra = "") {
  const auto loaded = config::ParseConfig("services:\n  - name: s\n" + service_extra +
                                          "    access_logs:\n      - " + log_yaml + "\n");
  if (!loaded.ok()) Fail("seed config invalid: " + loaded.errors[0].message);
  return loaded.config.services.at(0);
}

inline std::vector<std::string_view> SplitLines(std::string_view data) {
  std::vector<std::string_view> lines;
  while (!data.empty()) {
    const std::size_t end = data.find('\n');
    lines.push_back(data.substr(0, end));
    if (end == std::string_view::npos) break;
    data.remove_prefix(end + 1);
  }
  return lines;
}

}  // namespace fastapi_exporter::fuzz
