#include "daemon/reload_plan.hpp"

#include <algorithm>

namespace fastapi_exporter {
namespace {

bool SameProcessSelectors(const config::Config& a, const config::Config& b) {
  return std::equal(a.services.begin(), a.services.end(), b.services.begin(), b.services.end(),
                    [](const config::ServiceConfig& x, const config::ServiceConfig& y) {
                      return x.name == y.name && x.process == y.process;
                    });
}

bool SameLiveView(const config::Config& a, const config::Config& b) {
  return a.metric_prefix == b.metric_prefix && a.web.telemetry_path == b.web.telemetry_path &&
         std::equal(a.services.begin(), a.services.end(), b.services.begin(), b.services.end(),
                    [](const config::ServiceConfig& x, const config::ServiceConfig& y) {
                      return x.name == y.name && x.buckets == y.buckets;
                    });
}

}  // namespace

ReloadPlan PlanReload(const config::Config& running, const config::WebSecurityConfig& running_web,
                      const config::Config& next, const config::WebSecurityConfig& next_web) {
  ReloadPlan plan;
  // The listener changes only when it has to: a scrape in flight is not cut for nothing.
  plan.restart_listener = next.web.listen_address != running.web.listen_address ||
                          next.web.telemetry_path != running.web.telemetry_path ||
                          next_web.tls.has_value() != running_web.tls.has_value();
  if (!plan.restart_listener) {
    plan.update_tls = next_web.tls && !(*next_web.tls == *running_web.tls);
    plan.swap_basic_auth = next_web.basic_auth_users != running_web.basic_auth_users;
  }
  plan.reconfigure_processes = !SameProcessSelectors(running, next);
  plan.reconfigure_live_view = !SameLiveView(running, next);
  return plan;
}

}  // namespace fastapi_exporter
