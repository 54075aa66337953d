#include "collectors/metric_families.hpp"

namespace fastapi_exporter {

void MetricFamilies::Add(const std::string& name, const std::string& help,
                         prometheus::MetricType type,
                         std::vector<prometheus::ClientMetric::Label> labels, double value) {
  auto [it, inserted] = index_.try_emplace(name, families_.size());
  if (inserted) families_.push_back({name, help, type, {}});
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  families_[it->second].metric.push_back(std::move(metric));
}

}  // namespace fastapi_exporter
