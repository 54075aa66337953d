// Prometheus' own arithmetic, for the live view's numbers to equal Grafana's on the same data.
//
// Written here rather than taken from a library: Prometheus is Go and no C++ package carries
// its PromQL functions. Each function follows the Prometheus 2.42 source (Debian 12's
// version) named beside it, including its edge cases, so that a panel of the page and the
// same query run by Prometheus on /metrics agree (tests/unit/history_test.cpp checks them
// against hand-computed values; tests/integration/test_live_view.py against a real one).
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace fastapi_exporter::history {

// One sample: a time in seconds (Unix epoch) and a value.
struct Point {
  double t = 0;
  double v = 0;
};

// rate() (is_rate, per second) or increase() over the samples of a counter that fall in
// [range_start, range_end] (seconds), as promql/functions.go extrapolatedRate does it: a
// value that drops counts as a counter reset (the value before it is added back), and the
// result is extrapolated to the range's edges, by up to half a sample interval beyond the
// first and last sample (not below zero at the start). `points` sorted by time; points
// outside the range are ignored. Fewer than two samples in the range: NaN (Prometheus
// returns no value).
double ExtrapolatedRate(std::span<const Point> points, double range_start, double range_end,
                        bool is_rate);

// A histogram bucket: its upper bound (le, +Inf for the last) and its cumulative count.
struct Bucket {
  double upper_bound = 0;
  double count = 0;
};

// histogram_quantile(q, ...) on one set of buckets, as promql/quantile.go bucketQuantile: q
// below 0 gives -Inf, above 1 +Inf, NaN q NaN; no +Inf bucket, fewer than two buckets or no
// observation: NaN. Counts that are not monotonic (a sum of rates of series read at
// slightly different moments) are raised to the previous one first, as Prometheus does.
// The quantile is interpolated linearly within its bucket (the first bucket from 0 when its
// bound is positive); a quantile in the +Inf bucket is the largest finite bound.
double HistogramQuantile(double q, std::vector<Bucket> buckets);

}  // namespace fastapi_exporter::history
