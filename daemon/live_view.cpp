#include "daemon/live_view.hpp"

#include <civetweb.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <set>

#include "web/assets.hpp"

namespace fastapi_exporter {
namespace {

// The process collector's metric names (collectors/process/process_collector.cpp).
constexpr std::string_view kCpuSeconds = "process_cpu_seconds_total";
constexpr std::string_view kResidentBytes = "process_resident_memory_bytes";

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// One sample line of the text format: its name, labels and value. The text is the
// exporter's own rendering (request_metrics.cpp, prometheus-cpp's serializer), so escapes
// are \\, \" and \n only; a line that does not parse is skipped.
struct Sample {
  std::string_view name;
  std::vector<std::pair<std::string_view, std::string>> labels;
  double value = 0;
  const std::string* Label(std::string_view key) const {
    for (const auto& [name, value] : labels) {
      if (name == key) return &value;
    }
    return nullptr;
  }
};

bool ParseSample(std::string_view line, Sample& sample) {
  sample.labels.clear();
  const std::size_t name_end = line.find_first_of("{ ");
  if (name_end == std::string_view::npos) return false;
  sample.name = line.substr(0, name_end);
  std::size_t i = name_end;
  if (line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const std::size_t equals = line.find('=', i);
      if (equals == std::string_view::npos || equals + 1 >= line.size() ||
          line[equals + 1] != '"') {
        return false;
      }
      std::string_view key = line.substr(i, equals - i);
      std::string value;
      std::size_t j = equals + 2;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] == '\\' && j + 1 < line.size()) {
          ++j;
          value += line[j] == 'n' ? '\n' : line[j];
        } else {
          value += line[j];
        }
      }
      if (j >= line.size()) return false;
      sample.labels.emplace_back(key, std::move(value));
      i = j + 1;
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return false;
    ++i;  // '}'
  }
  while (i < line.size() && line[i] == ' ') ++i;
  const std::string value(line.substr(i, line.find(' ', i) - i));
  char* end = nullptr;
  sample.value = std::strtod(value.c_str(), &end);  // also +Inf, -Inf, NaN
  return end != value.c_str();
}

// JSON text. Written by hand: the build has no JSON writer (simdjson only parses), and this
// is all it takes. Beyond what JSON requires, <, > and & are escaped too, so that no reader
// that mistakes the answer for HTML finds markup in it.
void AppendJsonString(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (byte < 0x20 || c == '<' || c == '>' || c == '&' || byte == 0x7f) {
          out += "\\u00";
          out += kHex[byte >> 4];
          out += kHex[byte & 0xf];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void AppendJsonNumber(std::string& out, double value) {
  if (!std::isfinite(value)) {
    out += "null";  // NaN (no data) and infinities have no JSON number
    return;
  }
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

// Valid UTF-8 as is, anything else as \xNN (the Logger Stream shows what the log held).
std::string Printable(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    const auto byte = static_cast<unsigned char>(text[i]);
    std::size_t length = byte < 0x80         ? 1
                         : (byte >> 5) == 6  ? 2
                         : (byte >> 4) == 14 ? 3
                         : (byte >> 3) == 30 ? 4
                                             : 0;
    bool valid = length > 0 && i + length <= text.size();
    for (std::size_t k = 1; valid && k < length; ++k) {
      valid = (static_cast<unsigned char>(text[i + k]) >> 6) == 2;
    }
    if (valid && byte >= 0x20 && byte != 0x7f) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
      ++i;
    }
  }
  return out;
}

std::string QueryValue(std::string_view query, const char* name) {
  char value[512];
  const int length = mg_get_var(query.data(), query.size(), name, value, sizeof value);
  return length >= 0 ? std::string(value, std::size_t(length)) : std::string();
}

double QueryNumber(std::string_view query, const char* name, double fallback) {
  const std::string text = QueryValue(query, name);
  if (text.empty()) return fallback;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  return end && *end == '\0' && std::isfinite(value) ? value : fallback;
}

const char* LevelOf(int status) {
  // The access line's level as the example app and most middlewares write it.
  return status >= 500 ? "ERROR" : status >= 400 ? "WARNING" : "INFO";
}

void AppendValues(std::string& out, const history::PanelValues& values, double window) {
  out += "{\"t\":";
  AppendJsonNumber(out, values.t);
  out += ",\"requests_per_second\":";
  AppendJsonNumber(out, values.requests_per_second);
  out += ",\"requests\":";
  AppendJsonNumber(out, values.requests_per_second * window);
  out += ",\"errors_4xx_per_second\":";
  AppendJsonNumber(out, values.errors_4xx_per_second);
  out += ",\"errors_5xx_per_second\":";
  AppendJsonNumber(out, values.errors_5xx_per_second);
  out += ",\"average_duration_seconds\":";
  AppendJsonNumber(out, values.average_duration_seconds);
  out += ",\"p60_seconds\":";
  AppendJsonNumber(out, values.p60_seconds);
  out += ",\"p95_seconds\":";
  AppendJsonNumber(out, values.p95_seconds);
  out += ",\"cpu_percent\":";
  AppendJsonNumber(out, values.cpu_percent);
  out += ",\"resident_bytes\":";
  AppendJsonNumber(out, values.resident_bytes);
  out += ",\"status_classes_per_second\":{";
  for (std::size_t c = 0; c < 5; ++c) {
    if (c) out += ',';
    out += '"';
    out += char('1' + c);
    out += "xx\":";
    AppendJsonNumber(out, values.by_class_per_second[c]);
  }
  out += "}}";
}

}  // namespace

