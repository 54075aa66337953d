// The exporter's YAML configuration: its shape, its defaults, and its validation.
//
// Loading never throws and never stops at the first problem: every problem found is
// returned with the key's dotted path and its position in the file, so that
// `--check-config` can print them all at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/log_format.hpp"
#include "config/route_template.hpp"

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
  bool pid_self = false;                    // `pid: self`: the exporter's own process
  std::optional<std::string> systemd_unit;  // e.g. "fastapi.service"; cgroup v2
  std::optional<std::string> cmdline;       // RE2 regex searched in the full command line
  std::optional<std::string> comm;          // exact /proc/PID/comm
  bool children = true;                     // include every descendant of a matched process

  bool operator==(const ProcessSelector&) const = default;

  bool empty() const { return !pidfile && !pid && !pid_self && !systemd_unit && !cmdline && !comm; }
};

enum class LogFormatKind { kJson, kUvicorn, kGunicorn, kNginx, kRegex };
enum class Envelope { kNone, kDocker, kCri };
enum class StartAt { kEnd, kBeginning };
enum class DurationUnit { kSeconds, kMilliseconds, kMicroseconds };

// Field names of a JSON access log; the defaults are the reference guide's schema:
// {"endpoint": "/api/users/1", "method": "GET", "status_code": 200, "duration_ms": 45, ...}
struct JsonFields {
  std::string method = "method";
  std::string path = "endpoint";
  std::string status = "status_code";
  std::string duration = "duration_ms";  // empty: the log has no duration
  DurationUnit duration_unit = DurationUnit::kMilliseconds;
};

// Entries of the systemd journal (the service's stdout and stderr under systemd), selected as
// journalctl selects them: values of one field are alternatives, different fields must all
// match. Only MESSAGE is read.
struct JournalSelector {
  std::vector<std::string> matches;  // "FIELD=value", unit and syslog_identifier included
  // Journal files or folders of them (journal-remote output, a container's journal); empty:
  // the local system journal.
  std::vector<std::string> paths;
  bool operator==(const JournalSelector&) const = default;
};

struct AccessLogConfig {
  std::string path;  // a glob; empty for a journal source
  std::optional<JournalSelector> journal;
  LogFormatKind format = LogFormatKind::kJson;
  Envelope envelope = Envelope::kNone;
  StartAt start_at = StartAt::kEnd;
  JsonFields json;
  CompiledLogFormat field_format;  // gunicorn and nginx, compiled
  std::string regex;               // regex: RE2 with named groups method, path, status[, duration]
  DurationUnit regex_duration_unit = DurationUnit::kSeconds;
  SourcePosition position;
};

// The `source` label of an access log's self-metrics: its glob, or "journal:" and its matches
// (and its paths, when given).
std::string SourceName(const AccessLogConfig& log);

// Route templates read from the service's own OpenAPI document (FastAPI serves it at
// /openapi.json by default): exact `path` labels with no routes to write.
struct RoutesFrom {
  std::string openapi_url;   // http:// or https://; or
  std::string openapi_file;  // an absolute path, for services that turn the endpoint off
  std::chrono::milliseconds refresh{5 * 60 * 1000};
  SourcePosition position;
};

// Requests read off the network (collectors/wire/): the service's HTTP/1.x traffic on its
// TCP ports, captured with libpcap. Needs CAP_NET_RAW; see docs/wire.md.
struct WireConfig {
  bool auto_ports = true;       // the ports the service's processes listen on
  std::vector<uint16_t> ports;  // when not auto
  std::string interface = "any";
  int snap_length = 2048;  // bytes kept of each packet: link, IP and TCP headers, HTTP heads
  std::chrono::milliseconds request_timeout{5 * 60 * 1000};  // then counted unanswered
  int max_connections = 65536;
  SourcePosition position;
  // A reload keeps the capture when every setting above compares equal (SameCapture in
  // collectors/wire/wire_collector.cpp): a new field is compared there too.
};

struct ServiceConfig {
  std::string name;  // the value of the `service` label
  ProcessSelector process;
  std::vector<AccessLogConfig> access_logs;
  std::vector<RouteTemplate> routes;  // first match wins, before discovered routes
  std::optional<RoutesFrom> routes_from;
  // When set, the wire feeds the service's request metrics and its access_logs are not read
  // (docs/wire.md says why).
  std::optional<WireConfig> wire;
  std::vector<std::string> exclude_paths;  // not counted at all
  int max_paths = 200;                     // distinct `path` values; beyond it, "__other__"
  std::vector<double> buckets{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0};
  // The live view's Logger Stream: off for services whose paths carry secrets; query
  // strings are kept only when asked (they often carry tokens).
  bool recent_lines = true;
  bool recent_lines_query = false;
  SourcePosition position;
};

struct WebConfig {
  std::string listen_address = ":9869";
  std::string telemetry_path = "/metrics";
};

struct Config {
  WebConfig web;
  std::vector<ServiceConfig> services;
  std::string positions_file = "/var/lib/fastapi-exporter/positions.yaml";
  std::string metric_prefix = "fastapi";  // fastapi_requests_total, ...
  int max_line_bytes = 64 * 1024;         // longer lines are counted and skipped
};

// Bounds on what one file may ask for, so that reading it takes bounded time and memory
// whatever its aliases multiply (counted over all services, aliases counted at every use).
inline constexpr std::size_t kMaxServices = 1000;
inline constexpr std::size_t kMaxAccessLogs = 1000;
inline constexpr std::size_t kMaxRoutes = 100000;  // routes, and exclude_paths again
inline constexpr std::size_t kMaxBuckets = 100000;

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
