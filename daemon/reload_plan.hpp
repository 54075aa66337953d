// What a reload (SIGHUP) changes in the running daemon, decided from the running and the new
// configuration alone: no I/O, so every branch is unit-tested (tests/unit/reload_plan_test.cpp)
// and daemon/daemon.cpp only carries the plan out.
#pragma once

#include "config/config.hpp"
#include "config/web_config.hpp"

namespace fastapi_exporter {

struct ReloadPlan {
  // A new listener replaces the running one: the listen address, the telemetry path or
  // whether TLS is served changed. Carrying it out: stop the old one, start the new one with
  // the new TLS settings and users; if that fails, start the old one again (its address is
  // free again) and fail the reload, so the exporter never serves nothing.
  bool restart_listener = false;
  // Without a restart: the running listener's TLS settings (files, client auth, minimum
  // version) are replaced; on failure the reload fails before anything else changed.
  bool update_tls = false;
  // Without a restart: the basic-auth users changed and are swapped in (the running server's
  // cached checks of the old users go with them).
  bool swap_basic_auth = false;
  // The process collector: the list of service names and process selectors (all it reads)
  // changed.
  bool reconfigure_processes = false;
  // The live view: service names, their buckets, the metric prefix or the telemetry path (all
  // it reads) changed.
  bool reconfigure_live_view = false;
  // The access-log and wire sources are always handed the new configuration: each keeps
  // what is unchanged itself (the access logs by comparing the stages' own options,
  // access_log/config_translation.hpp; the wire by its request settings), and a second
  // comparison here would only duplicate theirs.
  bool reconfigure_sources = true;

  bool operator==(const ReloadPlan&) const = default;
};

ReloadPlan PlanReload(const config::Config& running, const config::WebSecurityConfig& running_web,
                      const config::Config& next, const config::WebSecurityConfig& next_web);

}  // namespace fastapi_exporter
