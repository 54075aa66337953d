#include "collectors/access_log/line_pipeline.hpp"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

#include "collectors/access_log/ansi.hpp"
#include "collectors/access_log/envelope.hpp"
#include "collectors/access_log/openapi_routes.hpp"
#include "collectors/access_log/tailer.hpp"

namespace fastapi_exporter::access_log {
namespace {

// A line as the log may show it: bytes that are not printable, or not UTF-8, as \xNN (a log
// line with raw binary would be stored as binary by the journal).
std::string Printable(std::string_view line) {
  const bool utf8 = simdjson::validate_utf8(line.data(), line.size());
  std::string out;
  for (const char c : line) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f || (byte >= 0x80 && !utf8)) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

LineFamilies RegisterLineFamilies(prometheus::Registry& registry) {
  return {
      prometheus::BuildCounter()
          .Name("fastapi_exporter_log_lines_total")
          .Help("Lines read from access logs.")
          .Register(registry),
      prometheus::BuildCounter()
          .Name("fastapi_exporter_log_requests_total")
          .Help("Access-log lines counted as requests.")
          .Register(registry),
      prometheus::BuildCounter()
          .Name("fastapi_exporter_log_excluded_total")
          .Help("Requests not counted because their path is in exclude_paths.")
          .Register(registry),
      prometheus::BuildCounter()
          .Name("fastapi_exporter_log_parse_errors_total")
          .Help("Access-log lines skipped, by reason.")
          .Register(registry),
      prometheus::BuildCounter()
          .Name("fastapi_exporter_log_invalid_durations_total")
          .Help("Requests counted without a duration observation because their duration "
                "field was not a duration (negative, not a number, over a day).")
          .Register(registry),
      prometheus::BuildCounter()
          .Name("fastapi_exporter_paths_overflow_total")
          .Help("Requests counted under path=\"__other__\" because the service "
                "reached max_paths.")
          .Register(registry),
  };
}

bool ServiceOptions::operator==(const ServiceOptions& other) const {
  // A route template is its text: the segments are parsed from it.
  const auto same_text = [](const config::RouteTemplate& a, const config::RouteTemplate& b) {
    return a.text == b.text;
  };
  return name == other.name &&
         std::equal(routes.begin(), routes.end(), other.routes.begin(), other.routes.end(),
                    same_text) &&
         exclude_paths == other.exclude_paths && max_paths == other.max_paths &&
         buckets == other.buckets && routes_from == other.routes_from;
}

ServicePipeline::ServicePipeline(ServiceOptions options, RequestStore& store, LineFamilies families,
                                 std::unique_ptr<RouteDiscovery> discovery)
    : options_(std::move(options)),
      families_(families),
      normalizer_(options_.routes, options_.exclude_paths, options_.max_paths),
      metrics_(store, options_.name, options_.buckets),
      overflow_(&families_.overflow.Add({{"service", options_.name}})),
      discovery_(std::move(discovery)) {}

ServicePipeline::ServicePipeline(ServiceOptions options, RequestStore& store, LineFamilies families)
    : ServicePipeline(std::move(options), store, families, nullptr) {}

ServicePipeline::~ServicePipeline() {
  families_.overflow.Remove(overflow_);
}

void ServicePipeline::WaitForRoutes() {
  if (discovery_) discovery_->WaitFirstAttempt(std::chrono::seconds(8));
}

void ServicePipeline::PickUpRoutes() {
  std::vector<config::RouteTemplate> routes;
  if (discovery_->TakeUpdate(routes)) SetDiscoveredRoutes(std::move(routes));
}

ServicePipeline::Outcome ServicePipeline::Count(std::string_view method, std::string_view target,
                                                int status, bool has_duration, double seconds) {
  if (discovery_ && discovery_->HasUpdate()) PickUpRoutes();
  const RouteNormalizer::Result route = normalizer_.Normalize(target);
  if (route.outcome == RouteNormalizer::Outcome::kInvalid) return Outcome::kInvalidPath;
  if (route.outcome == RouteNormalizer::Outcome::kExcluded) return Outcome::kExcluded;
  if (route.overflowed) overflow_->Increment();
  metrics_.Record(ParseHttpMethod(method), route.path_id, normalizer_.PathLabel(route.path_id),
                  status, has_duration, seconds);
  if (recent_) {
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    recent_->Add(double(now.tv_sec) + double(now.tv_nsec) * 1e-9, method, target, status,
                 has_duration, seconds);
  }
  return Outcome::kCounted;
}

// The lines of one file: unwraps its envelope (whose partial records belong to the file).
class LinePipeline::FileSink final : public LineSink {
 public:
  explicit FileSink(LinePipeline& pipeline)
      : pipeline_(pipeline),
        envelope_(
            MakeEnvelopeDecoder(pipeline.options_.envelope, pipeline.options_.max_line_bytes)) {}

