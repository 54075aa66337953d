// The per-line path of access logs, from one line of text to one counted request:
//
//   (container envelope) -> terminal escapes stripped -> format parser -> route normalizer
//   -> exclude_paths -> request metrics + the live view's recent lines
//
// used alike by the file tailer (MakeFileSink, one sink per file), the journal (the pipeline
// is the journal's MessageSink), the collector, tests/unit/no_allocation_test.cpp and
// bench/micro_bench.cpp. One thread drives a pipeline; once warm it does not allocate.
//
// What each line counts under, with labels {service, source}:
// - fastapi_exporter_log_lines_total: every line (or journal entry, or envelope record) read.
// - fastapi_exporter_log_requests_total: lines counted as requests.
// - fastapi_exporter_log_excluded_total: requests whose path is excluded (exclude_paths).
// - fastapi_exporter_log_parse_errors_total{reason}: lines skipped, reason = ParseErrorName:
//   the parser's reasons, invalid_envelope and line_too_long (envelope records and lines over
//   max_line_bytes), invalid_path (the normalizer refused the target), and the journal's
//   binary_message / missing_field (OnSkipped). The first line of each reason is logged.
// - fastapi_exporter_log_invalid_durations_total: requests counted without a duration
//   observation (ParsedRequest::duration_invalid).
// - fastapi_exporter_paths_overflow_total{service}: requests counted under "__other__".
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/access_log/envelope.hpp"
#include "collectors/access_log/line_parser.hpp"
#include "collectors/access_log/message_sink.hpp"
#include "collectors/access_log/request.hpp"
#include "collectors/access_log/request_metrics.hpp"
#include "collectors/access_log/route_normalizer.hpp"
#include "collectors/history/recent_lines.hpp"
#include "config/route_template.hpp"  // the routes, as parsed with the config

namespace fastapi_exporter::access_log {

class LineSink;  // tailer.hpp: where a file's lines go
class RouteDiscovery;

// The self-metric families a pipeline counts into (the list above).
struct LineFamilies {
  prometheus::Family<prometheus::Counter>& lines;
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Counter>& excluded;
  prometheus::Family<prometheus::Counter>& parse_errors;
  prometheus::Family<prometheus::Counter>& invalid_durations;
  prometheus::Family<prometheus::Counter>& overflow;
};
LineFamilies RegisterLineFamilies(prometheus::Registry& registry);

// What shapes one service's request series; equal options keep its counters on reload.
struct ServiceOptions {
  std::string name;                           // the `service` label
  std::vector<config::RouteTemplate> routes;  // first match wins, before discovered routes
  // Paths not counted at all (exclude_paths, and the OpenAPI document's own path when it is
  // fetched: ExcludedPaths in access_log_collector.hpp).
  std::vector<std::string> exclude_paths;
  int max_paths = 200;          // distinct `path` values; beyond it "__other__"
  std::vector<double> buckets;  // histogram upper bounds, seconds
  // routes_from's URL, file and refresh in one string (empty: no discovery): compared only,
  // the RouteDiscovery itself is built by the caller and handed to the ServicePipeline.
  std::string routes_from;

  bool operator==(const ServiceOptions& other) const;
};

// The counting of one service, shared by its sources: route normalizer, request series,
// route discovery. Its series leave the store when it is destroyed.
class ServicePipeline {
 public:
  ServicePipeline(ServiceOptions options, RequestStore& store, LineFamilies families);
  // With routes read from the service (routes_from).
  ServicePipeline(ServiceOptions options, RequestStore& store, LineFamilies families,
                  std::unique_ptr<RouteDiscovery> discovery);
  ~ServicePipeline();
  ServicePipeline(const ServicePipeline&) = delete;
  ServicePipeline& operator=(const ServicePipeline&) = delete;

  const ServiceOptions& options() const { return options_; }
  const std::string& name() const { return options_.name; }
  const RouteNormalizer& normalizer() const { return normalizer_; }
  const RequestMetrics& metrics() const { return metrics_; }