LiveView::LiveView(LiveSources sources,
                   std::shared_ptr<const history::RecentLinesRegistry> recent_lines,
                   LiveViewOptions options)
    : sources_(std::move(sources)), recent_lines_(std::move(recent_lines)), options_(options) {}

LiveView::~LiveView() {
  Stop();
}

void LiveView::Configure(const config::Config& config) {
  std::lock_guard lock(mutex_);
  services_.clear();
  for (const auto& service : config.services) services_.push_back(service.name);
  options_.metric_prefix = config.metric_prefix;
  options_.telemetry_path = config.web.telemetry_path;
  std::erase_if(histories_, [&](const auto& entry) {
    return std::find(services_.begin(), services_.end(), entry.first) == services_.end();
  });
  for (const auto& service : config.services) {
    auto& history = histories_[service.name];
    if (!history) {
      history = std::make_shared<history::ServiceHistory>(options_.history, service.buckets);
    }
  }
}

void LiveView::Start() {
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] {
    const auto interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(options_.history.interval_seconds));
    auto next = std::chrono::steady_clock::now();
    std::unique_lock lock(stop_mutex_);
    while (!stop_) {
      lock.unlock();
      try {
        SampleNow();
      } catch (const std::exception& error) {
        spdlog::warn("live view: cannot take a sample: {}", error.what());
      }
      lock.lock();
      next += interval;
      stop_cv_.wait_until(lock, next, [this] { return stop_; });
    }
  });
}

void LiveView::Stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(stop_mutex_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  thread_.join();
}

namespace {

// Sums samples into each service's totals as the page's queries sum series (`sum by (le)`
// for the buckets), whichever way they were read.
class TotalsBuilder {
 public:
  history::Totals& Service(const std::string& service) { return totals_[service]; }
  history::RouteTotals& Route(const std::string& service, const std::string& route) {
    return totals_[service].routes[route];
  }
  void AddRequests(const std::string& service, const std::string& route, std::string_view status,
                   double value) {
    history::Totals& totals = Service(service);
    totals.requests += value;
    Route(service, route).requests += value;
    if (status.size() == 3 && status[0] >= '1' && status[0] <= '5') {
      totals.by_class[std::size_t(status[0] - '1')] += value;
    }
  }
  void AddDuration(const std::string& service, const std::string& route, double sum, double count) {
    history::Totals& totals = Service(service);
    history::RouteTotals& route_totals = Route(service, route);
    totals.duration_sum += sum;
    route_totals.duration_sum += sum;
    totals.duration_count += count;
    route_totals.duration_count += count;
  }
  void AddBucket(const std::string& service, const std::string& route, double bound,
                 double cumulative) {
    Route(service, route);
    buckets_[service][bound] += cumulative;
    route_buckets_[service][route][bound] += cumulative;
  }
  std::map<std::string, history::Totals> Finish() {
    for (auto& [service, service_totals] : totals_) {
      for (const auto& [bound, value] : buckets_[service]) {
        if (!std::isinf(bound)) service_totals.bounds.push_back(bound);
        service_totals.buckets.push_back(value);
      }
      for (auto& [route, route_totals] : service_totals.routes) {
        for (const auto& [bound, value] : route_buckets_[service][route]) {
          route_totals.buckets.push_back(value);
        }
      }
    }
    return std::move(totals_);
  }

