// fastapi-exporter: the daemon's wiring. Flags, config, collectors, HTTP, signals.
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <malloc.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>

#include "collectors/access_log/access_log_collector.hpp"
#include "collectors/access_log/openapi_routes.hpp"
#include "collectors/exposition.hpp"
#include "collectors/process/process_collector.hpp"
#include "collectors/wire/wire_collector.hpp"
#include "config/config.hpp"
#include "config/listen_address.hpp"
#include "config/web_config.hpp"
#include "daemon/http_server.hpp"
#include "daemon/live_view.hpp"
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
  std::string web_config_file;
  std::string proc_root = "/proc";
  std::string cgroup_root = "/sys/fs/cgroup";
  bool check_config = false;
  bool oneshot = false;
  bool version = false;
  bool hash_password = false;
  double live_interval = 5;  // seconds between the live view's samples
  double live_keep = 3600;   // seconds of history it keeps
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
void PrintErrors(const std::string& file, const std::vector<fe::config::ConfigError>& errors) {
  for (const auto& error : errors) {
    std::cerr << fe::config::FormatError(file, error) << "\n";
  }
}

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
bool Finish(const Flags& flags, fe::config::Config& config, std::string& problem) {
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
  explicit Daemon(Flags flags) : flags_(std::move(flags)) {}

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
    access_logs_ = std::make_unique<fe::access_log::AccessLogCollector>(config, *requests_registry_,
                                                                        access_log_options);
    exposition_.Register(access_logs_->request_metrics());
    if (flags_.oneshot) {
      access_logs_->ReadOnce();
      std::cout << exposition_.Render();
      return 0;
    }
    processes_ = std::make_shared<fe::process::ProcessCollector>(
        config.services,
        fe::process::ProcessCollectorOptions{flags_.proc_root, flags_.cgroup_root});
    exposition_.Register(processes_);
    access_logs_->Start();
    wire_ = std::make_unique<fe::wire::WireCollector>(
        config, *requests_registry_, access_logs_->request_store(),
        fe::wire::WireOptions{flags_.proc_root, flags_.cgroup_root});
    wire_->Start();
    SetLandingPage(config);
    fe::LiveViewOptions live;
    live.history.interval_seconds = flags_.live_interval;
    live.history.keep_seconds = flags_.live_keep;
    live_view_ = std::make_unique<fe::LiveView>(exposition_, access_logs_->recent_lines(), live);
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
    // The listener changes only when it has to: a scrape in flight is not cut for nothing.
    const bool restart_server = config.web.listen_address != running_.web.listen_address ||
                                config.web.telemetry_path != running_.web.telemetry_path ||
                                web_security.tls.has_value() != web_security_.tls.has_value();
    if (restart_server) {
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
      if (web_security.tls && !(*web_security.tls == *web_security_.tls) &&
          !tls_->Update(*web_security.tls, problem)) {
        return false;
      }
      server_->SetBasicAuth(std::make_shared<fe::BasicAuth>(web_security.basic_auth_users));
    }
    processes_->Reconfigure(config.services);
    access_logs_->Reconfigure(config);
    wire_->Reconfigure(config);
    SetLandingPage(config);
    live_view_->Configure(config);
    spdlog::info("reloaded {}: {} service(s){}", flags_.config_file, config.services.size(),
                 restart_server ? ", listening on " + config.web.listen_address : "");
    running_ = std::move(config);
    web_security_ = std::move(web_security);
    return true;
  }

  bool StartServer(const fe::config::Config& config,
                   const fe::config::WebSecurityConfig& web_security, std::string& problem) {
    fe::HttpServerOptions http;
    http.listen_address = *fe::config::ParseListenAddress(config.web.listen_address, &problem);
    http.telemetry_path = config.web.telemetry_path;
    http.landing_page_html = [this] {
      std::lock_guard lock(landing_mutex_);
      return landing_page_;
    };
    http.unhealthy_reason = [this] { return access_logs_->Health(); };
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

  void SetLandingPage(const fe::config::Config& config) {
    std::string page = LandingPage(config);
    std::lock_guard lock(landing_mutex_);
    landing_page_ = std::move(page);
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
    exposition_.Register(self_registry_);
    exposition_.Register(requests_registry_);
  }

  const Flags flags_;
  fe::config::Config running_;
  fe::config::WebSecurityConfig web_security_;
  fe::Exposition exposition_;
  std::shared_ptr<prometheus::Registry> self_registry_ = std::make_shared<prometheus::Registry>();
  std::shared_ptr<prometheus::Registry> requests_registry_ =
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
  std::mutex landing_mutex_;
  std::string landing_page_;
};

}  // namespace

int main(int argc, char** argv) {
  // glibc gives each thread that allocates an arena of its own, and keeps what it freed:
  // civetweb's workers rendering a scrape each grew one, which cost several MB of RSS. One
  // arena is enough: the per-line path does not allocate.
  mallopt(M_ARENA_MAX, 1);
  fe::access_log::InitRouteDiscovery();
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
  app.add_option("--web.config.file", flags.web_config_file,
                 "TLS and basic auth settings (exporter-toolkit web-config.yml format); "
                 "re-read on SIGHUP, certificates re-read when they change");
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
  app.add_flag("--web.hash-password", flags.hash_password,
               "Read a password from standard input, print its bcrypt hash for "
               "basic_auth_users, and exit");
  app.add_option("--web.live-interval", flags.live_interval,
                 "Seconds between the samples the page at / is drawn from")
      ->capture_default_str()
      ->check(CLI::Range(0.2, 600.0));
  app.add_option("--web.live-history", flags.live_keep,
                 "Seconds of history the page at / keeps (memory: docs/live-view.md)")
      ->capture_default_str()
      ->check(CLI::Range(60.0, 86400.0));
  CLI11_PARSE(app, argc, argv);

  if (flags.version) {
    std::cout << VersionLine() << "\n";
    return 0;
  }
  if (flags.hash_password) {
    std::string password;
    std::getline(std::cin, password);
    if (password.empty()) {
      std::cerr << "--web.hash-password: no password on standard input\n";
      return 1;
    }
    std::string error;
    const std::string hash = fe::HashPassword(password, error);
    if (hash.empty()) {
      std::cerr << error << "\n";
      return 1;
    }
    std::cout << hash << "\n";
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
    PrintErrors(flags.config_file, loaded.errors);
    bool ok = loaded.ok();
    if (!flags.web_config_file.empty()) {
      const fe::config::WebConfigResult web = fe::config::LoadWebConfigFile(flags.web_config_file);
      PrintErrors(flags.web_config_file, web.errors);
      ok = ok && web.ok();
    }
    if (!ok) return 1;
    std::cout << flags.config_file << ": OK (" << loaded.config.services.size() << " service(s))\n";
    return 0;
  }
  if (!loaded.ok()) {
    PrintErrors(flags.config_file, loaded.errors);
    spdlog::error("invalid configuration in {}: {} problem(s), not starting", flags.config_file,
                  loaded.errors.size());
    return 1;
  }
  Daemon daemon(flags);
  return daemon.Run(std::move(loaded.config));
}
