#include "collectors/access_log/request_metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace fastapi_exporter::access_log {

void AppendEscapedLabelValue(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

void AppendSampleValue(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
    return;
  }
  if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buffer[32];
  std::to_chars_result result;
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    result = std::to_chars(buffer, buffer + sizeof buffer, int64_t(value));
  } else {
    result = std::to_chars(buffer, buffer + sizeof buffer, value);
  }
  out.append(buffer, result.ptr);
}

namespace {

void AppendUnsigned(std::string& out, uint64_t value) {
  char buffer[24];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

}  // namespace

RequestStore::RequestStore(std::string metric_prefix) {
  SetMetricPrefix(metric_prefix);
}

void RequestStore::SetMetricPrefix(const std::string& metric_prefix) {
  std::lock_guard lock(mutex_);
  requests_name_ = metric_prefix + "_requests_total";
  duration_name_ = metric_prefix + "_request_duration_seconds";
  ++layout_;
}

RequestStore::Series& RequestStore::AddSeries(const void* owner, std::string labels,
                                              const std::vector<double>* bounds,
                                              const std::vector<std::string>* bound_texts) {
  auto added = std::make_unique<Series>();
  Series& series = *added;
  series.owner = owner;
  series.labels = std::move(labels);
  series.bounds = bounds;
  series.bound_texts = bound_texts;
  series.bucket_counts = std::make_unique<std::atomic<uint64_t>[]>(bounds->size() + 1);
  std::lock_guard lock(mutex_);
  // Only ever the last block grows, so that each block is a contiguous run of series_.
  if (last_block_series_ == kBlockSeries) {
    ++blocks_;
    last_block_series_ = 0;
  }
  ++last_block_series_;
  series.block = blocks_ - 1;
  series_.push_back(std::move(added));
  return series;
}

void RequestStore::RemoveSeriesOf(const void* owner) {
  std::lock_guard lock(mutex_);
  std::erase_if(series_, [owner](const auto& series) { return series->owner == owner; });
  ++layout_;
}

namespace {

// Appends `name{labels` and, when given, `,le="bound"`, then `} `: a sample line up to its value.
void AppendSampleStart(std::string& out, std::string_view name, std::string_view suffix,
                       const std::string& labels, std::string_view le = {}) {
  out += name;
  out += suffix;
  out += '{';
  out += labels;
  if (!le.empty()) {
    out += ",le=\"";
    out += le;
    out += '"';
  }
  out += "} ";
}

}  // namespace

std::string RequestStore::RequestsHeader() const {
  return "# HELP " + requests_name_ +
         " HTTP requests served, as the service's access log, journal or traffic shows them.\n" +
         "# TYPE " + requests_name_ + " counter\n";
}

std::string RequestStore::DurationHeader() const {
  return "# HELP " + duration_name_ +
         " HTTP request duration in seconds, as the service's access log, journal or traffic shows "
         "it.\n" +
         "# TYPE " + duration_name_ + " histogram\n";
}

void RequestStore::RenderCounters(std::string& out, std::size_t begin, std::size_t end) const {
  for (std::size_t i = begin; i < end; ++i) {
    const Series& series = *series_[i];
    AppendSampleStart(out, requests_name_, "", series.labels);
    AppendUnsigned(out, series.requests.load(std::memory_order_relaxed));
    out += '\n';
  }
}

void RequestStore::RenderHistograms(std::string& out, std::size_t begin, std::size_t end) const {
  for (std::size_t s = begin; s < end; ++s) {
    const Series& series = *series_[s];
    if (!series.has_histogram.load(std::memory_order_acquire)) continue;
    uint64_t cumulative = 0;
    const std::size_t buckets = series.bounds->size();
    for (std::size_t i = 0; i <= buckets; ++i) {
      cumulative += series.bucket_counts[i].load(std::memory_order_relaxed);
      AppendSampleStart(out, duration_name_, "_bucket", series.labels,
                        i < buckets ? std::string_view((*series.bound_texts)[i]) : "+Inf");
      AppendUnsigned(out, cumulative);
      out += '\n';
    }
    AppendSampleStart(out, duration_name_, "_sum", series.labels);
    AppendSampleValue(out, series.duration_sum.load(std::memory_order_relaxed));
    out += '\n';
    AppendSampleStart(out, duration_name_, "_count", series.labels);
    AppendUnsigned(out, series.duration_count.load(std::memory_order_relaxed));
    out += '\n';
  }
}

void RequestStore::ForEachSeries(const std::function<void(const Series&)>& visit) const {
  std::lock_guard lock(mutex_);
  for (const auto& series : series_) visit(*series);
}

void RequestStore::RenderText(std::string& out) const {
  std::lock_guard lock(mutex_);
  if (series_.empty()) return;
  out.reserve(out.size() + series_.size() * 160);
  out += RequestsHeader();
  RenderCounters(out, 0, series_.size());
  out += DurationHeader();
  RenderHistograms(out, 0, series_.size());
}

void RequestStore::Serve(bool deflate, ExpositionPieces& out) const {
  if (!deflate) {
    // Plain text is not kept: Prometheus always asks for gzip, and keeping the text (~10 MB
    // for 5,600 label sets) for an occasional reader costs more memory than rendering it
    // again costs CPU.
    Collector::Serve(false, out);
    return;
  }
  std::lock_guard serving(serve_mutex_);
  // Held throughout, deflating included, so that the blocks served are those of one state
  // of series_. The writer waits for it only to add a series, while a scrape renders changed
  // blocks (~0.2 ms per block of 256 label sets); counting into existing series never waits.
  std::lock_guard lock(mutex_);
  if (series_.empty()) return;
  if (served_layout_ != layout_) {
    served_.clear();
    served_layout_ = layout_;
  }
  served_.resize(blocks_);
  // Where each block's run of series begins (blocks only grow at the end and removal keeps
  // the order, so a block's series are contiguous in series_; a block may be left empty), and
  // the sum of its series' requests, read before any of their values are.
  std::vector<std::size_t> begins(blocks_ + 1, series_.size());
  std::vector<uint64_t> requests(blocks_, 0);
  for (std::size_t i = series_.size(); i-- > 0;) {
    const Series& series = *series_[i];
    begins[series.block] = i;
    requests[series.block] += series.requests.load(std::memory_order_acquire);
  }
  for (std::size_t k = blocks_; k-- > 0;) begins[k] = std::min(begins[k], begins[k + 1]);
  for (std::size_t b = 0; b < served_.size(); ++b) {
    Block& block = served_[b];
    if (block.counters && block.requests == requests[b]) continue;
    block.requests = requests[b];
    // Rendered into one buffer kept from scrape to scrape and deflated from there: allocating
    // ~10 MB of text afresh on each scrape that changed everything cost more (page faults)
    // than rendering it.
    scratch_.clear();
    if (b == 0) scratch_ += RequestsHeader();
    RenderCounters(scratch_, begins[b], begins[b + 1]);
    block.counters = std::make_shared<const ExpositionPiece>(DeflatePiece(scratch_));
    scratch_.clear();
    if (b == 0) scratch_ += DurationHeader();
    RenderHistograms(scratch_, begins[b], begins[b + 1]);
    block.histograms = std::make_shared<const ExpositionPiece>(DeflatePiece(scratch_));
  }
  for (const Block& block : served_) out.push_back(block.counters);
  for (const Block& block : served_) out.push_back(block.histograms);
}

RequestMetrics::RequestMetrics(RequestStore& store, std::string service,
                               std::vector<double> buckets)
    : store_(store), service_(std::move(service)), bounds_(std::move(buckets)) {
  for (double bound : bounds_) {
    std::string text;
    AppendSampleValue(text, bound);
    bound_texts_.push_back(std::move(text));
  }
}

RequestMetrics::~RequestMetrics() {
  store_.RemoveSeriesOf(this);
}

RequestStore::Series& RequestMetrics::Lookup(HttpMethod method, uint32_t path_id,
                                             const std::string& path_label, int status) {
  const uint64_t key = (uint64_t(path_id) << 16) | (uint64_t(method) << 10) | uint64_t(status);
  auto [it, inserted] = series_.try_emplace(key, nullptr);
  if (inserted) {
    std::string labels = "service=\"";
    AppendEscapedLabelValue(labels, service_);
    labels += "\",method=\"";
    labels += HttpMethodName(method);
    labels += "\",path=\"";
    AppendEscapedLabelValue(labels, path_label);
    labels += "\",status_code=\"";
    labels += std::to_string(status);
    labels += '"';
    it->second = &store_.AddSeries(this, std::move(labels), &bounds_, &bound_texts_);
  }
  return *it->second;
}

void RequestMetrics::Record(HttpMethod method, uint32_t path_id, const std::string& path_label,
                            int status, bool has_duration, double duration_seconds) {
  RequestStore::Series& series = Lookup(method, path_id, path_label, status);
  // One writer: load-and-store is enough, and cheaper than a read-modify-write.
  if (has_duration) {
    const auto bucket = std::size_t(
        std::lower_bound(bounds_.begin(), bounds_.end(), duration_seconds) - bounds_.begin());
    auto& count = series.bucket_counts[bucket];
    count.store(count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    series.duration_sum.store(
        series.duration_sum.load(std::memory_order_relaxed) + duration_seconds,
        std::memory_order_relaxed);
    series.duration_count.store(series.duration_count.load(std::memory_order_relaxed) + 1,
                                std::memory_order_relaxed);
    // Published after its first values: a scrape then shows the histogram whole.
    if (!series.has_histogram.load(std::memory_order_relaxed)) {
      series.has_histogram.store(true, std::memory_order_release);
    }
  }
  // Last, with release: a scrape that reads this value (acquire) sees every value above,
  // which is what lets it keep a block's bytes while its sum of requests does not move.
  // (A plain store on x86 and arm64's stlr: no dearer than the relaxed store it replaces.)
  series.requests.store(series.requests.load(std::memory_order_relaxed) + 1,
                        std::memory_order_release);
  ++recorded_;
}

}  // namespace fastapi_exporter::access_log
