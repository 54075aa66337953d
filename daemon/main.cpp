// fastapi-exporter's command line: flags, then one of --version, --web.hash-password,
// --check-config or the daemon (daemon/daemon.hpp).
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "collectors/access_log/openapi_routes.hpp"
#include "config/config.hpp"
#include "config/web_config.hpp"
#include "daemon/basic_auth.hpp"
#include "daemon/daemon.hpp"
#include "daemon/logging.hpp"

namespace fe = fastapi_exporter;

namespace {

struct Flags {
  fe::DaemonOptions daemon;
  std::string check_config_file;
  std::string log_level = "info";
  std::string log_format = "logfmt";
  bool check_config = false;
  bool version = false;
  bool hash_password = false;
};

// Prints every problem of the file as "file:line:column: key: message".
void PrintErrors(const std::string& file, const std::vector<fe::config::ConfigError>& errors) {
  for (const auto& error : errors) {
    std::cerr << fe::config::FormatError(file, error) << "\n";
  }
}

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
  app.add_option("--config.file", flags.daemon.config_file, "Configuration file (YAML)")
      ->capture_default_str();
  app.add_option("--web.listen-address", flags.daemon.listen_address,
                 "Address to listen on, host:port (overrides web.listen_address; default :9869)");
  app.add_option("--web.telemetry-path", flags.daemon.telemetry_path,
                 "Path under which to expose metrics (overrides web.telemetry_path; default "
                 "/metrics)");
  app.add_option("--web.config.file", flags.daemon.web_config_file,
                 "TLS and basic auth settings (exporter-toolkit web-config.yml format); "
                 "re-read on SIGHUP, certificates re-read when they change");
  app.add_option("--log.level", flags.log_level, "Log level: debug, info, warn, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  app.add_option("--log.format", flags.log_format, "Log format: logfmt, json")
      ->capture_default_str()
      ->check(CLI::IsMember({"logfmt", "json"}));
  app.add_option("--path.procfs", flags.daemon.proc_root, "procfs mountpoint")
      ->capture_default_str();
  app.add_option("--path.cgroupfs", flags.daemon.cgroup_root, "cgroup v2 mountpoint")
      ->capture_default_str();
  app.add_flag("--check-config", flags.check_config,
               "Validate the configuration file, print every problem, exit 1 if there is any");
  app.add_option("config", flags.check_config_file,
                 "With --check-config: the file to check (instead of --config.file)");
  app.add_flag("--oneshot", flags.daemon.oneshot,
               "Read every configured access log from its start to its end, print the "
               "resulting metrics to stdout and exit (status 1 if a log could not be read)");
  app.add_flag("--version", flags.version, "Print the version and exit");
  app.add_flag("--web.hash-password", flags.hash_password,
               "Read a password from standard input, print its bcrypt hash for "
               "basic_auth_users, and exit");
  app.add_option("--web.live-interval", flags.daemon.live_interval,
                 "Seconds between the samples the page at / is drawn from")
      ->capture_default_str()
      ->check(CLI::Range(0.2, 600.0));
  app.add_option("--web.live-history", flags.daemon.live_keep,
                 "Seconds of history the page at / keeps (memory: docs/live-view.md)")
      ->capture_default_str()
      ->check(CLI::Range(60.0, 86400.0));
  CLI11_PARSE(app, argc, argv);

  if (flags.version) {
    std::cout << fe::VersionLine() << "\n";
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
    flags.daemon.config_file = flags.check_config_file;
  }
  fe::config::LoadResult loaded = fe::config::LoadConfigFile(flags.daemon.config_file);
  if (flags.check_config) {
    PrintErrors(flags.daemon.config_file, loaded.errors);
    bool ok = loaded.ok();
    if (!flags.daemon.web_config_file.empty()) {
      const fe::config::WebConfigResult web =
          fe::config::LoadWebConfigFile(flags.daemon.web_config_file);
      PrintErrors(flags.daemon.web_config_file, web.errors);
      ok = ok && web.ok();
    }
    if (!ok) return 1;
    std::cout << flags.daemon.config_file << ": OK (" << loaded.config.services.size()
              << " service(s))\n";
    return 0;
  }
  if (!loaded.ok()) {
    PrintErrors(flags.daemon.config_file, loaded.errors);
    spdlog::error("invalid configuration in {}: {} problem(s), not starting",
                  flags.daemon.config_file, loaded.errors.size());
    return 1;
  }
  return fe::RunDaemon(flags.daemon, std::move(loaded.config));
}