 private:
  std::map<std::string, history::Totals> totals_;
  // Bucket counts by service (and route), bound.
  std::map<std::string, std::map<double, double>> buckets_;
  std::map<std::string, std::map<std::string, std::map<double, double>>> route_buckets_;
};

std::string RouteOf(const Sample& sample) {
  const std::string* method = sample.Label("method");
  const std::string* path = sample.Label("path");
  return (method ? *method : "") + " " + (path ? *path : "");
}

}  // namespace

std::map<std::string, history::Totals> LiveView::ReadTotals(std::string_view text,
                                                            const std::string& metric_prefix) {
  const std::string requests = metric_prefix + "_requests_total";
  const std::string duration = metric_prefix + "_request_duration_seconds";
  const std::string bucket = duration + "_bucket";
  const std::string sum = duration + "_sum";
  const std::string count = duration + "_count";
  TotalsBuilder totals;
  Sample sample;
  while (!text.empty()) {
    const std::size_t newline = text.find('\n');
    const std::string_view line = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view() : text.substr(newline + 1);
    if (line.empty() || line[0] == '#' || !ParseSample(line, sample)) continue;
    const bool is_request = sample.name == requests;
    const bool is_bucket = sample.name == bucket;
    const bool is_sum = sample.name == sum;
    const bool is_count = sample.name == count;
    const bool is_cpu = sample.name == kCpuSeconds;
    const bool is_rss = sample.name == kResidentBytes;
    if (!(is_request || is_bucket || is_sum || is_count || is_cpu || is_rss)) continue;
    const std::string* service = sample.Label("service");
    if (!service) continue;
    if (is_cpu || is_rss) {
      history::Totals& service_totals = totals.Service(*service);
      double& value = is_cpu ? service_totals.cpu_seconds : service_totals.resident_bytes;
      value = std::isnan(value) ? sample.value : value + sample.value;
      continue;
    }
    const std::string route = RouteOf(sample);
    if (is_request) {
      const std::string* status = sample.Label("status_code");
      totals.AddRequests(*service, route, status ? *status : "", sample.value);
    } else if (is_sum) {
      totals.AddDuration(*service, route, sample.value, 0);
    } else if (is_count) {
      totals.AddDuration(*service, route, 0, sample.value);
    } else if (const std::string* le = sample.Label("le")) {
      totals.AddBucket(*service, route, std::strtod(le->c_str(), nullptr), sample.value);
    } else {
      totals.Route(*service, route);
    }
  }
  return totals.Finish();
}

std::map<std::string, history::Totals> LiveView::ReadTotals(const LiveSources& sources) {
  TotalsBuilder totals;
  if (sources.requests) {
    // The labels of a series are its own rendering (request_metrics.cpp), parsed as a sample
    // line; one buffer for every series.
    std::string line;
    Sample sample;
    sources.requests->ForEachSeries([&](const access_log::RequestStore::Series& series) {
      line.assign("s{").append(series.labels).append("} 0");
      if (!ParseSample(line, sample)) return;
      const std::string* service = sample.Label("service");
      if (!service) return;
      const std::string route = RouteOf(sample);
      const std::string* status = sample.Label("status_code");
      // Acquire, as a scrape reads it: the values stored before it are seen.
      const auto requests = series.requests.load(std::memory_order_acquire);
      totals.AddRequests(*service, route, status ? *status : "", double(requests));
      if (!series.has_histogram.load(std::memory_order_acquire)) return;
      uint64_t cumulative = 0;
      const std::size_t bounds = series.bounds->size();
      for (std::size_t i = 0; i <= bounds; ++i) {
        cumulative += series.bucket_counts[i].load(std::memory_order_relaxed);
        totals.AddBucket(*service, route,
                         i < bounds ? (*series.bounds)[i] : std::numeric_limits<double>::infinity(),
                         double(cumulative));
      }
      totals.AddDuration(*service, route, series.duration_sum.load(std::memory_order_relaxed),
                         double(series.duration_count.load(std::memory_order_relaxed)));
    });
  }
  if (sources.processes) {
    for (const auto& [service, usage] : sources.processes->ReadUsage()) {
      history::Totals& service_totals = totals.Service(service);
      service_totals.cpu_seconds = usage.cpu_seconds;
      service_totals.resident_bytes = usage.resident_bytes;
    }
  }
  return totals.Finish();
}

void LiveView::SampleNow() {
  const double now = UnixNow();
  std::map<std::string, history::Totals> totals = ReadTotals(sources_);
  std::lock_guard lock(mutex_);
  for (auto& [service, history] : histories_) {
    history->Add(now, totals[service]);
  }
}

