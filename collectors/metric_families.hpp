// Builds the prometheus-cpp MetricFamily list a Collectable returns, one family per name.
#pragma once

#include <prometheus/metric_family.h>

#include <string>
#include <unordered_map>
#include <vector>

namespace fastapi_exporter {

class MetricFamilies {
 public:
  // Adds one sample of a counter or gauge; the family is created on first use of its name.
  void Add(const std::string& name, const std::string& help, prometheus::MetricType type,
           std::vector<prometheus::ClientMetric::Label> labels, double value);

  std::vector<prometheus::MetricFamily> Release() { return std::move(families_); }

 private:
  std::vector<prometheus::MetricFamily> families_;
  std::unordered_map<std::string, std::size_t> index_;
};

}  // namespace fastapi_exporter
