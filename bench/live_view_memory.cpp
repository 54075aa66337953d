// The live view's memory: 10 services, each with an hour of history at the default sample
// interval (5 s), 10 routes, the default 10 histogram buckets and its 1,000 recent lines
// full. Prints what the structures account for (memory_bytes(), what /api/v1 reads) and what
// the heap grew by (glibc's mallinfo2), for docs/BENCHMARKS.md. CI runs it once
// (live_view_memory_smoke), which fails when the heap grew by more than the 2 MB target
// (2 MiB, as tests/unit/history_test.cpp checks what the structures account for). Under
// the sanitizers mallinfo2 does not see their allocator, and reads 0.
#include <malloc.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "collectors/history/history.hpp"
#include "collectors/history/recent_lines.hpp"

using namespace fastapi_exporter::history;

int main() {
  constexpr int kServices = 10, kRoutes = 10, kLines = 1000;
  const std::vector<double> bounds{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0};
  const std::size_t heap_before = mallinfo2().uordblks;
  std::vector<std::unique_ptr<ServiceHistory>> histories;
  std::vector<std::unique_ptr<RecentLines>> lines;
  const HistoryOptions options;  // 5 s for 1 h, routes every minute
  for (int s = 0; s < kServices; ++s) {
    histories.push_back(std::make_unique<ServiceHistory>(options, bounds));
    lines.push_back(std::make_unique<RecentLines>(kLines));
  }
  for (int s = 0; s < kServices; ++s) {
    for (double t = 0; t <= 2 * options.keep_seconds; t += options.interval_seconds) {
      Totals totals;
      totals.requests = t * 10;
      totals.by_class[1] = t * 9;
      totals.by_class[3] = t;
      totals.duration_sum = t * 0.4;
      totals.duration_count = t * 10;
      totals.bounds = bounds;
      for (std::size_t b = 0; b <= bounds.size(); ++b) totals.buckets.push_back(t * double(b));
      totals.cpu_seconds = t / 50;
      totals.resident_bytes = 1e8;
      for (int r = 0; r < kRoutes; ++r) {
        RouteTotals& route = totals.routes["GET /api/v1/resource" + std::to_string(r) + "/{id}"];
        route.requests = t * (r + 1);
        route.duration_sum = t * 0.01 * (r + 1);
        route.duration_count = t * (r + 1);
        route.buckets = totals.buckets;
      }
      histories[std::size_t(s)]->Add(t, totals);
    }
    for (int i = 0; i < 2 * kLines; ++i) {
      lines[std::size_t(s)]->Add(i, "GET", "/api/v1/resource7/123456?x=1", 200, true, 0.01);
    }
  }
  const std::size_t heap = mallinfo2().uordblks - heap_before;
  std::size_t history_bytes = 0, lines_bytes = 0;
  for (const auto& history : histories) history_bytes += history->memory_bytes();
  for (const auto& ring : lines) lines_bytes += ring->memory_bytes();
  std::printf(
      "services %d, samples each %zu, routes each %d, lines each %d\n"
      "accounted: history %zu B, recent lines %zu B, total %zu B\n"
      "heap grown (mallinfo2): %zu B\n",
      kServices, histories[0]->samples(), kRoutes, kLines, history_bytes, lines_bytes,
      history_bytes + lines_bytes, heap);
  constexpr std::size_t kTargetBytes = 2 * 1024 * 1024;
  if (heap > kTargetBytes) {
    std::fprintf(stderr, "the heap grew by %zu B, over the 2 MiB target\n", heap);
    return 1;
  }
  return 0;
}