std::vector<std::shared_ptr<const history::ServiceHistory>> LiveView::Selected(
    const std::string& service) const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<const history::ServiceHistory>> selected;
  for (const auto& [name, history] : histories_) {
    if (service.empty() || name == service) selected.push_back(history);
  }
  return selected;
}

std::size_t LiveView::memory_bytes() const {
  std::size_t bytes = 0;
  for (const auto& history : Selected("")) bytes += history->memory_bytes();
  for (const std::string& name : recent_lines_->Names()) {
    if (const auto ring = recent_lines_->Find(name)) bytes += ring->memory_bytes();
  }
  return bytes;
}

std::string LiveView::ServicesJson() const {
  std::vector<std::string> services;
  std::string telemetry_path;
  {
    std::lock_guard lock(mutex_);
    services = services_;
    telemetry_path = options_.telemetry_path;
  }
  std::string out = "{\"now\":";
  AppendJsonNumber(out, UnixNow());
  out += ",\"interval_seconds\":";
  AppendJsonNumber(out, options_.history.interval_seconds);
  out += ",\"keep_seconds\":";
  AppendJsonNumber(out, options_.history.keep_seconds);
  out += ",\"telemetry_path\":";
  AppendJsonString(out, telemetry_path);
  out += ",\"services\":[";
  bool first = true;
  for (const std::string& service : services) {
    const auto selected = Selected(service);
    if (selected.empty()) continue;
    if (!first) out += ',';
    first = false;
    out += "{\"name\":";
    AppendJsonString(out, service);
    out += ",\"recent_lines\":";
    out += recent_lines_->Find(service) ? "true" : "false";
    out += ",\"samples\":";
    AppendJsonNumber(out, double(selected[0]->samples()));
    out += ",\"oldest\":";
    AppendJsonNumber(out, selected[0]->oldest_time());
    out += ",\"newest\":";
    AppendJsonNumber(out, selected[0]->newest_time());
    out += '}';
  }
  out += "]}\n";
  return out;
}

std::string LiveView::SeriesJson(std::string_view query) const {
  const std::string service = QueryValue(query, "service");
  const auto selected_owned = Selected(service);
  std::vector<const history::ServiceHistory*> selected;
  for (const auto& history : selected_owned) selected.push_back(history.get());
  const double interval = options_.history.interval_seconds;
  const double keep = options_.history.keep_seconds;
  const double range = std::clamp(QueryNumber(query, "range", 300), 4 * interval, keep);
  double newest = history::kNaN;
  for (const auto* history : selected) {
    const double t = history->newest_time();
    if (!std::isnan(t) && !(t <= newest)) newest = t;
  }
  const double at = QueryNumber(query, "at", std::isnan(newest) ? UnixNow() : newest);
  // The stat panels: the last minute (at least four samples), as $__rate_interval would
  // be for a 15 s scrape.
  const double window_default = std::max(4 * interval, std::min(range, 60.0));
  const double window = std::clamp(QueryNumber(query, "window", window_default), interval, keep);
  // Up to 240 points over the range, each a rate over 4 samples or its step.
  const double step = std::max(interval, std::ceil(range / 240 / interval) * interval);
  const double point_window = std::max(4 * interval, step);

  std::string out = "{\"service\":";
  AppendJsonString(out, service);
  out += ",\"range_seconds\":";
  AppendJsonNumber(out, range);
  out += ",\"step_seconds\":";
  AppendJsonNumber(out, step);
  out += ",\"point_window_seconds\":";
  AppendJsonNumber(out, point_window);
  out += ",\"window_seconds\":";
  AppendJsonNumber(out, window);
  out += ",\"current\":";
  AppendValues(out, history::ServiceHistory::ValuesAt(selected, at, window), window);
  out += ",\"points\":[";
  if (!std::isnan(newest)) {
    bool first = true;
    for (double t = at - std::floor(range / step) * step; t <= at + 1e-6; t += step) {
      if (!first) out += ',';
      first = false;
      AppendValues(out, history::ServiceHistory::ValuesAt(selected, t, point_window), point_window);
    }
  }
  out += "],\"top_routes\":[";
  bool first = true;
  for (const history::RouteRate& route : history::ServiceHistory::TopRoutes(selected, range)) {
    if (!first) out += ',';
    first = false;
    out += "{\"route\":";
    AppendJsonString(out, Printable(route.route));
    out += ",\"requests_per_second\":";
    AppendJsonNumber(out, route.requests_per_second);
    out += ",\"average_duration_seconds\":";
    AppendJsonNumber(out, route.average_duration_seconds);
    out += ",\"p95_seconds\":";
    AppendJsonNumber(out, route.p95_seconds);
    out += '}';
  }
  out += "]}\n";
  return out;
}

