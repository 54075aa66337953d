// The running exporter: collectors, the HTTP server, and what signals do to them (SIGHUP
// reloads both configuration files, SIGTERM and SIGINT stop). main.cpp parses the flags and
// hands over here.
#pragma once

#include <string>

#include "config/config.hpp"

namespace fastapi_exporter {

// What the daemon takes from the command line.
struct DaemonOptions {
  std::string config_file = "/etc/fastapi-exporter/config.yaml";  // re-read on SIGHUP
  std::string web_config_file;  // --web.config.file; empty: plain HTTP, no authentication
  std::string listen_address;   // overrides web.listen_address when set
  std::string telemetry_path;   // overrides web.telemetry_path when set
  std::string proc_root = "/proc";
  std::string cgroup_root = "/sys/fs/cgroup";
  bool oneshot = false;      // read every log once, print the metrics to stdout, return
  double live_interval = 5;  // seconds between the live view's samples
  double live_keep = 3600;   // seconds of history it keeps
};

// "fastapi-exporter version X (revision Y)".
std::string VersionLine();

// Runs until SIGTERM or SIGINT (or, with `oneshot`, until the logs are read); returns the
// process's exit status. `config` is the already valid content of options.config_file.
int RunDaemon(const DaemonOptions& options, config::Config config);

}  // namespace fastapi_exporter