  void OnLine(std::string_view record) override {
    pipeline_.CountLine();
    if (!envelope_) return pipeline_.Count(record);
    std::string_view line;
    switch (envelope_->Decode(record, line)) {
      case EnvelopeDecoder::Status::kLine:
        return pipeline_.Count(line);
      case EnvelopeDecoder::Status::kPartial:
        return;
      case EnvelopeDecoder::Status::kInvalid:
        return pipeline_.Reject(ParseError::kInvalidEnvelope, record);
      case EnvelopeDecoder::Status::kTooLong:
        return pipeline_.Reject(ParseError::kLineTooLong, record);
    }
  }
  void OnLineTooLong() override {
    pipeline_.CountLine();
    pipeline_.Reject(ParseError::kLineTooLong, "(line over max_line_bytes)");
  }
  bool HoldsPartial() const override { return envelope_ && envelope_->HoldsPartial(); }

 private:
  LinePipeline& pipeline_;
  std::unique_ptr<EnvelopeDecoder> envelope_;
};

LinePipeline::LinePipeline(SourceOptions options, ServicePipeline& service)
    : options_(std::move(options)), service_(service), parser_(MakeLineParser(options_.parser)) {
  LineFamilies& families = service_.families_;
  const prometheus::Labels labels{{"service", service_.name()}, {"source", options_.name}};
  lines_ = &families.lines.Add(labels);
  requests_ = &families.requests.Add(labels);
  excluded_ = &families.excluded.Add(labels);
  invalid_durations_ = &families.invalid_durations.Add(labels);
  for (std::size_t i = 1; i < kParseErrorCount; ++i) {
    auto with_reason = labels;
    with_reason["reason"] = std::string(ParseErrorName(ParseError(i)));
    parse_errors_[i] = &families.parse_errors.Add(with_reason);
  }
  scratch_.reserve(1024);
}

LinePipeline::~LinePipeline() {
  LineFamilies& families = service_.families_;
  families.lines.Remove(lines_);
  families.requests.Remove(requests_);
  families.excluded.Remove(excluded_);
  families.invalid_durations.Remove(invalid_durations_);
  for (std::size_t i = 1; i < kParseErrorCount; ++i) families.parse_errors.Remove(parse_errors_[i]);
}

std::unique_ptr<LineSink> LinePipeline::MakeFileSink() {
  return std::make_unique<FileSink>(*this);
}

uint64_t LinePipeline::requests() const {
  return uint64_t(requests_->Value());
}

void LinePipeline::Handle(std::string_view line) {
  CountLine();
  Count(line);
}

void LinePipeline::OnSkipped(ParseError reason, std::string_view message) {
  CountLine();
  Reject(reason, message);
}

// The hot path.
void LinePipeline::Count(std::string_view line) {
  line = StripAnsiEscapes(line, scratch_);
  ParsedRequest request;
  const ParseError error = parser_->Parse(line, request);
  if (error != ParseError::kNone) return Reject(error, line);
  switch (service_.Count(request.method, request.target, request.status, request.has_duration,
                         request.duration_seconds)) {
    case ServicePipeline::Outcome::kInvalidPath:
      return Reject(ParseError::kInvalidPath, line);
    case ServicePipeline::Outcome::kExcluded:
      excluded_->Increment();
      return;
    case ServicePipeline::Outcome::kCounted:
      break;
  }
  requests_->Increment();
  if (request.duration_invalid) {
    invalid_durations_->Increment();
    if (!logged_invalid_duration_) {
      logged_invalid_duration_ = true;
      spdlog::warn(
          "{}: counting a request without its duration, which is not one (further "
          "ones are only counted): {}",
          options_.name, line.substr(0, 200));
    }
  }
}

void LinePipeline::Reject(ParseError error, std::string_view line) {
  parse_errors_[std::size_t(error)]->Increment();
  // The first line of each kind of problem is logged, to show what is wrong with the log;
  // the rest only count.
  bool& logged = logged_errors_[std::size_t(error)];
  if (!logged) {
    logged = true;
    // The server's own lines in the stream are expected: said once, not as a warning.
    spdlog::log(error == ParseError::kNotAccessLine ? spdlog::level::info : spdlog::level::warn,
                "{}: skipping a line ({}), further ones are only counted: {}", options_.name,
                ParseErrorName(error), Printable(line.substr(0, 200)));
  }
}

}  // namespace fastapi_exporter::access_log
