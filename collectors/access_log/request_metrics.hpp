// fastapi_requests_total and fastapi_request_duration_seconds of one service.
//
// prometheus-cpp's Family::Add looks a label set up by building and hashing a label map:
// far too slow per line. Each label set's counter and histogram are looked up once and cached
// here under a 64-bit key (path id, method, status), so recording a request does not
// allocate once its series exists.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "collectors/access_log/request.hpp"

namespace fastapi_exporter::access_log {

class RequestMetrics {
 public:
  RequestMetrics(prometheus::Family<prometheus::Counter>& requests,
                 prometheus::Family<prometheus::Histogram>& durations, std::string service,
                 std::vector<double> buckets);

  // Requests without a duration (uvicorn's access log) count in the counter only.
  void Record(HttpMethod method, uint32_t path_id, const std::string& path_label, int status,
              bool has_duration, double duration_seconds);

  uint64_t recorded() const { return recorded_; }

 private:
  struct Series {
    prometheus::Counter* requests = nullptr;
    prometheus::Histogram* duration = nullptr;
  };

  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& durations_;
  std::string service_;
  prometheus::Histogram::BucketBoundaries buckets_;
  std::unordered_map<uint64_t, Series> series_;
  uint64_t recorded_ = 0;
};

}  // namespace fastapi_exporter::access_log
