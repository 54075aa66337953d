// What a tailer or a file follower hands its sink and its observer, recorded for the tests of
// collectors/access_log's reading stages (tailer_test, file_follower_test).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/access_log/tailer.hpp"

namespace fastapi_exporter::access_log {

struct Recorded {
  std::mutex mutex;  // for the tests where the tailer runs on its own thread
  std::vector<std::string> lines;
  int too_long = 0;
  int rotations = 0;
  int truncations = 0;
  int abandoned = 0;
  std::vector<std::string> open_errors;
  uint64_t bytes_read = 0;
  int sinks = 0;  // how many sinks were asked for (counted by the test's make_sink)
};

class RecordingSink : public LineSink {
 public:
  explicit RecordingSink(Recorded& recorded) : recorded_(recorded) {}
  void OnLine(std::string_view line) override {
    std::lock_guard lock(recorded_.mutex);
    recorded_.lines.emplace_back(line);
  }
  void OnLineTooLong() override { ++recorded_.too_long; }

 private:
  Recorded& recorded_;
};

class RecordingObserver : public SourceObserver {
 public:
  explicit RecordingObserver(Recorded& recorded) : recorded_(recorded) {}
  void OnBytesRead(uint64_t bytes) override { recorded_.bytes_read += bytes; }
  void OnRotation(const std::string&) override { ++recorded_.rotations; }
  void OnTruncation(const std::string&) override { ++recorded_.truncations; }
  void OnOpenError(const std::string& path, const std::string&) override {
    recorded_.open_errors.push_back(path);
  }
  void OnState(uint64_t, uint64_t) override {}
  void OnAbandoned(const std::string&) override { ++recorded_.abandoned; }

 private:
  Recorded& recorded_;
};

}  // namespace fastapi_exporter::access_log
