// The reload decision (daemon/reload_plan.hpp), branch by branch: what a SIGHUP restarts,
// updates, swaps and reconfigures for each kind of change between two configurations.
#include "daemon/reload_plan.hpp"

#include <gtest/gtest.h>

namespace fastapi_exporter {
namespace {

config::Config TwoServices() {
  config::Config config;
  config.web.listen_address = "127.0.0.1:9869";
  config.web.telemetry_path = "/metrics";
  config::ServiceConfig api;
  api.name = "api";
  api.process.pidfile = "/run/api.pid";
  config::ServiceConfig worker;
  worker.name = "worker";
  worker.process.systemd_unit = "worker.service";
  config.services = {api, worker};
  return config;
}

config::WebSecurityConfig Tls(const std::string& cert) {
  config::WebSecurityConfig web;
  web.tls = config::TlsServerConfig{cert, "/etc/tls.key"};
  return web;
}

// Nothing but the fields named in each test changes between `running` and `next`.
struct ReloadPlanTest : ::testing::Test {
  config::Config running = TwoServices();
  config::Config next = TwoServices();
  config::WebSecurityConfig running_web;
  config::WebSecurityConfig next_web;
  ReloadPlan Plan() const { return PlanReload(running, running_web, next, next_web); }
};

TEST_F(ReloadPlanTest, NothingChangedTouchesOnlyTheSources) {
  ReloadPlan expected;
  expected.reconfigure_sources = true;  // they keep what is unchanged themselves
  EXPECT_EQ(Plan(), expected);
  EXPECT_FALSE(Plan().restart_listener);
  EXPECT_FALSE(Plan().update_tls);
  EXPECT_FALSE(Plan().swap_basic_auth);
  EXPECT_FALSE(Plan().reconfigure_processes);
  EXPECT_FALSE(Plan().reconfigure_live_view);
}

TEST_F(ReloadPlanTest, NothingChangedWithTlsAndUsersIsStillNothing) {
  running_web = next_web = Tls("/etc/tls.crt");
  running_web.basic_auth_users = next_web.basic_auth_users = {{"prometheus", "$2y$10$x"}};
  EXPECT_EQ(Plan(), ReloadPlan{});
}

TEST_F(ReloadPlanTest, ListenAddressChangedRestartsTheListener) {
  next.web.listen_address = "127.0.0.1:9870";
  const ReloadPlan plan = Plan();
  EXPECT_TRUE(plan.restart_listener);
  EXPECT_FALSE(plan.update_tls);
  EXPECT_FALSE(plan.swap_basic_auth);
  EXPECT_FALSE(plan.reconfigure_processes);
  EXPECT_FALSE(plan.reconfigure_live_view);
}

TEST_F(ReloadPlanTest, TelemetryPathChangedRestartsTheListenerAndTellsTheLiveView) {
  next.web.telemetry_path = "/prometheus";
  const ReloadPlan plan = Plan();
  EXPECT_TRUE(plan.restart_listener);
  EXPECT_TRUE(plan.reconfigure_live_view);  // its page links to the telemetry path
  EXPECT_FALSE(plan.reconfigure_processes);
}

TEST_F(ReloadPlanTest, TlsTurnedOnOrOffRestartsTheListener) {
  next_web = Tls("/etc/tls.crt");
  EXPECT_TRUE(Plan().restart_listener);
  EXPECT_FALSE(Plan().update_tls);  // the new listener starts with it
  std::swap(running_web, next_web);
  EXPECT_TRUE(Plan().restart_listener);
  EXPECT_FALSE(Plan().update_tls);
}

TEST_F(ReloadPlanTest, TlsFilesChangedUpdateTlsWithoutRestart) {
  running_web = Tls("/etc/old.crt");
  next_web = Tls("/etc/new.crt");
  ReloadPlan expected;
  expected.update_tls = true;
  EXPECT_EQ(Plan(), expected);
}

TEST_F(ReloadPlanTest, EveryTlsSettingCountsAsAChange) {
  running_web = next_web = Tls("/etc/tls.crt");
  next_web.tls->key_file = "/etc/other.key";
  EXPECT_TRUE(Plan().update_tls);
  next_web = running_web;
  next_web.tls->client_auth = config::ClientAuth::kRequireAndVerify;
  next_web.tls->client_ca_file = "/etc/ca.crt";
  EXPECT_TRUE(Plan().update_tls);
  next_web = running_web;
  next_web.tls->min_version = 0x0304;
  EXPECT_TRUE(Plan().update_tls);
  next_web = running_web;
  EXPECT_FALSE(Plan().update_tls);
}

TEST_F(ReloadPlanTest, OnlyAuthChangedSwapsTheUsers) {
  next_web.basic_auth_users = {{"prometheus", "$2y$10$x"}};
  ReloadPlan expected;
  expected.swap_basic_auth = true;
  EXPECT_EQ(Plan(), expected);
  // A changed hash is a change; removing every user (no authentication) too.
  running_web.basic_auth_users = {{"prometheus", "$2y$10$y"}};
  EXPECT_EQ(Plan(), expected);
  std::swap(running_web, next_web);
  next_web.basic_auth_users.clear();
  EXPECT_EQ(Plan(), expected);
}

TEST_F(ReloadPlanTest, ServiceAddedReconfiguresProcessesAndLiveView) {
  config::ServiceConfig extra;
  extra.name = "extra";
  extra.process.pid = 1;
  next.services.push_back(extra);
  const ReloadPlan plan = Plan();
  EXPECT_TRUE(plan.reconfigure_processes);
  EXPECT_TRUE(plan.reconfigure_live_view);
  EXPECT_TRUE(plan.reconfigure_sources);
  EXPECT_FALSE(plan.restart_listener);
  EXPECT_FALSE(plan.swap_basic_auth);
}

TEST_F(ReloadPlanTest, ServiceRemovedOrRenamedReconfiguresProcessesAndLiveView) {
  next.services.pop_back();
  EXPECT_TRUE(Plan().reconfigure_processes);
  EXPECT_TRUE(Plan().reconfigure_live_view);
  next = running;
  next.services[1].name = "jobs";
  EXPECT_TRUE(Plan().reconfigure_processes);
  EXPECT_TRUE(Plan().reconfigure_live_view);
}

TEST_F(ReloadPlanTest, ProcessSelectorChangedReconfiguresOnlyTheProcessCollector) {
  next.services[0].process.children = false;
  const ReloadPlan plan = Plan();
  EXPECT_TRUE(plan.reconfigure_processes);
  EXPECT_FALSE(plan.reconfigure_live_view);
}

TEST_F(ReloadPlanTest, BucketsOrPrefixChangedReconfigureTheLiveViewNotProcesses) {
  next.services[1].buckets = {0.1, 1};
  EXPECT_TRUE(Plan().reconfigure_live_view);
  EXPECT_FALSE(Plan().reconfigure_processes);
  next = running;
  next.metric_prefix = "api";
  EXPECT_TRUE(Plan().reconfigure_live_view);
  EXPECT_FALSE(Plan().reconfigure_processes);
}

TEST_F(ReloadPlanTest, AccessLogChangedReachesOnlyTheSources) {
  config::AccessLogConfig log;
  log.path = "/var/log/api/*.log";
  next.services[0].access_logs.push_back(log);
  ReloadPlan expected;
  expected.reconfigure_sources = true;
  EXPECT_EQ(Plan(), expected);
}

TEST_F(ReloadPlanTest, CombinedChangesCombine) {
  // A new address and a service more: restart, and the collectors follow.
  next.web.listen_address = ":9900";
  next.services.pop_back();
  next_web.basic_auth_users = {{"prometheus", "$2y$10$x"}};
  ReloadPlan plan = Plan();
  EXPECT_TRUE(plan.restart_listener);
  EXPECT_FALSE(plan.swap_basic_auth);  // the new listener starts with the new users
  EXPECT_TRUE(plan.reconfigure_processes);
  EXPECT_TRUE(plan.reconfigure_live_view);
  // New certificate and new users on the same address: both, without a restart.
  next = running;
  running_web = Tls("/etc/old.crt");
  next_web = Tls("/etc/new.crt");
  next_web.basic_auth_users = {{"prometheus", "$2y$10$x"}};
  plan = Plan();
  EXPECT_FALSE(plan.restart_listener);
  EXPECT_TRUE(plan.update_tls);
  EXPECT_TRUE(plan.swap_basic_auth);
  EXPECT_FALSE(plan.reconfigure_processes);
}

}  // namespace
}  // namespace fastapi_exporter
