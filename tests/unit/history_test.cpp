// The live view's arithmetic against hand-computed values (the steps of each are in the
// comments), the bounds of its rings, and its reading of the exposition text.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <limits>

#include "collectors/history/history.hpp"
#include "collectors/history/prom_math.hpp"
#include "collectors/history/recent_lines.hpp"
#include "daemon/live_view.hpp"
#include "tests/unit/fake_proc.hpp"

namespace fastapi_exporter::history {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(ExtrapolatedRate, ExtrapolatesToTheEndButNotBelowZero) {
  const std::vector<Point> points{{10, 0}, {20, 10}, {30, 20}, {40, 30}};
  // Range [5, 45]: increase 30 over 30 s sampled; the start would be at 5 s before the
  // first sample, but the counter was 0 there (to zero: 30 * 0/30 = 0 s); the end is 5 s
  // after the last (< 1.1 x 10 s): 30 * (30 + 0 + 5) / 30 = 35 over 40 s.
  EXPECT_DOUBLE_EQ(ExtrapolatedRate(points, 5, 45, true), 35.0 / 40);
  EXPECT_DOUBLE_EQ(ExtrapolatedRate(points, 5, 45, false), 35.0);
}

TEST(ExtrapolatedRate, CountsAResetFromZero) {
  // 100 -> 110 -> 5 -> 15: 10 + (5 from zero) + 10 = 25, i.e. 15 - 100 + 110.
  const std::vector<Point> points{{10, 100}, {20, 110}, {30, 5}, {40, 15}};
  EXPECT_DOUBLE_EQ(ExtrapolatedRate(points, 10, 40, false), 25.0);
  EXPECT_DOUBLE_EQ(ExtrapolatedRate(points, 10, 40, true), 25.0 / 30);
}

TEST(ExtrapolatedRate, ExtrapolatesHalfAnIntervalPastFarEdges) {
  // Samples at 100 and 110 in [70, 130]: both edges are further than 1.1 x 10 s, so each
  // side gets 5 s: 10 * (10 + 5 + 5) / 10 = 20 (the start is 50 s from zero: no clamp).
  const std::vector<Point> points{{100, 50}, {110, 60}};
  EXPECT_DOUBLE_EQ(ExtrapolatedRate(points, 70, 130, false), 20.0);
  EXPECT_DOUBLE_EQ(ExtrapolatedRate(points, 70, 130, true), 20.0 / 60);
}

TEST(ExtrapolatedRate, NeedsTwoSamplesInTheRange) {
  const std::vector<Point> points{{10, 1}, {20, 2}, {30, 3}};
  EXPECT_TRUE(std::isnan(ExtrapolatedRate(points, 21, 29, true)));
  EXPECT_TRUE(std::isnan(ExtrapolatedRate(points, 25, 35, true)));
  EXPECT_TRUE(std::isnan(ExtrapolatedRate({}, 0, 10, true)));
  // Only the two in range count: 2 -> 3 over [15, 30], start 5 s away (< 11), to zero
  // 10 * 2/1 = 20 s: 1 * (10 + 5 + 0) / 10 = 1.5.
  EXPECT_DOUBLE_EQ(ExtrapolatedRate(points, 15, 30, false), 1.5);
}

TEST(HistogramQuantile, InterpolatesWithinTheBucket) {
  const std::vector<Bucket> buckets{{0.1, 10}, {0.5, 30}, {1, 40}, {kInf, 40}};
  // Rank 0.6 x 40 = 24: in (0.1, 0.5], 14 of its 20: 0.1 + 0.4 x 0.7.
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.6, buckets), 0.1 + 0.4 * 0.7);
  // Rank 8 in the first bucket, from 0: 0.1 x 8/10.
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.2, buckets), 0.08);
  EXPECT_DOUBLE_EQ(HistogramQuantile(1, buckets), 1.0);
}

TEST(HistogramQuantile, InTheInfBucketIsTheLargestFiniteBound) {
  const std::vector<Bucket> buckets{{0.1, 10}, {1, 10}, {kInf, 20}};
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.9, buckets), 1.0);
}

