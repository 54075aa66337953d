// fastapi-exporter: the daemon's wiring. Flags, config, collectors, HTTP, signals.
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "collectors/access_log/access_log_collector.hpp"
#include "collectors/exposition.hpp"
#include "collectors/process/process_collector.hpp"
#include "config/config.hpp"
#include "config/listen_address.hpp"
#include "daemon/http_server.hpp"
#include "daemon/logging.hpp"

namespace fe = fastapi_exporter;

namespace {

struct Flags {
  std::string config_file = "/etc/fastapi-exporter/config.yaml";
  std::string check_config_file;
  std::string listen_address;
  std::string telemetry_path;
  std::string log_level = "info";
  std::string log_format = "logfmt";
  std::string proc_root = "/proc";
  std::string cgroup_root = "/sys/fs/cgroup";
  bool check_config = false;
  bool oneshot = false;
  bool version = false;
};

std::string VersionLine() {
  return std::string("fastapi-exporter version ") + FASTAPI_EXPORTER_VERSION + " (revision " +
         FASTAPI_EXPORTER_REVISION + ")";
}

std::string HtmlEscape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string LandingPage(const fe::config::Config& config) {
  std::string services;
  for (const auto& service : config.services) {
    services += "<li>" + HtmlEscape(service.name) + "</li>";
  }
  const std::string path = HtmlEscape(config.web.telemetry_path);
  return "<!DOCTYPE html><html><head><title>fastapi-exporter</title></head><body>"
         "<h1>fastapi-exporter</h1><p>" +
         HtmlEscape(VersionLine()) +
         "</p>"
         "<p><a href=\"" +
         path +
         "\">Metrics</a> &middot; <a href=\"/healthz\">Health</a></p>"
         "<h2>Services</h2><ul>" +
         services + "</ul></body></html>\n";
}

// Prints every problem of the file as "file:line:column: key: message".
void PrintErrors(const std::string& file, const fe::config::LoadResult& result) {
  for (const auto& error : result.errors) {
    std::cerr << fe::config::FormatError(file, error) << "\n";
  }
}

int WaitForShutdown() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  for (;;) {
    int signal = 0;
    if (sigwait(&signals, &signal) != 0) return 1;
    if (signal == SIGHUP) {
      spdlog::warn("SIGHUP: configuration reload is not supported yet; restart to apply changes");
      continue;
    }
    spdlog::info("received {}, shutting down", signal == SIGTERM ? "SIGTERM" : "SIGINT");
    return 0;
  }
}

}  // namespace

