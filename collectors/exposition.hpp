// The one place /metrics is rendered from: every collector registers here, and a scrape
// collects them all and serialises them in the Prometheus text format, plain or gzip.
#pragma once

#include <prometheus/collectable.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace fastapi_exporter {

// A piece of the exposition: its text, or for gzip bodies the text as raw DEFLATE data
// (RFC 1951) in non-final blocks ending on a byte boundary, with the CRC-32 and length of the
// text. Deflated pieces compressed apart join into one deflate stream (each refers to no byte
// before it), so cached pieces of unchanged metrics and fresh ones make a single gzip member
// that every reader takes (curl rejects a body of several members).
struct ExpositionPiece {
  std::string bytes;
  uint32_t crc32 = 0;      // of the text (deflated pieces only)
  uint64_t text_size = 0;  // bytes of text (deflated pieces only)
};
using ExpositionPieces = std::vector<std::shared_ptr<const ExpositionPiece>>;

// `text` deflated as above, by ISA-L's igzip at level 1: on the 9.5 MB text of 5,600 request
// label sets, 4.3 ms and 696 kB, where zlib took 77 ms (level 6, the daemon's former
// choice) or 20 ms (level 1) and libdeflate 12.6 ms (level 1); see docs/BENCHMARKS.md.
// Thread-safe (calls run one at a time: they share one compressor's buffers).
ExpositionPiece DeflatePiece(std::string_view text);

// A gzip file (RFC 1952) of deflated pieces: a header, their bytes, the final block and the
// trailer, as strings to send one after another (the pieces' own bytes are not copied).
std::vector<std::shared_ptr<const std::string>> GzipBody(const ExpositionPieces& pieces);

// The gzip file of `text` in one string.
std::string GzipCompress(std::string_view text);

// One collector of the exposition: a piece of /metrics, rendered in the Prometheus text
// format on each scrape (the process collector, the request metrics of the access logs and
// the wire, the exporter's own metrics, ...). Text, not prometheus-cpp's MetricFamily: the
// request series are too many to go through Collect() on every scrape (see
// access_log/request_metrics.hpp); a prometheus-cpp Collectable joins as a
// CollectableCollector. A collector may throw (std::exception) to say it has nothing valid to
// give this time; see Exposition.
class Collector {
 public:
  virtual ~Collector() = default;
  virtual void RenderText(std::string& out) const = 0;
  // Appends the text of RenderText as pieces, deflated (DeflatePiece) when `deflate`. The
  // default renders (and deflates) everything on every call; a collector may give pieces it
  // kept while their text did not change, as long as every change made before the call
  // began shows.
  virtual void Serve(bool deflate, ExpositionPieces& out) const;
};

// A prometheus-cpp Collectable (a Registry of self-metrics, ...) as a Collector: collected and
// serialised on every call.
class CollectableCollector final : public Collector {
 public:
  explicit CollectableCollector(std::shared_ptr<prometheus::Collectable> collectable);
  void RenderText(std::string& out) const override;

 private:
  std::shared_ptr<prometheus::Collectable> collectable_;
};

// Every collector, by name, rendered one after another into /metrics, each timed, like
// node_exporter's node_scrape_collector_duration_seconds and _success: after them come
//   fastapi_exporter_collector_duration_seconds{collector="NAME"}  (gauge, seconds: how long
//     its part of this scrape took, deflating included)
//   fastapi_exporter_collector_success{collector="NAME"}           (gauge, 1 or 0)
// A collector that throws gives 0 and none of its text; the rest of the page is served, and
// the failure is logged once (warning with the exception's message), its recovery once too.
class Exposition {
 public:
  // Adds a collector; `name` is its `collector` label. A name already registered throws
  // std::invalid_argument (two series of one label set would make an invalid page).
  void Register(std::string name, std::shared_ptr<Collector> collector);
  void Register(std::string name, std::shared_ptr<prometheus::Collectable> collectable);

  // The names registered, in the order they render.
  std::vector<std::string> Names() const;

  // The whole text. Thread-safe; each collector serialises its own state.
  std::string Render() const;

  // A response body, as strings to send one after another: Render()'s text, or with `gzip`
  // a gzip file of it. Collectors serve what they kept of unchanged metrics
  // (Collector::Serve). Thread-safe.
  std::vector<std::shared_ptr<const std::string>> Serve(bool gzip) const;

  // Empty, or why not healthy when a collector failed each of its last `renders` renders
  // (Render or Serve), e.g. "collector process failed its last 3 renders: cannot ...", for
  // /healthz. Thread-safe.
  std::string Unhealthy(int renders) const;

 private:
  struct Entry {
    std::string name;
    std::shared_ptr<Collector> collector;
  };
  struct Failure {
    int renders = 0;  // failed in a row
    std::string message;
  };
  mutable std::mutex mutex_;  // entries_, failing_
  std::vector<Entry> entries_;
  // The collectors whose last render threw, by name: a failure and a recovery are logged
  // once each.
  mutable std::map<std::string, Failure> failing_;
};

}  // namespace fastapi_exporter