TEST(HistogramQuantile, EmptyAndInvalidCases) {
  EXPECT_TRUE(std::isnan(HistogramQuantile(0.5, {{0.1, 0}, {1, 0}, {kInf, 0}})));
  EXPECT_TRUE(std::isnan(HistogramQuantile(0.5, {{0.1, 3}, {1, 5}})));  // no +Inf
  EXPECT_TRUE(std::isnan(HistogramQuantile(0.5, {{kInf, 5}})));         // one bucket
  EXPECT_TRUE(std::isnan(HistogramQuantile(0.5, {})));
  EXPECT_TRUE(std::isnan(HistogramQuantile(std::nan(""), {{0.1, 1}, {kInf, 1}})));
  EXPECT_EQ(HistogramQuantile(-0.1, {{0.1, 1}, {kInf, 1}}), -kInf);
  EXPECT_EQ(HistogramQuantile(1.1, {{0.1, 1}, {kInf, 1}}), kInf);
}

TEST(HistogramQuantile, SortsMergesAndMakesMonotonic) {
  // sum by (le) of two series given unsorted: 0.1 -> 10, 0.5 -> 20, +Inf -> 20.
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.5, {{0.5, 20}, {0.1, 5}, {kInf, 20}, {0.1, 5}}), 0.1);
  // 0.5 -> 8 is raised to 10: rank 10 falls in the first bucket, whole.
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.5, {{0.1, 10}, {0.5, 8}, {kInf, 20}}), 0.1);
}

Totals SteadyTotals(double requests) {
  Totals totals;
  totals.requests = requests;
  totals.by_class[1] = requests * 0.75;  // 2xx
  totals.by_class[3] = requests * 0.25;  // 4xx
  totals.duration_sum = requests * 0.05;
  totals.duration_count = requests;
  totals.bounds = {0.1, 1};
  totals.buckets = {requests, requests, requests};  // every request under 0.1 s
  totals.cpu_seconds = requests / 100;
  totals.resident_bytes = 1000 + requests;
  return totals;
}

TEST(ServiceHistory, PanelValuesOfSteadyTraffic) {
  ServiceHistory history(HistoryOptions{1, 60, 60, 64});
  for (int t = 0; t <= 10; ++t) history.Add(t, SteadyTotals(2.0 * t));
  const PanelValues values = history.ValuesAt(10, 10);
  // 20 requests over [0, 10], first sample at 0 with 0 requests: 2 /s exactly.
  EXPECT_DOUBLE_EQ(values.requests_per_second, 2.0);
  EXPECT_DOUBLE_EQ(values.errors_4xx_per_second, 0.5);
  EXPECT_DOUBLE_EQ(values.errors_5xx_per_second, 0.0);
  // Increases of 0.1 s and 0.02 s are kept as floats: exact to 7 digits, not 16.
  EXPECT_NEAR(values.average_duration_seconds, 0.05, 0.05 * 1e-7);
  // All in (0, 0.1]: rank 0.6 of the rate 2 in the first bucket: 0.1 x 0.6.
  EXPECT_DOUBLE_EQ(values.p60_seconds, 0.06);
  EXPECT_DOUBLE_EQ(values.p95_seconds, 0.095);
  EXPECT_NEAR(values.cpu_percent, 2.0, 2.0 * 1e-7);  // 0.02 s of CPU per second
  EXPECT_DOUBLE_EQ(values.resident_bytes, 1020);
}

TEST(ServiceHistory, ACounterFromZeroIsRebuiltAsZero) {
  // Duration sums of 0.0123 s per request have no exact float: were the first value rebuilt
  // as -1e-17 rather than 0, rate() would extrapolate the sum (not the count) by half an
  // interval past the history's start, and the average would be 5% off.
  ServiceHistory history(HistoryOptions{1, 60, 60, 64});
  for (int t = 0; t <= 10; ++t) {
    Totals totals = SteadyTotals(2.0 * t);
    totals.duration_sum = 0.0123 * 2.0 * t;
    history.Add(t, totals);
  }
  // A minute's window over 10 s of history that starts at zero: 20 requests / 60 s.
  const PanelValues values = history.ValuesAt(10, 60);
  EXPECT_DOUBLE_EQ(values.requests_per_second, 20.0 / 60);
  EXPECT_NEAR(values.average_duration_seconds, 0.0123, 0.0123 * 1e-6);
}

