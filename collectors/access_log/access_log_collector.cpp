#include "collectors/access_log/access_log_collector.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <optional>

#include "collectors/access_log/envelope.hpp"
#include "collectors/access_log/line_parser.hpp"
#include "collectors/access_log/positions.hpp"
#include "collectors/access_log/request_metrics.hpp"
#include "collectors/access_log/route_normalizer.hpp"
#include "collectors/access_log/tailer.hpp"

namespace fastapi_exporter::access_log {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;

// The exporter's own metrics about its log sources.
struct SelfFamilies {
  explicit SelfFamilies(prometheus::Registry& registry)
      : lines(prometheus::BuildCounter()
                  .Name("fastapi_exporter_log_lines_total")
                  .Help("Lines read from access logs.")
                  .Register(registry)),
        requests(prometheus::BuildCounter()
                     .Name("fastapi_exporter_log_requests_total")
                     .Help("Access-log lines counted as requests.")
                     .Register(registry)),
        excluded(prometheus::BuildCounter()
                     .Name("fastapi_exporter_log_excluded_total")
                     .Help("Requests not counted because their path is in exclude_paths.")
                     .Register(registry)),
        parse_errors(prometheus::BuildCounter()
                         .Name("fastapi_exporter_log_parse_errors_total")
                         .Help("Access-log lines skipped, by reason.")
                         .Register(registry)),
        bytes_read(prometheus::BuildCounter()
                       .Name("fastapi_exporter_log_bytes_read_total")
                       .Help("Bytes read from access logs.")
                       .Register(registry)),
        bytes_unread(prometheus::BuildGauge()
                         .Name("fastapi_exporter_log_bytes_unread")
                         .Help("Bytes written to the access logs and not read yet.")
                         .Register(registry)),
        files(prometheus::BuildGauge()
                  .Name("fastapi_exporter_log_files")
                  .Help("Access-log files open, rotated ones still being drained included.")
                  .Register(registry)),
        rotations(prometheus::BuildCounter()
                      .Name("fastapi_exporter_log_rotations_total")
                      .Help("Access-log files rotated away (renamed, deleted or replaced).")
                      .Register(registry)),
        truncations(prometheus::BuildCounter()
                        .Name("fastapi_exporter_log_truncations_total")
                        .Help("Access-log files truncated (copytruncate), read again from 0.")
                        .Register(registry)),
        open_errors(prometheus::BuildCounter()
                        .Name("fastapi_exporter_log_open_errors_total")
                        .Help("Access-log files that matched but could not be opened.")
                        .Register(registry)),
        overflow(prometheus::BuildCounter()
                     .Name("fastapi_exporter_paths_overflow_total")
                     .Help("Requests counted under path=\"__other__\" because the service "
                           "reached max_paths.")
                     .Register(registry)) {}

  Family<Counter>& lines;
  Family<Counter>& requests;
  Family<Counter>& excluded;
  Family<Counter>& parse_errors;
  Family<Counter>& bytes_read;
  Family<Gauge>& bytes_unread;
  Family<Gauge>& files;
  Family<Counter>& rotations;
  Family<Counter>& truncations;
  Family<Counter>& open_errors;
  Family<Counter>& overflow;
};

struct ServiceState {
  std::string name;
  std::unique_ptr<RouteNormalizer> normalizer;
  std::unique_ptr<RequestMetrics> metrics;
  Counter* overflow = nullptr;
};

// One configured access log: its parser, and the handles of its self-metrics. Series are
// per glob, not per file, so rotated file names create no series.
class SourceState final : public SourceObserver {
 public:
  SourceState(const config::AccessLogConfig& config, ServiceState& service, SelfFamilies& self,
              std::size_t max_line_bytes)
      : config_(config),
        service_(service),
        max_line_bytes_(max_line_bytes),
        parser_(MakeLineParser(config)) {
    const prometheus::Labels labels{{"service", service.name}, {"source", config.path}};
    lines_ = &self.lines.Add(labels);
    requests_ = &self.requests.Add(labels);
    excluded_ = &self.excluded.Add(labels);
    bytes_read_ = &self.bytes_read.Add(labels);
    bytes_unread_ = &self.bytes_unread.Add(labels);
    files_ = &self.files.Add(labels);
    rotations_ = &self.rotations.Add(labels);
    truncations_ = &self.truncations.Add(labels);
    open_errors_ = &self.open_errors.Add(labels);
    for (std::size_t i = 1; i < kParseErrorCount; ++i) {
      auto with_reason = labels;
      with_reason["reason"] = std::string(ParseErrorName(ParseError(i)));
      parse_errors_[i] = &self.parse_errors.Add(with_reason);
    }
  }

