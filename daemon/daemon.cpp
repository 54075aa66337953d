#include "daemon/daemon.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <cerrno>
#include <chrono>
#include <iostream>

#include "collectors/access_log/access_log_collector.hpp"
#include "collectors/exposition.hpp"
#include "collectors/process/process_collector.hpp"
#include "collectors/wire/wire_collector.hpp"
#include "config/listen_address.hpp"
#include "config/web_config.hpp"
#include "daemon/http_server.hpp"
#include "daemon/live_view.hpp"
#include "daemon/reload_plan.hpp"

namespace fe = fastapi_exporter;

namespace fastapi_exporter {

std::string VersionLine() {
  return std::string("fastapi-exporter version ") + FASTAPI_EXPORTER_VERSION + " (revision " +
         FASTAPI_EXPORTER_REVISION + ")";
}

namespace {

// /healthz turns 503 when a collector failed this many scrapes in a row: one failure may be a
// process exiting mid-read; three (45 s at a 15 s scrape interval) is a collector that is
// broken.
constexpr int kUnhealthyAfterFailedRenders = 3;

// Logs each problem of a file as "file:line:column: key: message"; returns a one-line summary.
std::string LogProblems(const std::string& file,
                        const std::vector<fe::config::ConfigError>& errors) {
  for (const auto& error : errors) spdlog::error("{}", fe::config::FormatError(file, error));
  return file + " has " + std::to_string(errors.size()) + " problem(s), logged above";
}

// Reads --web.config.file, if given (no file: plain HTTP, no authentication).
bool LoadWebSecurity(const std::string& file, fe::config::WebSecurityConfig& out,
                     std::string& problem) {
  if (file.empty()) return true;
  fe::config::WebConfigResult web = fe::config::LoadWebConfigFile(file);
  if (!web.ok()) {
    problem = LogProblems(file, web.errors);
    return false;
  }
  out = std::move(web.config);
  return true;
}

// Applies the command-line overrides and checks what the config file cannot check alone.
bool Finish(const fe::DaemonOptions& flags, fe::config::Config& config, std::string& problem) {
  if (!flags.listen_address.empty()) config.web.listen_address = flags.listen_address;
  if (!flags.telemetry_path.empty()) config.web.telemetry_path = flags.telemetry_path;
  if (!fe::config::ParseListenAddress(config.web.listen_address, &problem)) {
    problem = "web.listen_address: " + problem;
    return false;
  }
  if (config.web.telemetry_path.empty() || config.web.telemetry_path[0] != '/') {
    problem = "web.telemetry_path: must start with '/'";
    return false;
  }
  return true;
}

// The running exporter: collectors, HTTP server, and what signals do to them.
class Daemon {
 public:
  explicit Daemon(fe::DaemonOptions flags) : flags_(std::move(flags)) {}

  int Run(fe::config::Config config) {
    std::string problem;
    if (!Finish(flags_, config, problem)) {
      spdlog::error("{}", problem);
      return 1;
    }
    fe::config::WebSecurityConfig web_security;
    if (!LoadWebSecurity(flags_.web_config_file, web_security, problem)) return 1;
    if (config.services.empty()) {
      spdlog::warn("{} configures no services: only the exporter's own metrics are served",
                   flags_.config_file);
    }

    // Signals are handled by sigwait in the main thread; block them before any thread starts
    // so that server threads inherit the mask.
    sigset_t signals = HandledSignals();
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    signal(SIGPIPE, SIG_IGN);

    RegisterSelfMetrics();
    fe::access_log::AccessLogOptions access_log_options;
    if (flags_.oneshot) {
      access_log_options.from_beginning = true;
      access_log_options.save_positions = false;
    }
    access_logs_ = std::make_unique<fe::access_log::AccessLogCollector>(config, *sources_registry_,
                                                                        access_log_options);
    exposition_.Register("requests", access_logs_->request_metrics());
    if (flags_.oneshot) {
      const std::vector<std::string> unread = access_logs_->ReadOnce();
      std::cout << exposition_.Render();
      // The metrics of what was read are printed either way; the exit status says whether
      // that was everything, for scripts that check a config against its logs.
      for (const std::string& reason : unread) spdlog::error("--oneshot did not read {}", reason);
      return unread.empty() ? 0 : 1;
    }
    processes_ = std::make_shared<fe::process::ProcessCollector>(
        config.services,
        fe::process::ProcessCollectorOptions{flags_.proc_root, flags_.cgroup_root});
    exposition_.Register("process", processes_);
    access_logs_->Start();
    fe::wire::WireOptions wire_options;
    wire_options.proc_root = flags_.proc_root;
    wire_options.cgroup_root = flags_.cgroup_root;
    wire_options.recent_lines = access_logs_->recent_lines();
    wire_options.recent_lines_capacity = access_log_options.recent_lines;
    wire_ = std::make_unique<fe::wire::WireCollector>(config, *sources_registry_,
                                                      access_logs_->request_store(), wire_options);
    wire_->Start();
    fe::LiveViewOptions live;
    live.history.interval_seconds = flags_.live_interval;
    live.history.keep_seconds = flags_.live_keep;
    live_view_ =
        std::make_unique<fe::LiveView>(fe::LiveSources{access_logs_->request_store(), processes_},
                                       access_logs_->recent_lines(), live);
    live_view_->Configure(config);
    live_view_->Start();

    if (!StartServer(config, web_security, problem)) {
      spdlog::error("{}", problem);
      return 1;
    }
    running_ = std::move(config);
    web_security_ = std::move(web_security);
    reload_successful_->Set(1);
    reload_timestamp_->Set(UnixNow());
    spdlog::info("{} listening on {} ({}) serving {} with {} service(s)", VersionLine(),
                 running_.web.listen_address, server_->serves_tls() ? "https" : "http",
                 running_.web.telemetry_path, running_.services.size());
    sd_notify(0, "READY=1");

    const int status = WaitForSignals(signals);
    sd_notify(0, "STOPPING=1");
    server_->Stop();  // no scrape is accepted any more
    live_view_->Stop();
    access_logs_->Stop();  // finishes the lines in hand and saves positions
    wire_->Stop();
    if (access_logs_->empty()) {
      spdlog::info("stopped");
    } else {
      spdlog::info("stopped; counted since start: {}", access_logs_->Summary());
    }
    return status;
  }

