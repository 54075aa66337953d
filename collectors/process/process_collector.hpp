// CPU, memory, file descriptors, threads, I/O and faults of each configured service's
// processes, summed over the whole group (master and workers), computed when scraped.
//
// Metric names and units follow client_python's process collector (process_cpu_seconds_total,
// process_resident_memory_bytes, ...) with a `service` label, so the usual queries work.
// The exporter's own CPU, memory, fds and threads are fastapi_exporter_process_* (no labels),
// whatever the services.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace fastapi_exporter::process {

struct ProcessCollectorOptions {
  std::string proc_root = "/proc";
  std::string cgroup_root = "/sys/fs/cgroup";
};

class ProcessCollector : public prometheus::Collectable {
 public:
  ProcessCollector(const std::vector<config::ServiceConfig>& services,
                   ProcessCollectorOptions options);
  ~ProcessCollector() override;

  // Applies a new list of services. A service whose name and process selector are unchanged
  // keeps its state, so its counters continue; the others start afresh or disappear.
  void Reconfigure(const std::vector<config::ServiceConfig>& services);

  // Safe to call from several scraping threads at once; calls are serialised.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct State;
  mutable std::mutex mutex_;
  std::unique_ptr<State> state_;
};

}  // namespace fastapi_exporter::process
