// The live view's memory of the past: per service, a bounded ring of samples of the same
// counters /metrics serves, and the rates, averages and quantiles Prometheus would compute
// from them (prom_math.hpp).
//
// A sample holds, at one moment, the service's totals summed over its series: requests, by
// status class, the duration histogram (sum, count, cumulative buckets), CPU seconds and
// resident bytes. Counters are stored as float increases since the previous sample (after
// Prometheus' reset rule: a value that drops counts from zero), with the newest totals as
// doubles, so that a window's counter values are rebuilt exactly where increases are
// integers below 2^24 per sample, and to 7 digits otherwise. Summing series before
// sampling makes rate(sum(x)) of what Prometheus computes as sum(rate(x)): the two differ
// only in a window where one series restarted from zero (a service reconfigured).
//
// Route totals (requests, duration histogram per method and path) are kept every
// `route_every` for the top-routes tables, as float increases, for the first `max_routes`
// routes of a service (max_paths bounds them in /metrics; this bounds the history).
//
// Thread-safe: one sampler adds, HTTP threads query.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "collectors/history/prom_math.hpp"

namespace fastapi_exporter::history {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The totals of one route (method and path) at a moment.
struct RouteTotals {
  double requests = 0;
  double duration_sum = 0;
  double duration_count = 0;
  std::vector<double> buckets;  // cumulative, one per bound of the service, +Inf last
};

// A service's totals at one moment, as read from the exposition.
struct Totals {
  double requests = 0;
  std::array<double, 5> by_class{};  // status 1xx .. 5xx
  double duration_sum = 0;
  double duration_count = 0;
  std::vector<double> bounds;   // the histogram's finite upper bounds (le), ascending
  std::vector<double> buckets;  // cumulative counts: one per bound, then +Inf
  double cpu_seconds = kNaN;    // NaN: no process found
  double resident_bytes = kNaN;
  std::map<std::string, RouteTotals> routes;  // "METHOD path"
};

struct HistoryOptions {
  double interval_seconds = 5;  // between samples
  double keep_seconds = 3600;   // the fine ring's span
  double route_every_seconds = 120;
  std::size_t max_routes = 64;
};

// What the page's panels show at one moment, each over `window` seconds (NaN: no data).
struct PanelValues {
  double t = 0;
  double requests_per_second = kNaN;  // Total Requests; x60: Requests Per Minute
  double errors_4xx_per_second = kNaN;
  double errors_5xx_per_second = kNaN;  // Errors Per Second: 4xx + 5xx
  double average_duration_seconds = kNaN;
  double p60_seconds = kNaN;
  double p95_seconds = kNaN;
  double cpu_percent = kNaN;  // of one core
  double resident_bytes = kNaN;
  std::array<double, 5> by_class_per_second{kNaN, kNaN, kNaN, kNaN, kNaN};
};

struct RouteRate {
  std::string route;  // "METHOD path"
  double requests_per_second = 0;
  double average_duration_seconds = kNaN;
  double p95_seconds = kNaN;
};

class ServiceHistory {
 public:
  // `bounds`: the service's configured histogram bounds, used while no series has any.
  explicit ServiceHistory(HistoryOptions options = {}, std::vector<double> bounds = {});

  // A sample at time t (seconds); samples come in time order.
  void Add(double t, const Totals& totals);

  // Panel values at time `t` over the `window` seconds before it.
  PanelValues ValuesAt(double t, double window) const;
  // Sums panel values of several services as Prometheus' sum(rate(...)) would.
  static PanelValues ValuesAt(const std::vector<const ServiceHistory*>& services, double t,
                              double window);

  // Routes by rate over the last `range` seconds (from the route totals kept then and now;
  // the increase since the newest snapshot at least `range` old, divided by the time since
  // it, or by `range` when no snapshot is that old yet).
  std::vector<RouteRate> TopRoutes(double range) const;
  static std::vector<RouteRate> TopRoutes(const std::vector<const ServiceHistory*>& services,
                                          double range);

  double newest_time() const;
  double oldest_time() const;
  std::size_t samples() const;
  std::size_t capacity() const { return capacity_; }
  // Bytes held: the ring (allocated in full up front) and the route totals.
  std::size_t memory_bytes() const;
  const HistoryOptions& options() const { return options_; }

  // Fields of a sample.
  enum Field : std::size_t {
    kRequests,
    kClass1,  // .. kClass1 + 4: 1xx .. 5xx
    kDurationSum = kClass1 + 5,
    kDurationCount,
    kCpuSeconds,
    kResident,  // a gauge: its value, not an increase
    kBuckets,   // then one per bucket, +Inf last
  };

 private:
  // Counter field values of the samples in [from, to], rebuilt from the increases.
  std::vector<Point> Field(std::size_t field, double from, double to) const;
  // The rates of every field over [t - window, t]: per-second rates; gauges: last value.
  std::vector<double> Rates(double t, double window) const;
  std::size_t Slot(std::size_t age) const;         // age 0: newest
  void AddRoutes(double t, const Totals& totals);  // under mutex_

  HistoryOptions options_;
  std::size_t capacity_;
  mutable std::mutex mutex_;
  std::size_t fields_ = 0;  // kBuckets + bounds + 1; 0 before the first sample
  std::vector<double> bounds_;
  std::vector<double> configured_bounds_;
  std::vector<double> times_;     // capacity_
  std::vector<float> values_;     // capacity_ x fields_ (allocated on the first sample)
  std::vector<double> newest_;    // the newest values rebuilt from the increases, fields_
  std::vector<double> previous_;  // the newest totals as read, fields_
  std::vector<bool> present_;     // CPU and memory: whether the newest sample had them
  std::size_t head_ = 0;          // the next slot written
  std::size_t count_ = 0;
  // Route values, per route: requests, duration sum, duration count, then each bucket.
  std::size_t route_stride() const { return 3 + bounds_.size() + 1; }
  std::vector<std::string> route_names_;  // "METHOD path" by index, at most max_routes
  struct RouteSnapshot {
    double t = 0;
    std::vector<float> increases;  // since the previous snapshot, per route index x stride
  };
  std::vector<RouteSnapshot> route_snapshots_;  // oldest first
  std::vector<double> route_previous_;          // totals at the newest snapshot
  std::vector<double> route_latest_;            // totals at the newest sample
  double route_latest_t_ = 0;
};

}  // namespace fastapi_exporter::history
