// The one place /metrics is rendered from: every collector registers here, and a scrape
// collects them all and serialises them in the Prometheus text format.
#pragma once

#include <prometheus/collectable.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace fastapi_exporter {

class Exposition {
 public:
  void Register(std::shared_ptr<prometheus::Collectable> collectable);
  // Thread-safe; each collector serialises its own state.
  std::string Render() const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
};

}  // namespace fastapi_exporter
