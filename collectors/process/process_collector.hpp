// CPU, memory, file descriptors, threads, I/O and faults of each configured service's
// processes, summed over the whole group (master and workers), computed when scraped.
//
// Metric names and units follow client_python's process collector (process_cpu_seconds_total,
// process_resident_memory_bytes, ...) with a `service` label, so the usual queries work.
// The exporter's own CPU, memory, fds and threads are fastapi_exporter_process_* (no labels),
// whatever the services.
#pragma once

#include <prometheus/metric_family.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "collectors/exposition.hpp"
#include "config/config.hpp"

namespace fastapi_exporter::process {

struct ProcessCollectorOptions {
  std::string proc_root = "/proc";
  std::string cgroup_root = "/sys/fs/cgroup";
};

class ProcessCollector final : public Collector {
 public:
  ProcessCollector(const std::vector<config::ServiceConfig>& services,
                   ProcessCollectorOptions options);
  ~ProcessCollector() override;

  // Applies a new list of services. A service whose name and process selector are unchanged
  // keeps its state, so its counters continue; the others start afresh or disappear.
  void Reconfigure(const std::vector<config::ServiceConfig>& services);

  // Safe to call from several scraping threads at once; calls are serialised.
  std::vector<prometheus::MetricFamily> Collect() const;
  // Collect() in the text format: the collector's part of /metrics.
  void RenderText(std::string& out) const override;

  // What the live view samples every few seconds (daemon/live_view.hpp), without the cost of
  // a scrape: per service, process_cpu_seconds_total and process_resident_memory_bytes as a
  // scrape at the same moment would give them (NaN where a scrape would leave them out),
  // reading only each process's stat (and the cgroup's cpu.stat), not its fds, status, io
  // and limits. Its own accounting of exited processes, so that sampling does not disturb
  // the scrape's counters. Problems are left to the scrapes to count and log.
  struct Usage {
    double cpu_seconds;     // NaN: none yet
    double resident_bytes;  // NaN: no process now
  };
  std::map<std::string, Usage> ReadUsage() const;

 private:
  struct State;
  mutable std::mutex mutex_;
  std::unique_ptr<State> state_;
};

}  // namespace fastapi_exporter::process