 private:
  static sigset_t HandledSignals() {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    return signals;
  }

  static double UnixNow() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  // Waits for SIGTERM or SIGINT, reloading on each SIGHUP and pinging systemd's watchdog
  // meanwhile when it asks for it.
  int WaitForSignals(const sigset_t& signals) {
    uint64_t watchdog_usec = 0;
    const bool watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec > 0;
    const timespec ping_every{time_t(watchdog_usec / 2 / 1000000),
                              long(watchdog_usec / 2 % 1000000 * 1000)};
    for (;;) {
      const int signal =
          watchdog ? sigtimedwait(&signals, nullptr, &ping_every) : sigwaitinfo(&signals, nullptr);
      if (signal < 0) {
        if (errno == EAGAIN) sd_notify(0, "WATCHDOG=1");
        if (errno == EAGAIN || errno == EINTR) continue;
        return 1;
      }
      if (signal == SIGHUP) {
        Reload();
        continue;
      }
      spdlog::info("received {}, shutting down", signal == SIGTERM ? "SIGTERM" : "SIGINT");
      return 0;
    }
  }

  // SIGHUP: reads both files again; applies them only if both are valid.
  void Reload() {
    sd_notifyf(
        0, "RELOADING=1\nMONOTONIC_USEC=%llu",
        static_cast<unsigned long long>(std::chrono::duration_cast<std::chrono::microseconds>(
                                            std::chrono::steady_clock::now().time_since_epoch())
                                            .count()));
    std::string problem;
    if (ReloadFrom(problem)) {
      reload_successful_->Set(1);
      reload_timestamp_->Set(UnixNow());
    } else {
      reload_successful_->Set(0);
      spdlog::error("reload failed, still running on the previous configuration: {}", problem);
    }
    sd_notify(0, "READY=1");
  }

  bool ReloadFrom(std::string& problem) {
    fe::config::LoadResult loaded = fe::config::LoadConfigFile(flags_.config_file);
    if (!loaded.ok()) {
      problem = LogProblems(flags_.config_file, loaded.errors);
      return false;
    }
    fe::config::Config config = std::move(loaded.config);
    if (!Finish(flags_, config, problem)) return false;
    fe::config::WebSecurityConfig web_security;
    if (!LoadWebSecurity(flags_.web_config_file, web_security, problem)) return false;
    const fe::ReloadPlan plan = fe::PlanReload(running_, web_security_, config, web_security);
    if (plan.restart_listener) {
      auto previous = std::move(server_);
      previous->Stop();
      if (!StartServer(config, web_security, problem)) {
        // The old address is still free: go back to it rather than serve nothing.
        std::string again;
        server_ = std::move(previous);
        if (!server_->Start(again)) spdlog::error("cannot listen again: {}", again);
        return false;
      }
    } else {
      if (plan.update_tls && !tls_->Update(*web_security.tls, problem)) return false;
      if (plan.swap_basic_auth) {
        server_->SetBasicAuth(std::make_shared<fe::BasicAuth>(web_security.basic_auth_users));
      }
    }
    if (plan.reconfigure_processes) processes_->Reconfigure(config.services);
    if (plan.reconfigure_sources) {
      access_logs_->Reconfigure(config);
      wire_->Reconfigure(config);
    }
    if (plan.reconfigure_live_view) live_view_->Configure(config);
    spdlog::info("reloaded {}: {} service(s){}", flags_.config_file, config.services.size(),
                 plan.restart_listener ? ", listening on " + config.web.listen_address : "");
    running_ = std::move(config);
    web_security_ = std::move(web_security);
    return true;
  }