TEST(ServiceHistory, AResetCountsFromZero) {
  ServiceHistory history(HistoryOptions{1, 60, 60, 64});
  const double requests[] = {0, 10, 20, 30, 5, 15};
  for (int t = 0; t < 6; ++t) history.Add(t, SteadyTotals(requests[t]));
  // 10 + 10 + 10 + 5 + 10 = 45 over [0, 5], as Prometheus' reset rule gives.
  EXPECT_DOUBLE_EQ(history.ValuesAt(5, 5).requests_per_second, 9.0);
}

TEST(ServiceHistory, NoDataIsNaNNotZero) {
  ServiceHistory history(HistoryOptions{1, 60, 60, 64}, {0.1, 1});
  Totals idle;
  idle.cpu_seconds = std::nan("");
  history.Add(0, idle);
  history.Add(1, idle);
  const PanelValues values = history.ValuesAt(1, 1);
  EXPECT_DOUBLE_EQ(values.requests_per_second, 0);
  EXPECT_TRUE(std::isnan(values.average_duration_seconds));  // 0 / 0
  EXPECT_TRUE(std::isnan(values.p60_seconds));               // no observation
  EXPECT_TRUE(std::isnan(values.cpu_percent));               // no process
  EXPECT_TRUE(std::isnan(ServiceHistory().ValuesAt(0, 60).requests_per_second));
}

TEST(ServiceHistory, SumsServicesAsSumOfRates) {
  ServiceHistory a(HistoryOptions{1, 60, 60, 64});
  ServiceHistory b(HistoryOptions{1, 60, 60, 64});
  for (int t = 0; t <= 10; ++t) {
    a.Add(t, SteadyTotals(2.0 * t));
    Totals slow = SteadyTotals(1.0 * t);
    slow.buckets = {0, 1.0 * t, 1.0 * t};  // every request in (0.1, 1]
    b.Add(t, slow);
  }
  const PanelValues values = ServiceHistory::ValuesAt({&a, &b}, 10, 10);
  EXPECT_DOUBLE_EQ(values.requests_per_second, 3.0);
  // Buckets summed by le: 0.1 -> 2, 1 -> 3, +Inf -> 3; rank 0.6 x 3 = 1.8: 0.1 x 1.8/2.
  EXPECT_DOUBLE_EQ(values.p60_seconds, 0.09);
  // Rank 0.95 x 3 = 2.85, in (0.1, 1]: 0.1 + 0.9 x 0.85/1.
  EXPECT_DOUBLE_EQ(values.p95_seconds, 0.1 + 0.9 * 0.85);
  EXPECT_DOUBLE_EQ(values.resident_bytes, 1020 + 1010);
}

TEST(ServiceHistory, RingIsBounded) {
  ServiceHistory history(HistoryOptions{1, 10, 5, 2});
  EXPECT_EQ(history.capacity(), 11u);
  history.Add(0, SteadyTotals(0));
  const std::size_t empty_routes = history.memory_bytes();
  for (int t = 1; t <= 100; ++t) history.Add(t, SteadyTotals(t));
  EXPECT_EQ(history.samples(), 11u);
  EXPECT_DOUBLE_EQ(history.oldest_time(), 90);
  EXPECT_DOUBLE_EQ(history.newest_time(), 100);
  // The oldest samples are gone: a window over them has nothing.
  EXPECT_TRUE(std::isnan(history.ValuesAt(50, 10).requests_per_second));
  EXPECT_DOUBLE_EQ(history.ValuesAt(100, 10).requests_per_second, 1.0);
  // Route snapshots: every 5 s over 10 s (+1 interval): at most 3 kept, 2 routes each.
  Totals routed = SteadyTotals(200);
  for (int r = 0; r < 5; ++r) routed.routes["GET /r" + std::to_string(r)].requests = r;
  for (int t = 101; t <= 200; ++t) history.Add(t, routed);
  const std::size_t full = history.memory_bytes();
  for (int t = 201; t <= 300; ++t) history.Add(t, routed);
  EXPECT_EQ(history.memory_bytes(), full);
  EXPECT_GT(full, empty_routes);
  const auto top = history.TopRoutes(10);
  EXPECT_TRUE(top.empty());  // the routes' counts did not move
}