std::string LiveView::LogsJson(std::string_view query) const {
  const std::string service = QueryValue(query, "service");
  const auto limit = std::size_t(std::clamp(QueryNumber(query, "limit", 200), 1.0, 10000.0));
  std::string filter = QueryValue(query, "filter");
  std::transform(filter.begin(), filter.end(), filter.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  struct Line {
    const std::string* service;
    history::RecentLine line;
  };
  std::vector<std::string> names;
  {
    std::lock_guard lock(mutex_);
    names = services_;
  }
  std::vector<Line> lines;
  for (const std::string& name : names) {
    if (!service.empty() && name != service) continue;
    const auto ring = recent_lines_->Find(name);
    if (!ring) continue;
    for (const history::RecentLine& line : ring->Newest(ring->capacity())) {
      lines.push_back({&name, line});
    }
  }
  std::stable_sort(lines.begin(), lines.end(),
                   [](const Line& a, const Line& b) { return a.line.time > b.line.time; });
  std::string out = "{\"lines\":[";
  std::size_t shown = 0;
  std::string haystack;
  for (const Line& entry : lines) {
    if (shown == limit) break;
    const history::RecentLine& line = entry.line;
    const std::string path = Printable(line.Path());
    const char* level = LevelOf(line.status);
    if (!filter.empty()) {
      haystack = *entry.service + " " + level + " " + std::string(line.Method()) + " " + path +
                 " " + std::to_string(line.status);
      std::transform(haystack.begin(), haystack.end(), haystack.begin(),
                     [](unsigned char c) { return char(std::tolower(c)); });
      if (haystack.find(filter) == std::string::npos) continue;
    }
    if (shown++) out += ',';
    out += "{\"time\":";
    AppendJsonNumber(out, line.time);
    out += ",\"service\":";
    AppendJsonString(out, *entry.service);
    out += ",\"level\":";
    AppendJsonString(out, level);
    out += ",\"method\":";
    AppendJsonString(out, Printable(line.Method()));
    out += ",\"path\":";
    AppendJsonString(out, path);
    out += ",\"path_cut\":";
    out += line.path_cut ? "true" : "false";
    out += ",\"status\":";
    AppendJsonNumber(out, line.status);
    out += ",\"duration_seconds\":";
    AppendJsonNumber(out,
                     line.duration_seconds < 0 ? history::kNaN : double(line.duration_seconds));
    out += '}';
  }
  out += "]}\n";
  return out;
}

bool LiveView::Handle(std::string_view path, std::string_view query, WebResponse& response) const {
  auto asset = [&](std::string_view name, const char* type) {
    for (const web::Asset& candidate : web::Assets()) {
      if (candidate.name != name) continue;
      response.content_type = type;
      response.body = std::string(candidate.bytes);
      response.cache = name != "index.html";
      return true;
    }
    return false;
  };
  if (path == "/") {
    if (!asset("index.html", "text/html; charset=utf-8")) return false;
    // The link to the metrics works without script: the telemetry path, escaped, in place.
    std::string telemetry_path;
    {
      std::lock_guard lock(mutex_);
      telemetry_path = options_.telemetry_path;
    }
    std::string escaped;
    for (const char c : telemetry_path) {
      switch (c) {
        case '&':
          escaped += "&amp;";
          break;
        case '<':
          escaped += "&lt;";
          break;
        case '>':
          escaped += "&gt;";
          break;
        case '"':
          escaped += "&quot;";
          break;
        default:
          escaped += c;
      }
    }
    const std::string_view placeholder = "href=\"/metrics\"";
    const std::size_t at = response.body.find(placeholder);
    if (at != std::string::npos) {
      response.body.replace(at, placeholder.size(), "href=\"" + escaped + "\"");
    }
    return true;
  }
  if (path.starts_with("/static/")) {
    const std::string_view name = path.substr(8);
    if (name.ends_with(".js")) return asset(name, "text/javascript; charset=utf-8");
    if (name.ends_with(".css")) return asset(name, "text/css; charset=utf-8");
    return false;
  }
  response.content_type = "application/json";
  if (path == "/api/v1/services") {
    response.body = ServicesJson();
  } else if (path == "/api/v1/series") {
    response.body = SeriesJson(query);
  } else if (path == "/api/v1/logs") {
    response.body = LogsJson(query);
  } else {
    return false;
  }
  return true;
}

}  // namespace fastapi_exporter
