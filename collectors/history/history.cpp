#include "collectors/history/history.hpp"

#include <algorithm>

namespace fastapi_exporter::history {
namespace {

// Prometheus' default lookback: an instant query sees a gauge's last sample up to 5 min old.
constexpr double kLookbackSeconds = 300;

}  // namespace

ServiceHistory::ServiceHistory(HistoryOptions options, std::vector<double> bounds)
    : options_(options),
      capacity_(std::size_t(std::ceil(options.keep_seconds / options.interval_seconds)) + 1),
      configured_bounds_(std::move(bounds)),
      times_(capacity_, 0) {}

std::size_t ServiceHistory::Slot(std::size_t age) const {
  return (head_ + capacity_ - 1 - age) % capacity_;
}

void ServiceHistory::Add(double t, const Totals& totals) {
  // Before any request with a duration there is no histogram: zeros on the configured bounds.
  const std::vector<double>& bounds = totals.buckets.empty() ? configured_bounds_ : totals.bounds;
  std::vector<double> now(kBuckets + bounds.size() + 1, 0);
  now[kRequests] = totals.requests;
  for (std::size_t c = 0; c < 5; ++c) now[kClass1 + c] = totals.by_class[c];
  now[kDurationSum] = totals.duration_sum;
  now[kDurationCount] = totals.duration_count;
  now[kCpuSeconds] = totals.cpu_seconds;
  now[kResident] = totals.resident_bytes;
  for (std::size_t b = 0; b < totals.buckets.size() && kBuckets + b < now.size(); ++b) {
    now[kBuckets + b] = totals.buckets[b];
  }
  std::lock_guard lock(mutex_);
  if (fields_ != now.size() || bounds_ != bounds) {
    // New histogram bounds (the service was reconfigured): its past does not compare.
    fields_ = now.size();
    bounds_ = bounds;
    values_.assign(capacity_ * fields_, 0.0f);
    newest_.clear();
    previous_.clear();
    head_ = 0;
    count_ = 0;
    route_snapshots_.clear();
  }
  float* slot = &values_[head_ * fields_];
  for (std::size_t f = 0; f < fields_; ++f) {
    if (f == kResident) {
      slot[f] = float(now[f]);
      continue;
    }
    if (previous_.empty() || std::isnan(previous_[f]) || std::isnan(now[f])) {
      // No previous value to count from: the chain of increases starts here.
      slot[f] = std::numeric_limits<float>::quiet_NaN();
    } else {
      // Prometheus' reset rule: a drop means the counter started again from zero.
      slot[f] = float(now[f] >= previous_[f] ? now[f] - previous_[f] : now[f]);
    }
  }
  if (newest_.size() != fields_) newest_.assign(fields_, kNaN);
  for (std::size_t f = 0; f < fields_; ++f) {
    // The sum of the increases as stored, so that taking them away again in Field() comes
    // back to the chain's first value exactly (sums of floats are exact in a double over
    // 29 binary orders of magnitude): a counter that started at 0 is rebuilt as 0, not as
    // -1e-17, which would change how rate() extrapolates to the window's start.
    if (f == kResident || std::isnan(slot[f])) {
      newest_[f] = now[f];
    } else {
      newest_[f] += double(slot[f]);
    }
  }
  times_[head_] = t;
  previous_ = std::move(now);
  head_ = (head_ + 1) % capacity_;
  count_ = std::min(count_ + 1, capacity_);

  route_latest_.t = t;
  route_latest_.routes = totals.routes;
  if (route_latest_.routes.size() > options_.max_routes) {
    // The busiest ones are kept.
    std::vector<std::pair<double, std::string>> by_requests;
    for (const auto& [route, values] : route_latest_.routes) {
      by_requests.emplace_back(values.requests, route);
    }
    std::nth_element(by_requests.begin(), by_requests.begin() + long(options_.max_routes),
                     by_requests.end(), std::greater<>());
    for (std::size_t i = options_.max_routes; i < by_requests.size(); ++i) {
      route_latest_.routes.erase(by_requests[i].second);
    }
  }
  if (route_snapshots_.empty() ||
      t - route_snapshots_.back().t >= options_.route_every_seconds - 1e-9) {
    route_snapshots_.push_back(route_latest_);
    while (!route_snapshots_.empty() &&
           route_snapshots_.front().t < t - options_.keep_seconds - options_.route_every_seconds) {
      route_snapshots_.erase(route_snapshots_.begin());
    }
  }
}

std::vector<Point> ServiceHistory::Field(std::size_t field, double from, double to) const {
  std::vector<Point> points;
  if (count_ == 0 || field >= fields_) return points;
  if (field == kResident) {
    for (std::size_t age = 0; age < count_; ++age) {
      const std::size_t slot = Slot(age);
      const double t = times_[slot];
      if (t < from) break;
      const float v = values_[slot * fields_ + field];
      if (t <= to && !std::isnan(v)) points.push_back({t, double(v)});
    }
  } else {
    // Back from the newest totals, taking away each sample's increase.
    double value = newest_[field];
    for (std::size_t age = 0; age < count_ && !std::isnan(value); ++age) {
      const std::size_t slot = Slot(age);
      const double t = times_[slot];
      if (t < from) break;
      if (t <= to) points.push_back({t, value});
      const float increase = values_[slot * fields_ + field];
      if (std::isnan(increase)) break;  // what came before is not known
      value -= double(increase);
      // What the sums did not keep exactly: a value within rounding of zero is zero.
      if (std::fabs(value) <= 1e-12 * std::fabs(newest_[field])) value = 0;
    }
  }
  std::reverse(points.begin(), points.end());
  return points;
}

std::vector<double> ServiceHistory::Rates(double t, double window) const {
  std::vector<double> rates(fields_, kNaN);
  for (std::size_t f = 0; f < fields_; ++f) {
    if (f == kResident) {
      const std::vector<Point> points = Field(f, t - kLookbackSeconds, t);
      if (!points.empty()) rates[f] = points.back().v;
    } else {
      rates[f] = ExtrapolatedRate(Field(f, t - window, t), t - window, t, true);
    }
  }
  return rates;
}

namespace {

double SumKnown(double a, double b) {
  if (std::isnan(a)) return b;
  if (std::isnan(b)) return a;
  return a + b;
}

}  // namespace

PanelValues ServiceHistory::ValuesAt(const std::vector<const ServiceHistory*>& services, double t,
                                     double window) {
  PanelValues values;
  values.t = t;
  double sum_rate = kNaN, count_rate = kNaN;
  std::vector<Bucket> buckets;
  for (const ServiceHistory* service : services) {
    std::lock_guard lock(service->mutex_);
    if (service->fields_ == 0) continue;
    const std::vector<double> rates = service->Rates(t, window);
    values.requests_per_second = SumKnown(values.requests_per_second, rates[kRequests]);
    for (std::size_t c = 0; c < 5; ++c) {
      values.by_class_per_second[c] = SumKnown(values.by_class_per_second[c], rates[kClass1 + c]);
    }
    sum_rate = SumKnown(sum_rate, rates[kDurationSum]);
    count_rate = SumKnown(count_rate, rates[kDurationCount]);
    values.cpu_percent = SumKnown(values.cpu_percent, rates[kCpuSeconds] * 100);
    values.resident_bytes = SumKnown(values.resident_bytes, rates[kResident]);
    // sum by (le): buckets of equal bounds add up in HistogramQuantile.
    for (std::size_t b = 0; b + kBuckets < service->fields_; ++b) {
      if (std::isnan(rates[kBuckets + b])) continue;
      const double bound = b < service->bounds_.size() ? service->bounds_[b]
                                                       : std::numeric_limits<double>::infinity();
      buckets.push_back({bound, rates[kBuckets + b]});
    }
  }
  values.errors_4xx_per_second = values.by_class_per_second[3];
  values.errors_5xx_per_second = values.by_class_per_second[4];
  values.average_duration_seconds = sum_rate / count_rate;  // 0/0: NaN, as in Prometheus
  values.p60_seconds = HistogramQuantile(0.60, buckets);
  values.p95_seconds = HistogramQuantile(0.95, buckets);
  return values;
}

PanelValues ServiceHistory::ValuesAt(double t, double window) const {
  return ValuesAt(std::vector<const ServiceHistory*>{this}, t, window);
}

std::vector<RouteRate> ServiceHistory::TopRoutes(const std::vector<const ServiceHistory*>& services,
                                                 double range) {
  struct Sum {
    double requests = 0, duration_sum = 0, duration_count = 0;
    std::vector<Bucket> buckets;
  };
  std::map<std::string, Sum> routes;
  for (const ServiceHistory* service : services) {
    std::lock_guard lock(service->mutex_);
    if (service->route_snapshots_.empty()) continue;
    const RouteSnapshot& now = service->route_latest_;
    // The newest snapshot at least `range` old, else the oldest there is.
    const RouteSnapshot* then = &service->route_snapshots_.front();
    for (const RouteSnapshot& snapshot : service->route_snapshots_) {
      if (snapshot.t <= now.t - range) then = &snapshot;
    }
    const double elapsed = now.t - then->t;
    if (elapsed <= 0) continue;
    for (const auto& [route, values] : now.routes) {
      const auto before = then->routes.find(route);
      const RouteTotals empty;
      const RouteTotals& old = before == then->routes.end() ? empty : before->second;
      // Reset rule as everywhere: a drop counts from zero.
      auto increase = [](double now_value, double old_value) {
        return now_value >= old_value ? now_value - old_value : now_value;
      };
      Sum& sum = routes[route];
      sum.requests += increase(values.requests, old.requests) / elapsed;
      sum.duration_sum += increase(values.duration_sum, old.duration_sum) / elapsed;
      sum.duration_count += increase(values.duration_count, old.duration_count) / elapsed;
      for (std::size_t b = 0; b < values.buckets.size(); ++b) {
        const double bound = b < service->bounds_.size() ? service->bounds_[b]
                                                         : std::numeric_limits<double>::infinity();
        const double old_count = b < old.buckets.size() ? old.buckets[b] : 0;
        sum.buckets.push_back({bound, increase(values.buckets[b], old_count) / elapsed});
      }
    }
  }
  std::vector<RouteRate> out;
  for (auto& [route, sum] : routes) {
    if (sum.requests <= 0) continue;
    out.push_back({route, sum.requests, sum.duration_sum / sum.duration_count,
                   HistogramQuantile(0.95, std::move(sum.buckets))});
  }
  std::sort(out.begin(), out.end(), [](const RouteRate& a, const RouteRate& b) {
    return a.requests_per_second > b.requests_per_second;
  });
  return out;
}

std::vector<RouteRate> ServiceHistory::TopRoutes(double range) const {
  return TopRoutes(std::vector<const ServiceHistory*>{this}, range);
}

double ServiceHistory::newest_time() const {
  std::lock_guard lock(mutex_);
  return count_ ? times_[Slot(0)] : kNaN;
}

double ServiceHistory::oldest_time() const {
  std::lock_guard lock(mutex_);
  return count_ ? times_[Slot(count_ - 1)] : kNaN;
}

std::size_t ServiceHistory::samples() const {
  std::lock_guard lock(mutex_);
  return count_;
}

std::size_t ServiceHistory::memory_bytes() const {
  std::lock_guard lock(mutex_);
  std::size_t bytes = sizeof *this + times_.capacity() * sizeof(double) +
                      values_.capacity() * sizeof(float) +
                      (newest_.capacity() + previous_.capacity()) * sizeof(double);
  auto routes_bytes = [](const std::map<std::string, RouteTotals>& routes) {
    std::size_t total = 0;
    for (const auto& [route, values] : routes) {
      // A map node: the key, the value and about four pointers of bookkeeping.
      total += sizeof(std::string) + route.capacity() + 1 + sizeof(RouteTotals) +
               values.buckets.capacity() * sizeof(double) + 4 * sizeof(void*);
    }
    return total;
  };
  bytes += routes_bytes(route_latest_.routes);
  for (const RouteSnapshot& snapshot : route_snapshots_) {
    bytes += sizeof snapshot + routes_bytes(snapshot.routes);
  }
  return bytes;
}

}  // namespace fastapi_exporter::history