int main(int argc, char** argv) {
  // glibc gives each thread that allocates an arena of its own, and keeps what it freed:
  // civetweb's workers rendering a scrape each grew one, which cost several MB of RSS. One
  // arena is enough: the per-line path does not allocate.
  mallopt(M_ARENA_MAX, 1);
  Flags flags;
  CLI::App app{
      "fastapi-exporter: Prometheus metrics for FastAPI services from /proc and their "
      "access logs, with no code in the service."};
  app.add_option("--config.file", flags.config_file, "Configuration file (YAML)")
      ->capture_default_str();
  app.add_option("--web.listen-address", flags.listen_address,
                 "Address to listen on, host:port (overrides web.listen_address; default :9869)");
  app.add_option("--web.telemetry-path", flags.telemetry_path,
                 "Path under which to expose metrics (overrides web.telemetry_path; default "
                 "/metrics)");
  app.add_option("--log.level", flags.log_level, "Log level: debug, info, warn, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  app.add_option("--log.format", flags.log_format, "Log format: logfmt, json")
      ->capture_default_str()
      ->check(CLI::IsMember({"logfmt", "json"}));
  app.add_option("--path.procfs", flags.proc_root, "procfs mountpoint")->capture_default_str();
  app.add_option("--path.cgroupfs", flags.cgroup_root, "cgroup v2 mountpoint")
      ->capture_default_str();
  app.add_flag("--check-config", flags.check_config,
               "Validate the configuration file, print every problem, exit 1 if there is any");
  app.add_option("config", flags.check_config_file,
                 "With --check-config: the file to check (instead of --config.file)");
  app.add_flag("--oneshot", flags.oneshot,
               "Read every configured access log from its start to its end, print the "
               "resulting metrics to stdout and exit");
  app.add_flag("--version", flags.version, "Print the version and exit");
  CLI11_PARSE(app, argc, argv);

  if (flags.version) {
    std::cout << VersionLine() << "\n";
    return 0;
  }
  fe::SetupLogging(flags.log_level, flags.log_format);

  if (!flags.check_config_file.empty()) {
    if (!flags.check_config) {
      std::cerr << "a positional config file is only taken with --check-config; "
                   "use --config.file\n";
      return 2;
    }
    flags.config_file = flags.check_config_file;
  }
  fe::config::LoadResult loaded = fe::config::LoadConfigFile(flags.config_file);
  if (flags.check_config) {
    PrintErrors(flags.config_file, loaded);
    if (!loaded.ok()) return 1;
    std::cout << flags.config_file << ": OK (" << loaded.config.services.size() << " services)\n";
    return 0;
  }
  if (!loaded.ok()) {
    PrintErrors(flags.config_file, loaded);
    spdlog::error("invalid configuration in {}: {} problem(s), not starting", flags.config_file,
                  loaded.errors.size());
    return 1;
  }
  fe::config::Config config = std::move(loaded.config);
  if (!flags.listen_address.empty()) config.web.listen_address = flags.listen_address;
  if (!flags.telemetry_path.empty()) config.web.telemetry_path = flags.telemetry_path;
  std::string problem;
  const auto listen_address = fe::config::ParseListenAddress(config.web.listen_address, &problem);
  if (!listen_address) {
    spdlog::error("--web.listen-address: {}", problem);
    return 1;
  }
  if (config.web.telemetry_path.empty() || config.web.telemetry_path[0] != '/') {
    spdlog::error("--web.telemetry-path: must start with '/'");
    return 1;
  }
  if (config.services.empty()) {
    spdlog::warn("{} configures no services: only the exporter's own metrics are served",
                 flags.config_file);
  }

  // Signals are handled by sigwait in the main thread; block them before any thread starts
  // so that server threads inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto self_registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildGauge()
      .Name("fastapi_exporter_build_info")
      .Help("A metric with a constant '1' value labeled by version and revision.")
      .Register(*self_registry)
      .Add({{"version", FASTAPI_EXPORTER_VERSION}, {"revision", FASTAPI_EXPORTER_REVISION}})
      .Set(1);
  auto& scrapes = prometheus::BuildCounter()
                      .Name("fastapi_exporter_scrapes_total")
                      .Help("Scrapes of the telemetry path served.")
                      .Register(*self_registry)
                      .Add({});
  auto& last_scrape_duration = prometheus::BuildGauge()
                                   .Name("fastapi_exporter_last_scrape_duration_seconds")
                                   .Help("How long rendering the previous scrape took.")
                                   .Register(*self_registry)
                                   .Add({});

  fe::Exposition exposition;
  exposition.Register(self_registry);
  auto requests_registry = std::make_shared<prometheus::Registry>();
  exposition.Register(requests_registry);
  fe::access_log::AccessLogOptions access_log_options;
  if (flags.oneshot) {
    access_log_options.from_beginning = true;
    access_log_options.save_positions = false;
  }
  fe::access_log::AccessLogCollector access_logs(config, *requests_registry, access_log_options);
  exposition.Register(access_logs.request_metrics());
  if (flags.oneshot) {
    access_logs.ReadOnce();
    std::cout << exposition.Render();
    return 0;
  }
  exposition.Register(std::make_shared<fe::process::ProcessCollector>(
      config.services, fe::process::ProcessCollectorOptions{flags.proc_root, flags.cgroup_root}));
  access_logs.Start();

  fe::HttpServerOptions http;
  http.listen_address = *listen_address;
  http.telemetry_path = config.web.telemetry_path;
  http.landing_page_html = LandingPage(config);
  http.render_metrics = [&]() {
    const auto started = std::chrono::steady_clock::now();
    std::string text = exposition.Render();
    scrapes.Increment();
    last_scrape_duration.Set(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    return text;
  };
  fe::HttpServer server(std::move(http));
  std::string error;
  if (!server.Start(error)) {
    spdlog::error("{}", error);
    return 1;
  }
  spdlog::info("{} listening on {} serving {} with {} service(s)", VersionLine(),
               config.web.listen_address, config.web.telemetry_path, config.services.size());

  const int status = WaitForShutdown();
  server.Stop();
  access_logs.Stop();  // finishes the lines in hand and saves positions
  if (access_logs.empty()) {
    spdlog::info("stopped");
  } else {
    spdlog::info("stopped; counted since start: {}", access_logs.Summary());
  }
  return status;
}
