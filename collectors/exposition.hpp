// The one place /metrics is rendered from: every collector registers here, and a scrape
// collects them all and serialises them in the Prometheus text format.
#pragma once

#include <prometheus/collectable.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace fastapi_exporter {

// Metrics that render themselves in the text format, for series too many to go through
// prometheus-cpp's Collect() on every scrape (see access_log/request_metrics.hpp).
class TextSource {
 public:
  virtual ~TextSource() = default;
  virtual void RenderText(std::string& out) const = 0;
};

class Exposition {
 public:
  void Register(std::shared_ptr<prometheus::Collectable> collectable);
  void Register(std::shared_ptr<TextSource> source);
  // Thread-safe; each collector serialises its own state.
  std::string Render() const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  std::vector<std::shared_ptr<TextSource>> text_sources_;
};

}  // namespace fastapi_exporter
