// The exporter's YAML configuration: its shape, its defaults, and its validation.
//
// Loading never throws and never stops at the first problem: every problem found is
// returned with the key's dotted path and its position in the file, so that
// `--check-config` can print them all at once.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fastapi_exporter::config {

// A position in the YAML source, 1-based. Zero means "not from the file" (a default).
struct SourcePosition {
  int line = 0;
  int column = 0;
};

struct ConfigError {
  std::string key;  // dotted path, e.g. "services[0].process.cmdline"
  SourcePosition position;
  std::string message;
};

// "config.yaml:12:7: services[0].process.cmdline: invalid regex: missing )"
std::string FormatError(const std::string& source_name, const ConfigError& error);

// How the processes of one service are found. Every selector that is set contributes:
// a process matching any of them belongs to the service.
struct ProcessSelector {
  std::optional<std::string> pidfile;
  std::optional<int> pid;
  std::optional<std::string> systemd_unit;  // e.g. "fastapi.service"; cgroup v2
  std::optional<std::string> cmdline;       // RE2 regex searched in the full command line
  std::optional<std::string> comm;          // exact /proc/PID/comm
  bool children = true;                     // include every descendant of a matched process

  bool empty() const { return !pidfile && !pid && !systemd_unit && !cmdline && !comm; }
};

struct ServiceConfig {
  std::string name;  // the value of the `service` label
  ProcessSelector process;
  SourcePosition position;
};

struct WebConfig {
  std::string listen_address = ":9869";
  std::string telemetry_path = "/metrics";
};

struct Config {
  WebConfig web;
  std::vector<ServiceConfig> services;
};

struct LoadResult {
  Config config;
  std::vector<ConfigError> errors;
  bool ok() const { return errors.empty(); }
};

// Parses YAML text.
LoadResult ParseConfig(const std::string& yaml_text);

// Reads and parses a file. An unreadable file is reported as one error with an empty key.
LoadResult LoadConfigFile(const std::string& path);

}  // namespace fastapi_exporter::config
