// Reloads of a running access-log collector: a service or source is kept (its counters go on)
// exactly when the options it is built from are equal; everything else is left alone.
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include "collectors/access_log/access_log_collector.hpp"
#include "collectors/access_log/request_metrics.hpp"
#include "config/config.hpp"

namespace fastapi_exporter::access_log {
namespace {

namespace fs = std::filesystem;

class AccessLogReload : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fe-reload-" + std::to_string(getpid()));
    fs::create_directories(dir_);
    api_log_ = (dir_ / "api.log").string();
    web_log_ = (dir_ / "web.log").string();
    std::ofstream(api_log_).close();
    std::ofstream(web_log_).close();
    AccessLogOptions options;
    options.save_positions = false;
    collector_ = std::make_unique<AccessLogCollector>(Config("", ""), registry_, options);
    collector_->Start();
  }
  void TearDown() override {
    collector_.reset();
    fs::remove_all(dir_);
  }

  // Service api reads a JSON log, service web a uvicorn log; `api_log` is added to api's
  // access_logs entry, `api_service` to api's service.
  config::Config Config(const std::string& api_log, const std::string& api_service) {
    const auto loaded =
        config::ParseConfig("positions_file: " + (dir_ / "positions.yaml").string() +
                            "\nservices:\n"
                            "  - name: api\n" +
                            api_service + "    access_logs:\n      - {path: " + api_log_ +
                            ", format: json, start_at: beginning" + api_log +
                            "}\n"
                            "  - name: web\n    access_logs:\n      - {path: " +
                            web_log_ + ", format: uvicorn, start_at: beginning}\n");
    EXPECT_TRUE(loaded.ok()) << (loaded.errors.empty() ? "" : loaded.errors[0].message);
    return loaded.config;
  }
  void Reload(const std::string& api_log, const std::string& api_service) {
    collector_->Reconfigure(Config(api_log, api_service));
  }

  void AppendApi(const std::string& path) {
    std::ofstream(api_log_, std::ios::app)
        << R"({"endpoint":")" << path << R"(","method":"GET","status_code":200,"duration_ms":3})"
        << "\n";
  }
  void AppendWeb() {
    std::ofstream(web_log_, std::ios::app)
        << "INFO:     127.0.0.1:5000 - \"GET /items/7 HTTP/1.1\" 200 OK\n";
  }

  // fastapi_requests_total of `service`, summed over its series, as a scrape shows it.
  double Requests(const std::string& service) {
    std::string text;
    collector_->request_store()->RenderText(text);
    std::istringstream lines(text);
    const std::string prefix = "fastapi_requests_total{service=\"" + service + "\"";
    double total = 0;
    for (std::string line; std::getline(lines, line);) {
      if (line.starts_with(prefix)) total += std::stod(line.substr(line.rfind(' ') + 1));
    }
    return total;
  }
  // A self-metric of the service's source.
  double Self(const std::string& name, const std::string& service) {
    double total = 0;
    for (const auto& family : registry_.Collect()) {
      if (family.name != name) continue;
      for (const auto& metric : family.metric) {
        for (const auto& label : metric.label) {
          if (label.name == "service" && label.value == service) total += metric.counter.value;
        }
      }
    }
    return total;
  }
  // Waits (at most 10 s) until the reading thread has counted what the test expects.
  bool Counted(double api_requests, double web_requests) {
    for (int i = 0; i < 1000; ++i) {
      if (Requests("api") == api_requests && Requests("web") == web_requests) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  fs::path dir_;
  std::string api_log_;
  std::string web_log_;
  prometheus::Registry registry_;
  std::unique_ptr<AccessLogCollector> collector_;
};

TEST_F(AccessLogReload, KeepsWhatIsUnchangedAndRebuildsOnlyWhatChanged) {
  for (int i = 0; i < 3; ++i) AppendApi("/items/" + std::to_string(i));
  AppendWeb();
  AppendWeb();
  ASSERT_TRUE(Counted(3, 2)) << Requests("api") << " " << Requests("web");

  // The same configuration, read again: nothing is rebuilt, every count goes on.
  Reload("", "");
  AppendApi("/items/9");
  AppendWeb();
  ASSERT_TRUE(Counted(4, 3)) << Requests("api") << " " << Requests("web");
  EXPECT_EQ(Self("fastapi_exporter_log_lines_total", "api"), 4);
  EXPECT_EQ(Self("fastapi_exporter_log_lines_total", "web"), 3);

  // api's format changes (another duration field): its source is rebuilt, so the source's
  // counters start again; the service's request series and service web are kept. Its file
  // keeps its position: nothing is read twice.
  Reload(", json: {duration: took_ms}", "");
  AppendApi("/items/10");
  AppendWeb();
  ASSERT_TRUE(Counted(5, 4)) << Requests("api") << " " << Requests("web");
  EXPECT_EQ(Self("fastapi_exporter_log_lines_total", "api"), 1);
  EXPECT_EQ(Self("fastapi_exporter_log_lines_total", "web"), 4);

  // api's routes change: the service is rebuilt and its request series start from zero;
  // web's go on.
  Reload(", json: {duration: took_ms}", "    routes: ['/items/{item_id}']\n");
  AppendApi("/items/11");
  AppendWeb();
  ASSERT_TRUE(Counted(1, 5)) << Requests("api") << " " << Requests("web");
  EXPECT_EQ(Self("fastapi_exporter_log_lines_total", "api"), 1);
  EXPECT_EQ(Self("fastapi_exporter_log_lines_total", "web"), 5);

  // api's exclude_paths change: rebuilt again; /health is now excluded.
  Reload(", json: {duration: took_ms}",
         "    routes: ['/items/{item_id}']\n    exclude_paths: [/health]\n");
  AppendApi("/health");
  AppendApi("/items/12");
  AppendWeb();
  ASSERT_TRUE(Counted(1, 6)) << Requests("api") << " " << Requests("web");
  EXPECT_EQ(Self("fastapi_exporter_log_excluded_total", "api"), 1);
  EXPECT_EQ(Self("fastapi_exporter_log_lines_total", "api"), 2);
  EXPECT_EQ(Self("fastapi_exporter_log_lines_total", "web"), 6);
}

// What is compared is what the stages are built from, not the text: a default written out,
// or routes written in another style, change nothing.
TEST_F(AccessLogReload, WrittenDifferentlyButTheSameChangesNothing) {
  AppendWeb();
  AppendApi("/items/1");
  ASSERT_TRUE(Counted(1, 1)) << Requests("api") << " " << Requests("web");
  Reload(", json: {duration: duration_ms, duration_unit: ms}", "    max_paths: 200\n");
  AppendApi("/items/2");
  ASSERT_TRUE(Counted(2, 1)) << Requests("api") << " " << Requests("web");
  EXPECT_EQ(Self("fastapi_exporter_log_lines_total", "api"), 2);
}

}  // namespace
}  // namespace fastapi_exporter::access_log
