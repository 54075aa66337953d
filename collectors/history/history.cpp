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
    route_names_.clear();
    route_previous_.clear();
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

  AddRoutes(t, totals);
}

void ServiceHistory::AddRoutes(double t, const Totals& totals) {
  const std::size_t stride = route_stride();
  route_latest_.assign(route_names_.size() * stride, 0.0);
  for (const auto& [route, values] : totals.routes) {
    auto known = std::find(route_names_.begin(), route_names_.end(), route);
    if (known == route_names_.end()) {
      if (route_names_.size() >= options_.max_routes) continue;
      route_names_.push_back(route);
      route_latest_.resize(route_names_.size() * stride, 0.0);
      known = route_names_.end() - 1;
    }
    double* row = &route_latest_[std::size_t(known - route_names_.begin()) * stride];
    row[0] = values.requests;
    row[1] = values.duration_sum;
    row[2] = values.duration_count;
    for (std::size_t b = 0; b < values.buckets.size() && 3 + b < stride; ++b) {
      row[3 + b] = values.buckets[b];
    }
  }
  route_latest_t_ = t;
  if (!route_snapshots_.empty() &&
      t - route_snapshots_.back().t < options_.route_every_seconds - 1e-9) {
    return;
  }
  RouteSnapshot snapshot;
  snapshot.t = t;
  snapshot.increases.resize(route_latest_.size());
  for (std::size_t i = 0; i < route_latest_.size(); ++i) {
    const double before = i < route_previous_.size() ? route_previous_[i] : 0.0;
    // The reset rule, as everywhere: a drop counts from zero.
    snapshot.increases[i] =
        float(route_latest_[i] >= before ? route_latest_[i] - before : route_latest_[i]);
  }
  route_previous_ = route_latest_;
  route_snapshots_.push_back(std::move(snapshot));
  while (route_snapshots_.front().t < t - options_.keep_seconds - options_.route_every_seconds) {
    route_snapshots_.erase(route_snapshots_.begin());
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
    const auto& snapshots = service->route_snapshots_;
    if (snapshots.empty()) continue;
    // From the newest snapshot at least `range` old (else the oldest there is) to now.
    std::size_t then = 0;
    for (std::size_t k = 0; k < snapshots.size(); ++k) {
      if (snapshots[k].t <= service->route_latest_t_ - range) then = k;
    }
    // Over the span kept, the range rounded up to a snapshot; but over the whole range when
    // less is kept yet, as Prometheus' rate() divides by its range whatever part of it has
    // samples: else the first requests after a start show as a burst.
    const double elapsed = std::max(service->route_latest_t_ - snapshots[then].t, range);
    if (elapsed <= 0) continue;
    const std::size_t stride = service->route_stride();
    const std::vector<double>& latest = service->route_latest_;
    const std::vector<double>& previous = service->route_previous_;
    for (std::size_t r = 0; r < service->route_names_.size(); ++r) {
      std::vector<double> increase(stride, 0.0);
      for (std::size_t i = 0; i < stride; ++i) {
        const std::size_t at = r * stride + i;
        const double now = at < latest.size() ? latest[at] : 0.0;
        const double before = at < previous.size() ? previous[at] : 0.0;
        increase[i] = now >= before ? now - before : now;
        for (std::size_t k = then + 1; k < snapshots.size(); ++k) {
          if (at < snapshots[k].increases.size()) increase[i] += snapshots[k].increases[at];
        }
      }
      Sum& sum = routes[service->route_names_[r]];
      sum.requests += increase[0] / elapsed;
      sum.duration_sum += increase[1] / elapsed;
      sum.duration_count += increase[2] / elapsed;
      for (std::size_t b = 0; b + 3 < stride; ++b) {
        const double bound = b < service->bounds_.size() ? service->bounds_[b]
                                                         : std::numeric_limits<double>::infinity();
        sum.buckets.push_back({bound, increase[3 + b] / elapsed});
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
  for (const std::string& name : route_names_) bytes += sizeof name + name.capacity() + 1;
  bytes += (route_previous_.capacity() + route_latest_.capacity()) * sizeof(double);
  bytes += route_snapshots_.capacity() * sizeof(RouteSnapshot);
  for (const RouteSnapshot& snapshot : route_snapshots_) {
    bytes += snapshot.increases.capacity() * sizeof(float);
  }
  return bytes;
}

}  // namespace fastapi_exporter::history