TEST(ServiceHistory, TopRoutesByRateAndP95) {
  ServiceHistory history(HistoryOptions{1, 60, 10, 64});
  for (int t = 0; t <= 20; ++t) {
    Totals totals = SteadyTotals(3.0 * t);
    RouteTotals fast{2.0 * t, 0.01 * t, 2.0 * t, {2.0 * t, 2.0 * t, 2.0 * t}};
    RouteTotals slow{1.0 * t, 0.5 * t, 1.0 * t, {0, 1.0 * t, 1.0 * t}};
    totals.routes = {{"GET /fast", fast}, {"POST /slow", slow}};
    history.Add(t, totals);
  }
  // From the snapshot at 10 to now (20): /fast 20 in 10 s, /slow 10.
  const auto top = history.TopRoutes(10);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].route, "GET /fast");
  EXPECT_DOUBLE_EQ(top[0].requests_per_second, 2.0);
  EXPECT_DOUBLE_EQ(top[0].p95_seconds, 0.095);
  EXPECT_DOUBLE_EQ(top[1].requests_per_second, 1.0);
  EXPECT_DOUBLE_EQ(top[1].average_duration_seconds, 0.5);
  EXPECT_DOUBLE_EQ(top[1].p95_seconds, 0.1 + 0.9 * 0.95);
}

TEST(ServiceHistory, TopRoutesOverARangeLongerThanTheHistoryDivideByTheRange) {
  // 20 s kept, 30 requests in them, asked over 5 minutes: 30 / 300 s as Prometheus'
  // rate(x[5m]) would say, not 30 / 20 s (the first minute after a start seen as a burst).
  ServiceHistory history(HistoryOptions{1, 3600, 120, 64});
  for (int t = 0; t <= 20; ++t) {
    Totals totals = SteadyTotals(1.5 * t);
    totals.routes = {{"GET /a", RouteTotals{1.5 * t, 0.1 * t, 1.5 * t, {0, 1.5 * t, 1.5 * t}}}};
    history.Add(t, totals);
  }
  const auto top = history.TopRoutes(300);
  ASSERT_EQ(top.size(), 1u);
  EXPECT_DOUBLE_EQ(top[0].requests_per_second, 30.0 / 300);
  EXPECT_DOUBLE_EQ(top[0].average_duration_seconds, 2.0 / 30);
}

