#include "collectors/history/prom_math.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace fastapi_exporter::history {

double ExtrapolatedRate(std::span<const Point> points, double range_start, double range_end,
                        bool is_rate) {
  const auto first_in = std::lower_bound(points.begin(), points.end(), range_start,
                                         [](const Point& p, double t) { return p.t < t; });
  const auto end_in = std::upper_bound(points.begin(), points.end(), range_end,
                                       [](double t, const Point& p) { return t < p.t; });
  if (end_in - first_in < 2) return std::numeric_limits<double>::quiet_NaN();
  const std::span<const Point> in(first_in, end_in);
  const Point& first = in.front();
  const Point& last = in.back();
  double result = last.v - first.v;
  // Counter resets: the value before each drop is what the counter had counted.
  double previous = first.v;
  for (const Point& point : in.subspan(1)) {
    if (point.v < previous) result += previous;
    previous = point.v;
  }
  double to_start = first.t - range_start;
  double to_end = range_end - last.t;
  const double sampled = last.t - first.t;
  const double average_interval = sampled / double(in.size() - 1);
  // A counter does not go below zero: extrapolating to the start stops where it would.
  if (result > 0 && first.v >= 0) {
    const double to_zero = sampled * (first.v / result);
    if (to_zero < to_start) to_start = to_zero;
  }
  const double threshold = average_interval * 1.1;
  double interval = sampled;
  interval += to_start < threshold ? to_start : average_interval / 2;
  interval += to_end < threshold ? to_end : average_interval / 2;
  double factor = interval / sampled;
  if (is_rate) factor /= range_end - range_start;
  return result * factor;
}

double HistogramQuantile(double q, std::vector<Bucket> buckets) {
  if (std::isnan(q)) return std::numeric_limits<double>::quiet_NaN();
  if (q < 0) return -std::numeric_limits<double>::infinity();
  if (q > 1) return std::numeric_limits<double>::infinity();
  std::sort(buckets.begin(), buckets.end(),
            [](const Bucket& a, const Bucket& b) { return a.upper_bound < b.upper_bound; });
  if (buckets.empty() || !std::isinf(buckets.back().upper_bound)) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  // Buckets of the same bound (from series summed apart) are one bucket.
  std::vector<Bucket> merged;
  for (const Bucket& bucket : buckets) {
    if (!merged.empty() && merged.back().upper_bound == bucket.upper_bound) {
      merged.back().count += bucket.count;
    } else {
      merged.push_back(bucket);
    }
  }
  double max = -std::numeric_limits<double>::infinity();
  for (Bucket& bucket : merged) {
    if (bucket.count > max) {
      max = bucket.count;
    } else if (bucket.count < max) {
      bucket.count = max;
    }
  }
  if (merged.size() < 2) return std::numeric_limits<double>::quiet_NaN();
  const double observations = merged.back().count;
  if (observations == 0) return std::numeric_limits<double>::quiet_NaN();
  double rank = q * observations;
  std::size_t b = 0;
  while (b < merged.size() - 1 && merged[b].count < rank) ++b;
  if (b == merged.size() - 1) return merged[merged.size() - 2].upper_bound;
  if (b == 0 && merged[0].upper_bound <= 0) return merged[0].upper_bound;
  double start = 0;
  const double end = merged[b].upper_bound;
  double count = merged[b].count;
  if (b > 0) {
    start = merged[b - 1].upper_bound;
    count -= merged[b - 1].count;
    rank -= merged[b - 1].count;
  }
  return start + (end - start) * (rank / count);
}

}  // namespace fastapi_exporter::history