  const config::AccessLogConfig& config() const { return config_; }
  std::size_t max_line_bytes() const { return max_line_bytes_; }

  // The hot path: one complete line (envelope already removed).
  void Handle(std::string_view line) {
    ParsedRequest request;
    const ParseError error = parser_->Parse(line, request);
    if (error != ParseError::kNone) return Reject(error, line);
    const RouteNormalizer::Result route = service_.normalizer->Normalize(request.target);
    if (route.outcome == RouteNormalizer::Outcome::kInvalid) {
      return Reject(ParseError::kInvalidPath, line);
    }
    if (route.outcome == RouteNormalizer::Outcome::kExcluded) {
      excluded_->Increment();
      return;
    }
    if (route.overflowed) service_.overflow->Increment();
    service_.metrics->Record(ParseHttpMethod(request.method), route.path_id,
                             service_.normalizer->PathLabel(route.path_id), request.status,
                             request.has_duration, request.duration_seconds);
    requests_->Increment();
  }

  void CountLine() { lines_->Increment(); }

  void Reject(ParseError error, std::string_view line) {
    parse_errors_[std::size_t(error)]->Increment();
    // The first line of each kind of problem is logged, to show what is wrong with the log;
    // the rest only count.
    bool& logged = logged_errors_[std::size_t(error)];
    if (!logged) {
      logged = true;
      spdlog::warn("{}: skipping a line ({}), further ones are only counted: {}", config_.path,
                   ParseErrorName(error), line.substr(0, 200));
    }
  }

  void OnBytesRead(uint64_t bytes) override { bytes_read_->Increment(double(bytes)); }
  void OnRotation(const std::string& path) override {
    rotations_->Increment();
    spdlog::debug("{}: rotated; reading the old file to its end", path);
  }
  void OnTruncation(const std::string& path) override {
    truncations_->Increment();
    spdlog::info("{}: truncated; reading again from the start", path);
  }
  void OnOpenError(const std::string& path, const std::string& error) override {
    open_errors_->Increment();
    spdlog::warn("cannot open access log {}: {}", path, error);
  }
  void OnState(uint64_t open_files, uint64_t unread_bytes) override {
    files_->Set(double(open_files));
    bytes_unread_->Set(double(unread_bytes));
  }

 private:
  config::AccessLogConfig config_;
  ServiceState& service_;
  std::size_t max_line_bytes_;
  std::unique_ptr<LineParser> parser_;
  Counter* lines_;
  Counter* requests_;
  Counter* excluded_;
  Counter* bytes_read_;
  Gauge* bytes_unread_;
  Gauge* files_;
  Counter* rotations_;
  Counter* truncations_;
  Counter* open_errors_;
  std::array<Counter*, kParseErrorCount> parse_errors_{};
  std::array<bool, kParseErrorCount> logged_errors_{};
};

// The lines of one file: unwraps its envelope (whose partial records belong to the file).
class FileSink final : public LineSink {
 public:
  explicit FileSink(SourceState& source)
      : source_(source),
        envelope_(MakeEnvelopeDecoder(source.config().envelope, source.max_line_bytes())) {}

  void OnLine(std::string_view record) override {
    source_.CountLine();
    if (!envelope_) return source_.Handle(record);
    std::string_view line;
    switch (envelope_->Decode(record, line)) {
      case EnvelopeDecoder::Status::kLine:
        return source_.Handle(line);
      case EnvelopeDecoder::Status::kPartial:
        return;
      case EnvelopeDecoder::Status::kInvalid:
        return source_.Reject(ParseError::kInvalidEnvelope, record);
      case EnvelopeDecoder::Status::kTooLong:
        return source_.Reject(ParseError::kLineTooLong, record);
    }
  }
  void OnLineTooLong() override {
    source_.CountLine();
    source_.Reject(ParseError::kLineTooLong, "(line over max_line_bytes)");
  }
  bool HoldsPartial() const override { return envelope_ && envelope_->HoldsPartial(); }

 private:
  SourceState& source_;
  std::unique_ptr<EnvelopeDecoder> envelope_;
};

}  // namespace