TEST(ServiceHistory, TenServicesAnHourAndAThousandLinesFitInTwoMegabytes) {
  // The defaults (5 s for 1 h, route totals every minute), 10 buckets, 10 routes, full.
  std::size_t bytes = 0;
  for (int s = 0; s < 10; ++s) {
    ServiceHistory history(HistoryOptions{}, {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
    for (double t = 0; t <= 7200; t += 5) {
      Totals totals = SteadyTotals(t);
      totals.bounds = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
      totals.buckets.assign(11, t);
      for (int r = 0; r < 10; ++r) {
        totals.routes["GET /api/v1/resource" + std::to_string(r) + "/{id}"] =
            RouteTotals{t, t, t, totals.buckets};
      }
      history.Add(t, totals);
    }
    EXPECT_EQ(history.samples(), 721u);
    RecentLines lines(1000);
    bytes += history.memory_bytes() + lines.memory_bytes();
  }
  EXPECT_LT(bytes, 2u << 20);
}

TEST(RecentLines, KeepsTheNewestInFixedSlots) {
  RecentLines lines(3);
  for (int i = 0; i < 5; ++i) {
    lines.Add(i, "GET", "/p" + std::to_string(i) + "?token=secret", 200 + i, i % 2 == 0, 0.5);
  }
  const auto newest = lines.Newest(10);
  ASSERT_EQ(newest.size(), 3u);
  EXPECT_EQ(newest[0].Path(), "/p4");  // the query string is not kept
  EXPECT_EQ(newest[1].Path(), "/p3");
  EXPECT_EQ(newest[2].Path(), "/p2");
  EXPECT_EQ(newest[0].status, 204);
  EXPECT_FLOAT_EQ(newest[0].duration_seconds, 0.5f);
  EXPECT_LT(newest[1].duration_seconds, 0);  // no duration
  EXPECT_EQ(lines.added(), 5u);
  EXPECT_EQ(lines.Newest(1).size(), 1u);
  EXPECT_EQ(lines.memory_bytes(), sizeof lines + 3 * sizeof(RecentLine));
}

TEST(RecentLines, CutsLongPathsAndOddMethodsAndKeepsQueriesWhenAsked) {
  RecentLines lines(2, true);
  lines.Add(1, "PROPFIND-LONG", "/a?b=c", 207, false, 0);
  lines.Add(2, "GET", std::string(100, 'x'), 200, false, 0);
  const auto newest = lines.Newest(2);
  EXPECT_EQ(newest[0].Path(), std::string(RecentLine::kPathBytes, 'x'));
  EXPECT_TRUE(newest[0].path_cut);
  EXPECT_EQ(newest[1].Path(), "/a?b=c");
  EXPECT_EQ(newest[1].Method(), "OTHER");
}

TEST(RecentLinesRegistry, KeepsRingsAcrossSameSettings) {
  RecentLinesRegistry registry;
  const auto a = registry.Get("a", 10, false);
  EXPECT_EQ(registry.Get("a", 10, false), a);
  EXPECT_NE(registry.Get("a", 10, true), a);
  registry.Get("b", 10, false);
  registry.Keep({"b"});
  EXPECT_EQ(registry.Find("a"), nullptr);
  EXPECT_NE(registry.Find("b"), nullptr);
}

TEST(LiveViewReadTotals, SumsTheExposedSeries) {
  const std::string text = R"(# HELP fastapi_requests_total x
# TYPE fastapi_requests_total counter
fastapi_requests_total{service="a",method="GET",path="/x",status_code="200"} 7
fastapi_requests_total{service="a",method="GET",path="/q\"\\",status_code="404"} 3
fastapi_requests_total{service="b",method="POST",path="/y",status_code="500"} 2
fastapi_request_duration_seconds_bucket{service="a",method="GET",path="/x",status_code="200",le="0.1"} 5
fastapi_request_duration_seconds_bucket{service="a",method="GET",path="/x",status_code="200",le="+Inf"} 7
fastapi_request_duration_seconds_sum{service="a",method="GET",path="/x",status_code="200"} 1.5
fastapi_request_duration_seconds_count{service="a",method="GET",path="/x",status_code="200"} 7
process_cpu_seconds_total{service="a"} 12.5
process_resident_memory_bytes{service="a"} 1e+06
other_metric{service="a"} 99
)";
  const auto totals = LiveView::ReadTotals(text, "fastapi");
  ASSERT_EQ(totals.size(), 2u);
  const Totals& a = totals.at("a");
  EXPECT_EQ(a.requests, 10);
  EXPECT_EQ(a.by_class[1], 7);
  EXPECT_EQ(a.by_class[3], 3);
  EXPECT_EQ(a.duration_sum, 1.5);
  EXPECT_EQ(a.duration_count, 7);
  EXPECT_EQ(a.bounds, std::vector<double>{0.1});
  EXPECT_EQ(a.buckets, (std::vector<double>{5, 7}));
  EXPECT_EQ(a.cpu_seconds, 12.5);
  EXPECT_EQ(a.resident_bytes, 1e6);
  ASSERT_EQ(a.routes.count("GET /q\"\\"), 1u);  // label escapes undone
  EXPECT_EQ(a.routes.at("GET /x").buckets, (std::vector<double>{5, 7}));
  EXPECT_EQ(totals.at("b").by_class[4], 2);
  EXPECT_TRUE(std::isnan(totals.at("b").cpu_seconds));
}

void ExpectSameTotals(const Totals& direct, const Totals& text, const std::string& service) {
  SCOPED_TRACE(service);
  EXPECT_EQ(direct.requests, text.requests);
  EXPECT_EQ(direct.by_class, text.by_class);
  EXPECT_EQ(direct.duration_sum, text.duration_sum);
  EXPECT_EQ(direct.duration_count, text.duration_count);
  EXPECT_EQ(direct.bounds, text.bounds);
  EXPECT_EQ(direct.buckets, text.buckets);
  EXPECT_EQ(std::isnan(direct.cpu_seconds), std::isnan(text.cpu_seconds));
  if (!std::isnan(text.cpu_seconds)) {
    EXPECT_DOUBLE_EQ(direct.cpu_seconds, text.cpu_seconds);
  }
  EXPECT_EQ(std::isnan(direct.resident_bytes), std::isnan(text.resident_bytes));
  if (!std::isnan(text.resident_bytes)) {
    EXPECT_DOUBLE_EQ(direct.resident_bytes, text.resident_bytes);
  }
  ASSERT_EQ(direct.routes.size(), text.routes.size());
  for (const auto& [route, totals] : text.routes) {
    ASSERT_EQ(direct.routes.count(route), 1u) << route;
    const RouteTotals& other = direct.routes.at(route);
    EXPECT_EQ(other.requests, totals.requests) << route;
    EXPECT_EQ(other.duration_sum, totals.duration_sum) << route;
    EXPECT_EQ(other.duration_count, totals.duration_count) << route;
    EXPECT_EQ(other.buckets, totals.buckets) << route;
  }
}

// The sampler reads the collectors directly; a reader of the text they render (the way it
// used to sample) must find the same totals, and both the hand-counted values.
TEST(LiveViewReadTotals, TheCollectorsReadDirectlyGiveWhatTheirTextGives) {
  namespace al = access_log;
  auto store = std::make_shared<al::RequestStore>("fastapi");
  al::RequestMetrics api(*store, "api", {0.1, 1});
  al::RequestMetrics jobs(*store, "jobs", {0.5});
  for (int i = 0; i < 5; ++i) api.Record(al::HttpMethod::kGet, 1, "/x", 200, true, 0.05 * i);
  api.Record(al::HttpMethod::kGet, 1, "/x", 404, true, 2);
  api.Record(al::HttpMethod::kPost, 2, "/q\"\\", 503, true, 0.5);
  api.Record(al::HttpMethod::kGet, 3, "/no-duration", 200, false, 0);
  jobs.Record(al::HttpMethod::kPut, 1, "/y", 201, false, 0);
  jobs.Record(al::HttpMethod::kPut, 1, "/y", 201, false, 0);

  testing::FakeProc fake;
  testing::FakeProcess process;
  process.pid = 100;
  process.utime = 300;
  process.rss_pages = 50;
  fake.Write(process);
  config::ServiceConfig api_config, jobs_config;
  api_config.name = "api";
  api_config.process.pid = 100;
  jobs_config.name = "jobs";
  jobs_config.process.pidfile = fake.root() + "/missing.pid";
  auto processes = std::make_shared<process::ProcessCollector>(
      std::vector<config::ServiceConfig>{api_config, jobs_config},
      process::ProcessCollectorOptions{fake.proc_root(), fake.cgroup_root()});

  std::string text;
  store->RenderText(text);
  processes->RenderText(text);
  const auto from_text = LiveView::ReadTotals(text, "fastapi");
  const auto direct = LiveView::ReadTotals(LiveSources{store, processes});
  ASSERT_EQ(direct.size(), 2u);
  ASSERT_EQ(from_text.size(), 2u);
  for (const auto& [service, totals] : from_text) {
    ASSERT_EQ(direct.count(service), 1u) << service;
    ExpectSameTotals(direct.at(service), totals, service);
  }
  const Totals& a = direct.at("api");
  EXPECT_EQ(a.requests, 8);
  EXPECT_EQ(a.by_class[1], 6);
  EXPECT_EQ(a.by_class[3], 1);
  EXPECT_EQ(a.by_class[4], 1);
  EXPECT_EQ(a.duration_count, 7);  // the request without a duration is not in the histogram
  EXPECT_DOUBLE_EQ(a.duration_sum, 0.05 * (0 + 1 + 2 + 3 + 4) + 2 + 0.5);
  EXPECT_EQ(a.bounds, (std::vector<double>{0.1, 1}));
  // <= 0.1: 0, 0.05, 0.1; <= 1: those, 0.15, 0.2, 0.5; all 7.
  EXPECT_EQ(a.buckets, (std::vector<double>{3, 6, 7}));
  EXPECT_EQ(a.routes.at("POST /q\"\\").buckets, (std::vector<double>{0, 1, 1}));
  EXPECT_EQ(a.routes.at("GET /no-duration").requests, 1);
  EXPECT_TRUE(a.routes.at("GET /no-duration").buckets.empty());
  EXPECT_DOUBLE_EQ(a.cpu_seconds, 300.0 / double(sysconf(_SC_CLK_TCK)));
  EXPECT_DOUBLE_EQ(a.resident_bytes, 50.0 * double(sysconf(_SC_PAGESIZE)));
  const Totals& j = direct.at("jobs");
  EXPECT_EQ(j.requests, 2);
  EXPECT_EQ(j.by_class[1], 2);
  EXPECT_TRUE(j.buckets.empty());
  EXPECT_TRUE(std::isnan(j.cpu_seconds));
  EXPECT_TRUE(std::isnan(j.resident_bytes));
}

}  // namespace
}  // namespace fastapi_exporter::history
