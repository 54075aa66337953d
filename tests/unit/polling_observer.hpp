// A TailerObserver that records what it is told (polling, inotify overflows), for the tailer's
// tests.
#pragma once

#include "collectors/access_log/tailer.hpp"

namespace fastapi_exporter::access_log {

struct PollingObserver : TailerObserver {
  int calls = 0;
  bool polling = false;
  int overflows = 0;
  void OnPolling(bool value) override {
    ++calls;
    polling = value;
  }
  void OnInotifyOverflow() override { ++overflows; }
};

}  // namespace fastapi_exporter::access_log