struct AccessLogCollector::Impl {
  Impl(const config::Config& config, prometheus::Registry& registry, AccessLogOptions options)
      : options(options),
        positions_file(config.positions_file),
        store(std::make_shared<RequestStore>(config.metric_prefix)),
        self(registry) {
    std::vector<TailSource> tail_sources;
    for (const auto& service_config : config.services) {
      if (service_config.access_logs.empty()) continue;
      auto service = std::make_unique<ServiceState>();
      service->name = service_config.name;
      service->normalizer = std::make_unique<RouteNormalizer>(
          service_config.routes, service_config.exclude_paths, service_config.max_paths);
      service->metrics =
          std::make_unique<RequestMetrics>(*store, service->name, service_config.buckets);
      service->overflow = &self.overflow.Add({{"service", service->name}});
      for (const auto& log : service_config.access_logs) {
        auto source =
            std::make_unique<SourceState>(log, *service, self, std::size_t(config.max_line_bytes));
        SourceState* raw = source.get();
        tail_sources.push_back({service->name + "\t" + log.path, log.path, log.start_at,
                                [raw] { return std::make_unique<FileSink>(*raw); }, raw});
        sources.push_back(std::move(source));
      }
      services.push_back(std::move(service));
    }
    TailerOptions tailer_options;
    tailer_options.max_line_bytes = std::size_t(config.max_line_bytes);
    tailer_options.use_inotify = options.use_inotify;
    tailer_options.from_beginning = options.from_beginning;
    tailer = std::make_unique<Tailer>(std::move(tail_sources), tailer_options);
  }

  void SavePositions() {
    Positions positions = tailer->Snapshot();
    // Unchanged positions are not written again: an idle exporter does no disk I/O.
    if (last_saved && positions.files == last_saved->files) return;
    std::string error;
    if (!access_log::SavePositions(positions_file, positions, error)) {
      if (!save_failed) spdlog::error("{} (will keep trying)", error);
      save_failed = true;
    } else {
      save_failed = false;
      last_saved = std::move(positions);
    }
  }

  AccessLogOptions options;
  std::string positions_file;
  std::shared_ptr<RequestStore> store;
  SelfFamilies self;
  std::vector<std::unique_ptr<ServiceState>> services;
  std::vector<std::unique_ptr<SourceState>> sources;
  std::unique_ptr<Tailer> tailer;
  std::thread thread;
  int stop_fd = -1;
  bool save_failed = false;
  std::optional<Positions> last_saved;
};

AccessLogCollector::AccessLogCollector(const config::Config& config, prometheus::Registry& registry,
                                       AccessLogOptions options)
    : impl_(std::make_unique<Impl>(config, registry, options)) {}

AccessLogCollector::~AccessLogCollector() {
  Stop();
}

bool AccessLogCollector::empty() const {
  return impl_->sources.empty();
}

std::shared_ptr<TextSource> AccessLogCollector::request_metrics() const {
  return impl_->store;
}

void AccessLogCollector::Start() {
  if (empty() || impl_->thread.joinable()) return;
  std::string warning;
  const Positions positions = LoadPositions(impl_->positions_file, warning);
  if (!warning.empty()) spdlog::warn("{}", warning);
  impl_->tailer->Restore(positions);
  impl_->stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  impl_->thread = std::thread([impl = impl_.get()] {
    auto last_save = std::chrono::steady_clock::now();
    impl->tailer->Run(impl->stop_fd, [&] {
      const auto now = std::chrono::steady_clock::now();
      if (impl->options.save_positions && now - last_save >= impl->options.save_interval) {
        impl->SavePositions();
        last_save = now;
      }
    });
    // Every line read has been handed over: the positions are exactly what was counted.
    if (impl->options.save_positions) impl->SavePositions();
  });
}

void AccessLogCollector::Stop() {
  if (!impl_->thread.joinable()) return;
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t written = ::write(impl_->stop_fd, &one, sizeof one);
  impl_->thread.join();
  ::close(impl_->stop_fd);
  impl_->stop_fd = -1;
}

void AccessLogCollector::ReadOnce() {
  // A pass reads at most max_bytes_per_poll of each file: go on until nothing is left.
  for (bool rescan = true; impl_->tailer->Poll(rescan) > 0; rescan = false) {
  }
}

std::string AccessLogCollector::Summary() const {
  std::string summary;
  for (const auto& service : impl_->services) {
    if (!summary.empty()) summary += ", ";
    summary += "service " + service->name + ": " + std::to_string(service->metrics->recorded()) +
               " requests";
  }
  return summary;
}

}  // namespace fastapi_exporter::access_log
