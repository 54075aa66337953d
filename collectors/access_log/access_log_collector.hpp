// Access logs -> request metrics: the tailer hands lines to per-file sinks that unwrap the
// container envelope, parse the format, normalize the route and count the request.
// One thread does all of it, so parsers, normalizers and caches need no locks; scrapes read
// the prometheus-cpp metrics concurrently.
#pragma once

#include <prometheus/registry.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "collectors/exposition.hpp"
#include "collectors/history/recent_lines.hpp"
#include "config/config.hpp"

namespace fastapi_exporter::access_log {

struct AccessLogOptions {
  bool use_inotify = true;
  bool save_positions = true;   // off in one-shot mode
  bool from_beginning = false;  // one-shot mode: every file from its start
  std::chrono::milliseconds save_interval{5000};
  std::size_t recent_lines = 1000;  // per service, for the live view's Logger Stream
};

// exclude_paths, and the path of the service's OpenAPI document when the exporter fetches
// it: its own requests are not the service's traffic. Shared with the wire source.
std::vector<std::string> ExcludedPaths(const config::ServiceConfig& config);

class RequestStore;

class AccessLogCollector {
 public:
  // Registers the self-metrics of every configured access log in `registry`.
  AccessLogCollector(const config::Config& config, prometheus::Registry& registry,
                     AccessLogOptions options = {});
  ~AccessLogCollector();

  bool empty() const;  // no service has access logs

  // fastapi_requests_total and fastapi_request_duration_seconds, to register with the
  // exposition (the self-metrics are in the registry given to the constructor).
  std::shared_ptr<Collector> request_metrics() const;
  // The same store, for the other sources of request metrics (the wire).
  std::shared_ptr<RequestStore> request_store() const;

  // The most recent lines of every service that keeps them (recent_lines), by name.
  // The wire source fills the rings of its services in the same registry.
  std::shared_ptr<history::RecentLinesRegistry> recent_lines() const;

  // Follows the logs on a thread of its own, resuming from the positions file.
  void Start();
  // Finishes the lines in hand, saves positions, joins the thread.
  void Stop();

  // Applies a new configuration while running: services and sources whose configuration is
  // unchanged keep their counters; every file keeps its position; lines in hand are
  // finished first.
  void Reconfigure(const config::Config& config);

  // Reads every log from its start to its end once, on the calling thread. Returns what could
  // not be read, one "service api: /var/log/api.log: Permission denied" per source (a glob
  // that matches no file, a file that cannot be opened, a journal that cannot be opened);
  // empty when everything configured was read.
  [[nodiscard]] std::vector<std::string> ReadOnce();

  // Empty while the reading thread works (or is not meant to run); otherwise why not, e.g.
  // "the access-log reader stopped: ..." or "... is stuck: no pass for 130 s". Thread-safe.
  std::string Health() const;
  static constexpr std::chrono::seconds kStuckAfter{120};

  // "service api: 1234 requests" for each service, for the shutdown log line.
  std::string Summary() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fastapi_exporter::access_log
