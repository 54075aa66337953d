// <prefix>_requests_total and <prefix>_request_duration_seconds of every service.
//
// Not built on prometheus-cpp's Counter and Histogram: measured here, Registry::Collect plus
// TextSerializer took 37 ms to render 10,000 series (Collect alone 20 ms: it copies every
// label of every series into a new vector on each scrape), and its Histogram takes a mutex on
// every observation. These series change only by their values, so each keeps its label text
// rendered once, and a scrape appends values to it.
//
// One thread writes (the access-log thread); scrapes read concurrently. Values are relaxed
// atomics written by that single writer; the list of series is guarded by a mutex taken on
// the write side only when a series is created.
//
// Gzip scrapes keep what they rendered and deflated while it does not change. Every request
// adds one to its series' `requests`, stored last with release, so the sum of `requests` over
// a set of series grows with every request recorded into it: a scrape reads it (acquire)
// over a block of kBlockSeries label sets before rendering the block, serves the bytes it
// kept when the sum did not move, and otherwise renders only that block, seeing every value
// stored before the sums it read. The per-line path does no more than before. With 5,600
// label sets (~10 MB of text) that is the difference between a lookup and 70 ms of rendering
// and compressing on every scrape.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "collectors/access_log/request.hpp"
#include "collectors/exposition.hpp"

namespace fastapi_exporter::access_log {

class RequestStore final : public Collector {
 public:
  explicit RequestStore(std::string metric_prefix);
  void SetMetricPrefix(const std::string& metric_prefix);

  // Appends both families in the Prometheus text format (nothing if there is no series).
  void RenderText(std::string& out) const override;
  // The same text as pieces. Plain: one piece, rendered on every call. Deflated: the counter
  // lines of each block, then the histogram lines of each block (the first of each with its
  // family's HELP and TYPE); a block whose sum of requests did not move since an earlier
  // call gives the same pieces again. Concurrent calls render a changed block once.
  void Serve(bool deflate, ExpositionPieces& out) const override;

  // Label sets per block: small enough that a few new lines re-render and deflate a small part
  // of the text (~0.2 ms for a block of histograms), large enough that deflating blocks apart
  // costs few bytes (5,600 label sets: 22 blocks, 394 kB where the whole text deflates to 392).
  static constexpr std::size_t kBlockSeries = 256;

  struct Series {
    const void* owner = nullptr;  // the RequestMetrics that created it
    std::string labels;           // service="...",method="...",path="...",status_code="..."
    const std::vector<double>* bounds = nullptr;
    const std::vector<std::string>* bound_texts = nullptr;
    std::atomic<uint64_t> requests{0};       // stored last of a request's values, with release
    std::atomic<bool> has_histogram{false};  // a request with a duration was recorded
    std::unique_ptr<std::atomic<uint64_t>[]>
        bucket_counts;  // per bucket, not cumulative; +Inf last
    std::atomic<double> duration_sum{0};
    std::atomic<uint64_t> duration_count{0};
    std::size_t block = 0;  // set at creation, never changes
  };

  // Calls `visit` with every series, in creation order, while holding the lock that guards
  // the list (the writer waits for it only to add or remove a series): for readers of the
  // values that need no text (the live view's sampler).
  void ForEachSeries(const std::function<void(const Series&)>& visit) const;

  // Called by the writer thread only.
  Series& AddSeries(const void* owner, std::string labels, const std::vector<double>* bounds,
                    const std::vector<std::string>* bound_texts);
  // Drops every series of one owner (a service removed or reconfigured).
  void RemoveSeriesOf(const void* owner);

 private:
  // Appends the counter (or histogram) lines of series_[begin, end).
  void RenderCounters(std::string& out, std::size_t begin, std::size_t end) const;
  void RenderHistograms(std::string& out, std::size_t begin, std::size_t end) const;
  std::string RequestsHeader() const;
  std::string DurationHeader() const;

  std::string requests_name_;
  std::string duration_name_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Series>> series_;   // stable addresses, in creation order
  std::size_t blocks_ = 0;                        // guarded by mutex_
  std::size_t last_block_series_ = kBlockSeries;  // series ever put in the last block
  uint64_t layout_ = 0;  // bumped when every block's text changes: prefix, removals

  // What Serve kept, guarded by serve_mutex_, held while serving so that concurrent scrapes
  // render and deflate a changed block once.
  struct Block {
    uint64_t requests = 0;  // the sum of its series' requests when its pieces were rendered
    std::shared_ptr<const ExpositionPiece> counters, histograms;  // deflated; null: none yet
  };
  mutable std::mutex serve_mutex_;
  mutable uint64_t served_layout_ = ~uint64_t(0);
  mutable std::vector<Block> served_;
  mutable std::string scratch_;  // the text of the block being deflated
};

// The requests of one service, recorded into a store.
class RequestMetrics {
 public:
  RequestMetrics(RequestStore& store, std::string service, std::vector<double> buckets);
  ~RequestMetrics();  // its series leave the store
  RequestMetrics(const RequestMetrics&) = delete;
  RequestMetrics& operator=(const RequestMetrics&) = delete;

  // Requests without a duration (uvicorn's access log) count in the counter only; a label set
  // shows a histogram once a request with a duration was recorded.
  void Record(HttpMethod method, uint32_t path_id, const std::string& path_label, int status,
              bool has_duration, double duration_seconds);

  uint64_t recorded() const { return recorded_; }

 private:
  RequestStore::Series& Lookup(HttpMethod method, uint32_t path_id, const std::string& path_label,
                               int status);

  RequestStore& store_;
  std::string service_;
  std::vector<double> bounds_;
  std::vector<std::string> bound_texts_;
  // Keyed by (path id, method, status).
  std::unordered_map<uint64_t, RequestStore::Series*> series_;
  uint64_t recorded_ = 0;
};

// Appends a label value escaped for the text format (backslash, double quote, newline).
void AppendEscapedLabelValue(std::string& out, std::string_view value);
// Appends a sample value as Prometheus text: integers without exponent, NaN, +Inf, -Inf.
void AppendSampleValue(std::string& out, double value);

}  // namespace fastapi_exporter::access_log
