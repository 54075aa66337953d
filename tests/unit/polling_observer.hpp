// A TailerObserver that records what it is told about polling, for the tailer's tests.
#pragma once

#include "collectors/access_log/tailer.hpp"

namespace fastapi_exporter::access_log {

struct PollingObserver : TailerObserver {
  int calls = 0;
  bool polling = false;
  void OnPolling(bool value) override {
    ++calls;
    polling = value;
  }
};

}  // namespace fastapi_exporter::access_log
