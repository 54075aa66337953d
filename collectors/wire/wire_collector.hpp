// The wire source: every service with `wire:` has its HTTP/1.x requests read off the network
// (capture -> tcp_reassembly -> http_pairing) into the same fastapi_requests_total and
// fastapi_request_duration_seconds series as access logs would, through the same route
// normalizer, exclusions and max_paths. One thread captures for all services.
//
// A capture that cannot open (no CAP_NET_RAW) is logged once with what is missing and shown
// by fastapi_exporter_wire_capture_up 0; the rest of the exporter runs.
#pragma once

#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "collectors/access_log/request_metrics.hpp"
#include "collectors/history/recent_lines.hpp"
#include "config/config.hpp"

namespace fastapi_exporter::wire {

struct WireOptions {
  std::string proc_root = "/proc";
  std::string cgroup_root = "/sys/fs/cgroup";
  // The live view's Logger Stream: the rings shared with the access-log collector (a
  // service is read from one source only), null for none; each of `recent_lines_capacity`
  // lines.
  std::shared_ptr<history::RecentLinesRegistry> recent_lines;
  std::size_t recent_lines_capacity = 1000;
};

class WireCollector {
 public:
  // Registers the fastapi_exporter_wire_* self-metrics in `registry`; requests go to `store`.
  WireCollector(const config::Config& config, prometheus::Registry& registry,
                std::shared_ptr<access_log::RequestStore> store, WireOptions options);
  ~WireCollector();

  bool empty() const;  // no service has `wire:`
  void Start();
  void Stop();
  // Stops, applies `config` (services whose configuration did not change keep their
  // counters and connections), starts.
  void Reconfigure(const config::Config& config);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fastapi_exporter::wire
