#include "collectors/access_log/request_metrics.hpp"

#include <string>

namespace fastapi_exporter::access_log {

RequestMetrics::RequestMetrics(prometheus::Family<prometheus::Counter>& requests,
                               prometheus::Family<prometheus::Histogram>& durations,
                               std::string service, std::vector<double> buckets)
    : requests_(requests),
      durations_(durations),
      service_(std::move(service)),
      buckets_(std::move(buckets)) {}

void RequestMetrics::Record(HttpMethod method, uint32_t path_id, const std::string& path_label,
                            int status, bool has_duration, double duration_seconds) {
  const uint64_t key = (uint64_t(path_id) << 16) | (uint64_t(method) << 10) | uint64_t(status);
  auto [it, inserted] = series_.try_emplace(key);
  Series& series = it->second;
  auto labels = [&] {
    return prometheus::Labels{{"service", service_},
                              {"method", std::string(HttpMethodName(method))},
                              {"path", path_label},
                              {"status_code", std::to_string(status)}};
  };
  if (inserted) series.requests = &requests_.Add(labels());
  series.requests->Increment();
  if (has_duration) {
    if (!series.duration) series.duration = &durations_.Add(labels(), buckets_);
    series.duration->Observe(duration_seconds);
  }
  ++recorded_;
}

}  // namespace fastapi_exporter::access_log
