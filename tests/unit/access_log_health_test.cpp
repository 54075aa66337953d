// The access-log reader's health, as /healthz reports it: what happens when the sources of
// its events are taken away from a running collector (descriptors closed under it).
#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "collectors/access_log/access_log_collector.hpp"
#include "config/config.hpp"

namespace fastapi_exporter::access_log {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// The descriptors of this process whose /proc link reads `target`, e.g.
// "anon_inode:[eventfd]" or "anon_inode:inotify".
std::set<int> DescriptorsOf(const std::string& target) {
  std::set<int> found;
  for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
    std::error_code error;
    if (fs::read_symlink(entry.path(), error).string() == target) {
      found.insert(std::stoi(entry.path().filename().string()));
    }
  }
  return found;
}

bool WaitFor(const std::function<bool()>& predicate) {
  for (int i = 0; i < 1000; ++i) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return predicate();
}

class AccessLogHealth : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fe-health-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    log_ = (dir_ / "access.log").string();
    std::ofstream(log_).close();
    const auto loaded =
        config::ParseConfig("positions_file: " + (dir_ / "positions.yaml").string() +
                            "\nservices:\n  - name: s\n    access_logs:\n      - {path: " + log_ +
                            ", format: uvicorn, start_at: beginning}\n");
    ASSERT_TRUE(loaded.ok());
    before_ = {DescriptorsOf("anon_inode:[eventfd]"), DescriptorsOf("anon_inode:inotify")};
    AccessLogOptions options;
    options.save_positions = false;
    collector_ = std::make_unique<AccessLogCollector>(loaded.config, registry_, options);
  }
  void TearDown() override {
    collector_.reset();
    fs::remove_all(dir_);
  }
  void Append(int lines) {
    std::ofstream out(log_, std::ios::app);
    for (int i = 0; i < lines; ++i) {
      out << "INFO:     127.0.0.1:5000 - \"GET /items/" << i << " HTTP/1.1\" 200 OK\n";
    }
  }
  // Requests counted so far, from the self-metric (atomic: read while the reader runs).
  double Requests() {
    double total = 0;
    for (const auto& family : registry_.Collect()) {
      if (family.name != "fastapi_exporter_log_requests_total") continue;
      for (const auto& metric : family.metric) total += metric.counter.value;
    }
    return total;
  }
  // Starts the collector; returns the descriptors of `target` kind it opened (the tailer
  // opens inotify when it is built, the stop event when the thread starts).
  std::set<int> StartAndFind(const std::string& target) {
    const std::set<int> before = target == "anon_inode:inotify" ? before_.second : before_.first;
    collector_->Start();
    std::set<int> opened;
    for (const int fd : DescriptorsOf(target)) {
      if (!before.count(fd)) opened.insert(fd);
    }
    return opened;
  }

  fs::path dir_;
  std::string log_;
  std::pair<std::set<int>, std::set<int>> before_;  // eventfds, inotify instances
  prometheus::Registry registry_;
  std::unique_ptr<AccessLogCollector> collector_;
};

// These tests close a descriptor the reader thread is polling: the very failure they show.
// TSan reports that as the race it is, so they run in the normal and ASan builds only.
#if defined(__SANITIZE_THREAD__)
#define SKIP_WHERE_CLOSING_UNDER_A_THREAD_IS_A_REPORT() \
  GTEST_SKIP() << "closes a descriptor another thread polls: TSan reports it"
#else
#define SKIP_WHERE_CLOSING_UNDER_A_THREAD_IS_A_REPORT()
#endif

TEST_F(AccessLogHealth, HealthyWhileReadingAndWhenNotStarted) {
  EXPECT_EQ(collector_->Health(), "");
  collector_->Start();
  Append(3);
  EXPECT_TRUE(WaitFor([&] { return Requests() == 3; })) << Requests();
  EXPECT_EQ(collector_->Health(), "");
  collector_->Stop();
  EXPECT_EQ(collector_->Health(), "");  // stopped on purpose: not a failure
}

// The stop event is how the thread is told to stop: without it the thread must end (and say
// so) rather than spin on a descriptor that no longer exists.
TEST_F(AccessLogHealth, KillingTheStopEventMakesHealthSayTheReaderStopped) {
  SKIP_WHERE_CLOSING_UNDER_A_THREAD_IS_A_REPORT();
  const std::set<int> events = StartAndFind("anon_inode:[eventfd]");
  ASSERT_EQ(events.size(), 1u);
  Append(2);
  ASSERT_TRUE(WaitFor([&] { return Requests() == 2; }));
  ASSERT_EQ(collector_->Health(), "");
  ::close(*events.begin());
  ASSERT_TRUE(WaitFor([&] { return !collector_->Health().empty(); }));
  EXPECT_EQ(collector_->Health(),
            "the access-log reader stopped: its stop event file descriptor failed");
  collector_->Stop();  // returns: the thread has ended
}

// inotify is only how changes are noticed early: without it the reader polls, stays healthy,
// and keeps counting.
TEST_F(AccessLogHealth, KillingInotifyFallsBackToPollingAndKeepsCounting) {
  SKIP_WHERE_CLOSING_UNDER_A_THREAD_IS_A_REPORT();
  const std::set<int> watches = StartAndFind("anon_inode:inotify");
  ASSERT_EQ(watches.size(), 1u);
  Append(2);
  ASSERT_TRUE(WaitFor([&] { return Requests() == 2; }));
  ::close(*watches.begin());
  Append(5);
  EXPECT_TRUE(WaitFor([&] { return Requests() == 7; })) << Requests();
  EXPECT_EQ(collector_->Health(), "");
  bool polling = false;
  for (const auto& family : registry_.Collect()) {
    if (family.name == "fastapi_exporter_log_tailer_polling") {
      polling = family.metric.at(0).gauge.value == 1;
    }
  }
  EXPECT_TRUE(polling);
  collector_->Stop();
}

}  // namespace
}  // namespace fastapi_exporter::access_log