  bool StartServer(const fe::config::Config& config,
                   const fe::config::WebSecurityConfig& web_security, std::string& problem) {
    fe::HttpServerOptions http;
    http.listen_address = *fe::config::ParseListenAddress(config.web.listen_address, &problem);
    http.telemetry_path = config.web.telemetry_path;
    http.unhealthy_reason = [this] {
      std::string reason = access_logs_->Health();
      return reason.empty() ? exposition_.Unhealthy(kUnhealthyAfterFailedRenders) : reason;
    };
    http.web_app = [this](std::string_view path, std::string_view query,
                          fe::WebResponse& response) {
      return live_view_->Handle(path, query, response);
    };
    http.render_metrics = [this](bool accepts_gzip) {
      const auto started = std::chrono::steady_clock::now();
      fe::MetricsBody body{exposition_.Serve(accepts_gzip), accepts_gzip};
      scrapes_->Increment();
      last_scrape_duration_->Set(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      return body;
    };
    std::shared_ptr<fe::TlsServer> tls;
    if (web_security.tls) {
      tls = std::make_shared<fe::TlsServer>();
      if (!tls->Update(*web_security.tls, problem)) return false;
      http.tls = tls;
    }
    auto server = std::make_unique<fe::HttpServer>(std::move(http));
    server->SetBasicAuth(std::make_shared<fe::BasicAuth>(web_security.basic_auth_users));
    if (!server->Start(problem)) return false;
    // Only now: if starting failed, the running server keeps its own TLS settings.
    server_ = std::move(server);
    tls_ = std::move(tls);
    return true;
  }

  void RegisterSelfMetrics() {
    prometheus::BuildGauge()
        .Name("fastapi_exporter_build_info")
        .Help("A metric with a constant '1' value labeled by version and revision.")
        .Register(*self_registry_)
        .Add({{"version", FASTAPI_EXPORTER_VERSION}, {"revision", FASTAPI_EXPORTER_REVISION}})
        .Set(1);
    scrapes_ = &prometheus::BuildCounter()
                    .Name("fastapi_exporter_scrapes_total")
                    .Help("Scrapes of the telemetry path served.")
                    .Register(*self_registry_)
                    .Add({});
    last_scrape_duration_ = &prometheus::BuildGauge()
                                 .Name("fastapi_exporter_last_scrape_duration_seconds")
                                 .Help("How long rendering the previous scrape took.")
                                 .Register(*self_registry_)
                                 .Add({});
    reload_successful_ = &prometheus::BuildGauge()
                              .Name("fastapi_exporter_config_last_reload_successful")
                              .Help(
                                  "Whether the last configuration reload succeeded (1) or "
                                  "failed and the previous configuration is still in use (0).")
                              .Register(*self_registry_)
                              .Add({});
    reload_timestamp_ = &prometheus::BuildGauge()
                             .Name("fastapi_exporter_config_last_reload_success_timestamp_seconds")
                             .Help(
                                 "When the configuration was last loaded successfully, in "
                                 "seconds since the Unix epoch.")
                             .Register(*self_registry_)
                             .Add({});
    exposition_.Register("exporter", self_registry_);
    exposition_.Register("sources", sources_registry_);
  }

  const fe::DaemonOptions flags_;
  fe::config::Config running_;
  fe::config::WebSecurityConfig web_security_;
  fe::Exposition exposition_;
  // The exporter's own metrics (build info, scrapes, reloads): the "exporter" collector.
  std::shared_ptr<prometheus::Registry> self_registry_ = std::make_shared<prometheus::Registry>();
  // The access-log and wire sources' own metrics, one registry for both (they share some
  // families, e.g. fastapi_exporter_paths_overflow_total): the "sources" collector.
  std::shared_ptr<prometheus::Registry> sources_registry_ =
      std::make_shared<prometheus::Registry>();
  prometheus::Counter* scrapes_ = nullptr;
  prometheus::Gauge* last_scrape_duration_ = nullptr;
  prometheus::Gauge* reload_successful_ = nullptr;
  prometheus::Gauge* reload_timestamp_ = nullptr;
  std::unique_ptr<fe::access_log::AccessLogCollector> access_logs_;
  std::shared_ptr<fe::process::ProcessCollector> processes_;
  std::unique_ptr<fe::wire::WireCollector> wire_;
  std::shared_ptr<fe::TlsServer> tls_;
  std::unique_ptr<fe::LiveView> live_view_;
  std::unique_ptr<fe::HttpServer> server_;
};

}  // namespace

int RunDaemon(const DaemonOptions& options, config::Config config) {
  Daemon daemon(options);
  return daemon.Run(std::move(config));
}

}  // namespace fastapi_exporter