  // The live view's ring of recent lines; null turns it off. Set between lines only.
  void SetRecentLines(std::shared_ptr<history::RecentLines> recent) { recent_ = std::move(recent); }
  // Routes read from the service (its RouteDiscovery hands them over on its own), tried
  // after the configured ones. Between lines only.
  void SetDiscoveredRoutes(std::vector<config::RouteTemplate> routes) {
    normalizer_.SetDiscoveredRoutes(std::move(routes));
  }
  // Lines read before the service's routes are known would be labelled by guesses: reading
  // starts after the first fetch has answered (at most 8 s, the fetch's timeout).
  void WaitForRoutes();

  // One request of the service, whichever source read it (a log line, the wire): takes up
  // newly discovered routes, maps the target to its route, and records the request (and in
  // the recent-lines ring). `seconds` counts only when `has_duration`. The hot path of every
  // source: allocates nothing once the series exists. On the reading thread only.
  enum class Outcome { kCounted, kExcluded, kInvalidPath };
  Outcome Count(std::string_view method, std::string_view target, int status, bool has_duration,
                double seconds);

 private:
  friend class LinePipeline;
  // Called on the reading thread: a new discovered table replaces the old one between two
  // lines, so the normalizer needs no lock.
  void PickUpRoutes();

  ServiceOptions options_;
  LineFamilies families_;
  RouteNormalizer normalizer_;
  RequestMetrics metrics_;
  prometheus::Counter* overflow_;
  std::shared_ptr<history::RecentLines> recent_;  // null: recent_lines is off
  std::unique_ptr<RouteDiscovery> discovery_;     // with routes_from
};

// What one source's lines go through; equal options keep its counters on reload.
struct SourceOptions {
  std::string name;  // the `source` label: its glob, or "journal:" and its matches
  ParserOptions parser;
  Envelope envelope = Envelope::kNone;  // unwrapped by file sinks only (journal entries are lines)
  std::size_t max_line_bytes = 64 * 1024;  // longer (joined) lines count under line_too_long
  bool operator==(const SourceOptions&) const = default;
};

// The lines of one configured source (a glob or a journal selector) of a service.
class LinePipeline final : public MessageSink {
 public:
  // The service must outlive the pipeline.
  LinePipeline(SourceOptions options, ServicePipeline& service);
  ~LinePipeline() override;
  LinePipeline(const LinePipeline&) = delete;
  LinePipeline& operator=(const LinePipeline&) = delete;

  // One complete line, without its end of line: counted under lines_total, then as a
  // request or under a reason.
  void Handle(std::string_view line);

  // The sink of one file: counts each record under lines_total, removes the envelope
  // (joining partial records, which belong to that file), then as Handle. A line over
  // max_line_bytes counts under line_too_long.
  std::unique_ptr<LineSink> MakeFileSink();

  // The journal: a MESSAGE is a line; an entry without one counts under `reason`.
  void OnMessage(std::string_view message) override { Handle(message); }
  void OnSkipped(ParseError reason, std::string_view message) override;

  ServicePipeline& service() const { return service_; }
  const SourceOptions& options() const { return options_; }
  const std::string& source() const { return options_.name; }
  uint64_t requests() const;  // counted as requests so far

 private:
  class FileSink;
  void CountLine() { lines_->Increment(); }
  void Count(std::string_view line);  // a line already counted under lines_total
  void Reject(ParseError error, std::string_view line);

  SourceOptions options_;
  ServicePipeline& service_;
  std::unique_ptr<LineParser> parser_;
  prometheus::Counter* lines_;
  prometheus::Counter* requests_;
  prometheus::Counter* excluded_;
  prometheus::Counter* invalid_durations_;
  std::array<prometheus::Counter*, kParseErrorCount> parse_errors_{};
  std::array<bool, kParseErrorCount> logged_errors_{};
  bool logged_invalid_duration_ = false;
  std::string scratch_;  // a line without its terminal escapes
};

}  // namespace fastapi_exporter::access_log
