// The live view: the page at / and its JSON API (docs/live-view.md), from a history the
// exporter keeps of its own /metrics.
//
// A sampler thread reads each service's request totals, duration histogram, CPU seconds and
// resident bytes every `interval` straight from the collectors (the request store's
// counters, the process collector's stat-only ReadUsage), not by rendering and parsing
// /metrics, which cost a scrape's reads of /proc every 5 s (docs/BENCHMARKS.md), and adds
// them to the service's history (collectors/history/history.hpp). The Logger Stream reads
// the access-log collector's recent lines. HTTP threads call Handle() concurrently.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "collectors/access_log/request_metrics.hpp"
#include "collectors/history/history.hpp"
#include "collectors/history/recent_lines.hpp"
#include "collectors/process/process_collector.hpp"
#include "config/config.hpp"
#include "daemon/http_server.hpp"

namespace fastapi_exporter {

struct LiveViewOptions {
  history::HistoryOptions history;
  std::string metric_prefix = "fastapi";
  std::string telemetry_path = "/metrics";
};

// Where the sampler reads its totals; either may be null (nothing of that kind).
struct LiveSources {
  std::shared_ptr<const access_log::RequestStore> requests;
  std::shared_ptr<const process::ProcessCollector> processes;
};

class LiveView {
 public:
  LiveView(LiveSources sources, std::shared_ptr<const history::RecentLinesRegistry> recent_lines,
           LiveViewOptions options);
  ~LiveView();
  LiveView(const LiveView&) = delete;
  LiveView& operator=(const LiveView&) = delete;

  // The services shown (in this order), the metric prefix and the telemetry path; the
  // history of a service that stays is kept.
  void Configure(const config::Config& config);
  void Start();
  void Stop();
  // Takes one sample now (tests, and the first sample at start).
  void SampleNow();

  // Answers `/`, `/static/...` and `/api/v1/...`; false: not a live-view path.
  bool Handle(std::string_view path, std::string_view query, WebResponse& response) const;

  // Bytes held by the history and recent lines of every service.
  std::size_t memory_bytes() const;

  // Every service's totals, read from the collectors (what the sampler adds).
  static std::map<std::string, history::Totals> ReadTotals(const LiveSources& sources);
  // The same totals read from exposition text, as a reader of /metrics computes them: the
  // tests' independent check of the direct reading above.
  static std::map<std::string, history::Totals> ReadTotals(std::string_view text,
                                                           const std::string& metric_prefix);

 private:
  std::string ServicesJson() const;
  std::string SeriesJson(std::string_view query) const;
  std::string LogsJson(std::string_view query) const;
  std::vector<std::shared_ptr<const history::ServiceHistory>> Selected(
      const std::string& service) const;

  const LiveSources sources_;
  std::shared_ptr<const history::RecentLinesRegistry> recent_lines_;
  LiveViewOptions options_;
  mutable std::mutex mutex_;  // services_, histories_, options_ prefix and path
  std::vector<std::string> services_;
  std::map<std::string, std::shared_ptr<history::ServiceHistory>> histories_;
  std::thread thread_;
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
};

}  // namespace fastapi_exporter
