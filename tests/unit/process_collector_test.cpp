#include "collectors/process/process_collector.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include "tests/unit/fake_proc.hpp"

namespace fastapi_exporter::process {
namespace {

using testing::FakeProc;
using testing::FakeProcess;

// Reads one sample from collected families; nullopt when the series is absent.
std::optional<double> Value(const std::vector<prometheus::MetricFamily>& families,
                            const std::string& name, const std::string& service,
                            const std::string& kind = "") {
  for (const auto& family : families) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      bool service_matches = false, kind_matches = kind.empty();
      for (const auto& label : metric.label) {
        service_matches |= label.name == "service" && label.value == service;
        kind_matches |= label.name == "kind" && label.value == kind;
      }
      if (service_matches && kind_matches) {
        return family.type == prometheus::MetricType::Counter ? metric.counter.value
                                                              : metric.gauge.value;
      }
    }
  }
  return std::nullopt;
}

config::ServiceConfig Service(const std::string& name, config::ProcessSelector selector) {
  config::ServiceConfig service;
  service.name = name;
  service.process = std::move(selector);
  return service;
}

class ProcessCollectorTest : public ::testing::Test {
 protected:
  ProcessCollector Collector(std::vector<config::ServiceConfig> services) {
    return ProcessCollector(services, {fake.proc_root(), fake.cgroup_root()});
  }
  FakeProcess Process(pid_t pid, pid_t ppid, uint64_t cpu_ticks) {
    FakeProcess p;
    p.pid = pid;
    p.ppid = ppid;
    p.utime = cpu_ticks;
    p.start_ticks = 1000 + pid;
    return p;
  }
  const double tick = 1.0 / double(sysconf(_SC_CLK_TCK));
  const double page = double(sysconf(_SC_PAGESIZE));
  FakeProc fake;
};

TEST_F(ProcessCollectorTest, SumsTheWholeGroupFoundThroughAPidfile) {
  FakeProcess master = Process(100, 1, 50);
  master.stime = 10;
  master.children = {101, 102};
  master.rss_pages = 1000;
  master.vsize = 1 << 20;
  master.threads = 2;
  master.open_fds = 5;
  master.max_open_files_soft = "1024";
  master.majflt = 3;
  master.voluntary_switches = 7;
  master.read_bytes = 4096;
  master.start_ticks = 500;
  FakeProcess worker1 = Process(101, 100, 100);
  worker1.rss_pages = 3000;
  worker1.threads = 4;
  worker1.open_fds = 9;
  worker1.max_open_files_soft = "65536";
  worker1.write_bytes = 8192;
  FakeProcess worker2 = Process(102, 100, 200);
  worker2.rss_pages = 2000;
  worker2.children = {103};
  FakeProcess grandchild = Process(103, 102, 1);
  FakeProcess unrelated = Process(200, 1, 999);
  for (const auto& p : {master, worker1, worker2, grandchild, unrelated}) fake.Write(p);
  const std::string pidfile = fake.WriteFile("run/app.pid", "100\n");

  auto collector = Collector({Service("api", {.pidfile = pidfile})});
  const auto families = collector.Collect();
  EXPECT_EQ(Value(families, "fastapi_exporter_service_up", "api"), 1);
  EXPECT_EQ(Value(families, "process_processes", "api"), 4);
  EXPECT_DOUBLE_EQ(*Value(families, "process_cpu_seconds_total", "api"),
                   (60 + 100 + 200 + 1) * tick);
  EXPECT_DOUBLE_EQ(*Value(families, "process_resident_memory_bytes", "api"), 6000 * page);
  EXPECT_EQ(Value(families, "process_virtual_memory_bytes", "api"), 1 << 20);
  EXPECT_EQ(Value(families, "process_threads", "api"), 2 + 4 + 1 + 1);
  EXPECT_EQ(Value(families, "process_open_fds", "api"), 5 + 9 + 3 + 3);
  EXPECT_EQ(Value(families, "process_max_fds", "api"), 65536);
  EXPECT_EQ(Value(families, "process_major_page_faults_total", "api"), 3);
  EXPECT_EQ(Value(families, "process_context_switches_total", "api", "voluntary"), 7);
  EXPECT_EQ(Value(families, "process_io_read_bytes_total", "api"), 4096);
  EXPECT_EQ(Value(families, "process_io_write_bytes_total", "api"), 8192);
  EXPECT_DOUBLE_EQ(*Value(families, "process_start_time_seconds", "api"), 1700000000 + 500 * tick);
}

TEST_F(ProcessCollectorTest, EachSelector) {
  FakeProcess by_pid = Process(10, 1, 1);
  FakeProcess by_comm = Process(20, 1, 2);
  by_comm.comm = "gunicorn";
  FakeProcess by_cmdline = Process(30, 1, 4);
  by_cmdline.argv = {"/usr/bin/python3", "-m", "uvicorn", "main:app", "--port", "8000"};
  FakeProcess in_unit = Process(40, 1, 8);
  FakeProcess in_unit_sub = Process(41, 1, 16);
  for (const auto& p : {by_pid, by_comm, by_cmdline, in_unit, in_unit_sub}) fake.Write(p);
  fake.WriteCgroup("system.slice/app.service", {40}, 5'000'000);
  fake.WriteCgroup("system.slice/app.service/worker", {41}, 0);
  fake.WriteCgroup("custom.slice/other.service", {10}, 7'000'000);

  auto collector = Collector({
      Service("pid", {.pid = 10, .children = false}),
      Service("comm", {.comm = "gunicorn"}),
      Service("cmdline", {.cmdline = "uvicorn main:app .*--port 8000"}),
      Service("unit", {.systemd_unit = "app.service"}),
      Service("unit-elsewhere", {.systemd_unit = "other.service"}),
      Service("nothing", {.comm = "nginx"}),
  });
  const auto families = collector.Collect();
  EXPECT_EQ(Value(families, "process_processes", "pid"), 1);
  EXPECT_DOUBLE_EQ(*Value(families, "process_cpu_seconds_total", "pid"), 1 * tick);
  EXPECT_EQ(Value(families, "process_processes", "comm"), 1);
  EXPECT_DOUBLE_EQ(*Value(families, "process_cpu_seconds_total", "comm"), 2 * tick);
  EXPECT_EQ(Value(families, "process_processes", "cmdline"), 1);
  EXPECT_DOUBLE_EQ(*Value(families, "process_cpu_seconds_total", "cmdline"), 4 * tick);
  // The unit's processes include its sub-cgroups; its CPU is the cgroup's own accounting.
  EXPECT_EQ(Value(families, "process_processes", "unit"), 2);
  EXPECT_DOUBLE_EQ(*Value(families, "process_cpu_seconds_total", "unit"), 5.0);
  EXPECT_EQ(Value(families, "process_processes", "unit-elsewhere"), 1);
  EXPECT_DOUBLE_EQ(*Value(families, "process_cpu_seconds_total", "unit-elsewhere"), 7.0);
  EXPECT_EQ(Value(families, "fastapi_exporter_service_up", "nothing"), 0);
  EXPECT_FALSE(Value(families, "process_processes", "nothing"));
  EXPECT_FALSE(Value(families, "process_resident_memory_bytes", "nothing"));
  EXPECT_FALSE(Value(families, "process_cpu_seconds_total", "nothing"));
}

TEST_F(ProcessCollectorTest, ChildrenWithoutTheKernelsChildrenFile) {
  FakeProcess master = Process(100, 1, 1);
  master.kernel_has_children_file = false;
  FakeProcess worker = Process(101, 100, 2);
  worker.kernel_has_children_file = false;
  FakeProcess grandchild = Process(102, 101, 4);
  grandchild.kernel_has_children_file = false;
  for (const auto& p : {master, worker, grandchild, Process(200, 1, 8)}) fake.Write(p);
  auto collector = Collector({Service("api", {.pid = 100})});
  const auto families = collector.Collect();
  EXPECT_EQ(Value(families, "process_processes", "api"), 3);
  EXPECT_DOUBLE_EQ(*Value(families, "process_cpu_seconds_total", "api"), 7 * tick);
}

TEST_F(ProcessCollectorTest, ExitedWorkersCpuStaysInTheTotal) {
  FakeProcess master = Process(100, 1, 10);
  master.children = {101};
  fake.Write(master);
  fake.Write(Process(101, 100, 500));
  auto collector = Collector({Service("api", {.pid = 100})});
  EXPECT_DOUBLE_EQ(*Value(collector.Collect(), "process_cpu_seconds_total", "api"), 510 * tick);

  // The worker is replaced; the master has not reaped it yet.
  fake.Remove(101);
  master.children = {102};
  fake.Write(master);
  fake.Write(Process(102, 100, 3));
  EXPECT_DOUBLE_EQ(*Value(collector.Collect(), "process_cpu_seconds_total", "api"), 513 * tick);

  // The master reaps it (520 ticks in all); the replacement goes on.
  master.cutime = 520;
  fake.Write(master);
  fake.Write(Process(102, 100, 5));
  EXPECT_DOUBLE_EQ(*Value(collector.Collect(), "process_cpu_seconds_total", "api"),
                   (10 + 520 + 5) * tick);
}

TEST_F(ProcessCollectorTest, ReusedPidDoesNotInheritTheOldProcess) {
  fake.Write(Process(100, 1, 300));
  auto collector = Collector({Service("api", {.pid = 100})});
  EXPECT_DOUBLE_EQ(*Value(collector.Collect(), "process_cpu_seconds_total", "api"), 300 * tick);
  FakeProcess reused = Process(100, 1, 2);
  reused.start_ticks = 99999;
  fake.Write(reused);
  EXPECT_DOUBLE_EQ(*Value(collector.Collect(), "process_cpu_seconds_total", "api"), 302 * tick);
}

TEST_F(ProcessCollectorTest, ServiceGoesAndComesBackThroughItsPidfile) {
  fake.Write(Process(100, 1, 40));
  const std::string pidfile = fake.WriteFile("run/app.pid", "100");
  auto collector = Collector({Service("api", {.pidfile = pidfile})});
  EXPECT_EQ(Value(collector.Collect(), "fastapi_exporter_service_up", "api"), 1);

  fake.Remove(100);
  auto families = collector.Collect();
  EXPECT_EQ(Value(families, "fastapi_exporter_service_up", "api"), 0);
  EXPECT_FALSE(Value(families, "process_resident_memory_bytes", "api"));
  EXPECT_FALSE(Value(families, "process_processes", "api"));
  EXPECT_DOUBLE_EQ(*Value(families, "process_cpu_seconds_total", "api"), 40 * tick);

  fake.Write(Process(300, 1, 1));
  fake.WriteFile("run/app.pid", "300\n");
  families = collector.Collect();
  EXPECT_EQ(Value(families, "fastapi_exporter_service_up", "api"), 1);
  EXPECT_DOUBLE_EQ(*Value(families, "process_cpu_seconds_total", "api"), 41 * tick);
}

TEST_F(ProcessCollectorTest, GarbagePidfileIsAReadErrorNotAProcess) {
  const std::string pidfile = fake.WriteFile("run/app.pid", "not-a-pid\n");
  auto collector = Collector({Service("api", {.pidfile = pidfile})});
  collector.Collect();
  const auto families = collector.Collect();
  EXPECT_EQ(Value(families, "fastapi_exporter_service_up", "api"), 0);
  EXPECT_EQ(Value(families, "fastapi_exporter_read_errors_total", "api", "pidfile"), 2);
}

// Issue #16: the demo watched the exporter with a cmdline pattern that matched every
// exporter on the machine; `pid: self` is the proc root's `self`, and nothing else.
TEST_F(ProcessCollectorTest, PidSelfIsTheExporterAloneAndItsOwnMetricsAreSeparate) {
  FakeProcess self = Process(300, 1, 70);
  self.stime = 30;
  self.argv = {"/usr/bin/fastapi-exporter", "--config.file=a.yaml"};
  self.rss_pages = 2500;
  self.vsize = 50 << 20;
  self.threads = 6;
  self.open_fds = 11;
  self.max_open_files_soft = "524288";
  self.start_ticks = 9000;
  FakeProcess other = Process(301, 1, 5);
  other.argv = {"/usr/bin/fastapi-exporter", "--config.file=b.yaml"};
  fake.Write(self);
  fake.Write(other);
  std::filesystem::create_directory_symlink("300", fake.proc_root() + "/self");

  auto collector = Collector({Service("exporter", {.pid_self = true, .children = false})});
  const auto families = collector.Collect();
  EXPECT_EQ(Value(families, "process_processes", "exporter"), 1);
  EXPECT_DOUBLE_EQ(*Value(families, "process_cpu_seconds_total", "exporter"), 100 * tick);
  // The exporter's own, without labels, whatever the services are.
  const auto own = [&](const std::string& name) -> std::optional<double> {
    for (const auto& family : families) {
      if (family.name != name) continue;
      EXPECT_EQ(family.metric.size(), 1u) << name;
      EXPECT_TRUE(family.metric[0].label.empty()) << name;
      return family.type == prometheus::MetricType::Counter ? family.metric[0].counter.value
                                                            : family.metric[0].gauge.value;
    }
    return std::nullopt;
  };
  EXPECT_DOUBLE_EQ(*own("fastapi_exporter_process_cpu_seconds_total"), 100 * tick);
  EXPECT_EQ(own("fastapi_exporter_process_resident_memory_bytes"), 2500 * page);
  EXPECT_EQ(own("fastapi_exporter_process_virtual_memory_bytes"), 50 << 20);
  EXPECT_EQ(own("fastapi_exporter_process_threads"), 6);
  EXPECT_EQ(own("fastapi_exporter_process_open_fds"), 11);
  EXPECT_EQ(own("fastapi_exporter_process_max_fds"), 524288);
  EXPECT_DOUBLE_EQ(*own("fastapi_exporter_process_start_time_seconds"), 1700000000 + 9000 * tick);

  // With no service at all, the exporter's own metrics are still there.
  auto bare = Collector({});
  const auto bare_families = bare.Collect();
  EXPECT_TRUE(std::any_of(bare_families.begin(), bare_families.end(), [](const auto& family) {
    return family.name == "fastapi_exporter_process_resident_memory_bytes";
  }));
}

TEST_F(ProcessCollectorTest, EveryReadErrorKindIsThereAtZeroFromTheFirstScrape) {
  fake.Write(Process(100, 1, 10));
  auto collector = Collector({Service("api", {.pid = 100})});
  const auto families = collector.Collect();
  for (const char* kind : {"pidfile", "cgroup", "stat", "status", "io", "fd", "limits"}) {
    EXPECT_EQ(Value(families, "fastapi_exporter_read_errors_total", "api", kind), 0) << kind;
  }
}

TEST_F(ProcessCollectorTest, UnreadableFilesLeaveTheirSeriesOutAndCount) {
  FakeProcess master = Process(100, 1, 10);
  master.children = {101};
  fake.Write(master);
  fake.Write(Process(101, 100, 20));
  fake.MakeUnreadable(101, "io");
  fake.MakeUnreadable(101, "fd");
  fake.MakeUnreadable(101, "limits");
  auto collector = Collector({Service("api", {.pid = 100})});
  const auto families = collector.Collect();
  EXPECT_FALSE(Value(families, "process_io_read_bytes_total", "api"));
  EXPECT_FALSE(Value(families, "process_open_fds", "api"));
  EXPECT_FALSE(Value(families, "process_max_fds", "api"));
  EXPECT_EQ(Value(families, "fastapi_exporter_read_errors_total", "api", "io"), 1);
  EXPECT_EQ(Value(families, "fastapi_exporter_read_errors_total", "api", "fd"), 1);
  EXPECT_EQ(Value(families, "fastapi_exporter_read_errors_total", "api", "limits"), 1);
  // What could be read is still there and right.
  EXPECT_DOUBLE_EQ(*Value(families, "process_cpu_seconds_total", "api"), 30 * tick);
  EXPECT_EQ(Value(families, "process_processes", "api"), 2);

  fake.MakeUnreadable(101, "stat");
  const auto later = collector.Collect();
  EXPECT_EQ(Value(later, "fastapi_exporter_read_errors_total", "api", "stat"), 1);
  EXPECT_EQ(Value(later, "process_processes", "api"), 1);
}

TEST_F(ProcessCollectorTest, UnitRestartDoesNotResetCgroupCpu) {
  fake.Write(Process(40, 1, 1));
  fake.WriteCgroup("system.slice/app.service", {40}, 9'000'000);
  auto collector = Collector({Service("unit", {.systemd_unit = "app.service"})});
  EXPECT_DOUBLE_EQ(*Value(collector.Collect(), "process_cpu_seconds_total", "unit"), 9.0);
  // Unit stopped: the cgroup is gone, the counter holds.
  fake.RemoveCgroup("system.slice/app.service");
  fake.Remove(40);
  auto families = collector.Collect();
  EXPECT_EQ(Value(families, "fastapi_exporter_service_up", "unit"), 0);
  EXPECT_DOUBLE_EQ(*Value(families, "process_cpu_seconds_total", "unit"), 9.0);
  // Started again: a fresh cgroup counts from zero; the total continues.
  fake.Write(Process(50, 1, 1));
  fake.WriteCgroup("system.slice/app.service", {50}, 500'000);
  families = collector.Collect();
  EXPECT_EQ(Value(families, "fastapi_exporter_service_up", "unit"), 1);
  EXPECT_DOUBLE_EQ(*Value(families, "process_cpu_seconds_total", "unit"), 9.5);
}

// The live view's sampler: the same CPU and memory a scrape gives, from stat (and the
// cgroup's cpu.stat) alone: unreadable fds and io do not matter to it, and its reading leaves
// the scrape's problem counts alone.
TEST_F(ProcessCollectorTest, ReadUsageGivesTheScrapesCpuAndMemoryFromStatAlone) {
  FakeProcess master = Process(100, 1, 50);
  master.stime = 10;
  master.children = {101};
  master.rss_pages = 1000;
  FakeProcess worker = Process(101, 100, 100);
  worker.rss_pages = 3000;
  FakeProcess in_unit = Process(40, 1, 8);
  in_unit.rss_pages = 10;
  for (const auto& p : {master, worker, in_unit}) fake.Write(p);
  fake.MakeUnreadable(101, "fd");
  fake.MakeUnreadable(101, "io");
  fake.WriteCgroup("system.slice/app.service", {40}, 5'000'000);
  const std::string pidfile = fake.WriteFile("run/app.pid", "100\n");
  auto collector = Collector({Service("api", {.pidfile = pidfile}),
                              Service("unit", {.systemd_unit = "app.service"}),
                              Service("gone", {.pidfile = fake.root() + "/run/missing.pid"})});

  auto usage = collector.ReadUsage();
  ASSERT_EQ(usage.size(), 3u);
  EXPECT_DOUBLE_EQ(usage.at("api").cpu_seconds, (60 + 100) * tick);
  EXPECT_DOUBLE_EQ(usage.at("api").resident_bytes, 4000 * page);
  EXPECT_DOUBLE_EQ(usage.at("unit").cpu_seconds, 5.0);  // the cgroup's usage_usec
  EXPECT_DOUBLE_EQ(usage.at("unit").resident_bytes, 10 * page);
  EXPECT_TRUE(std::isnan(usage.at("gone").cpu_seconds));
  EXPECT_TRUE(std::isnan(usage.at("gone").resident_bytes));

  const auto families = collector.Collect();
  for (const char* service : {"api", "unit"}) {
    EXPECT_EQ(Value(families, "process_cpu_seconds_total", service), usage.at(service).cpu_seconds);
    EXPECT_EQ(Value(families, "process_resident_memory_bytes", service),
              usage.at(service).resident_bytes);
  }
  EXPECT_EQ(Value(families, "process_cpu_seconds_total", "gone"), std::nullopt);
  // One scrape, one count each: ReadUsage counted nothing.
  EXPECT_EQ(Value(families, "fastapi_exporter_read_errors_total", "api", "fd"), 1);
  EXPECT_EQ(Value(families, "fastapi_exporter_read_errors_total", "api", "io"), 1);

  // The worker exits: its CPU stays counted, its memory goes; the scrape agrees.
  master.children = {};
  fake.Write(master);
  fake.Remove(101);
  usage = collector.ReadUsage();
  EXPECT_DOUBLE_EQ(usage.at("api").cpu_seconds, (60 + 100) * tick);
  EXPECT_DOUBLE_EQ(usage.at("api").resident_bytes, 1000 * page);
  const auto after = collector.Collect();
  EXPECT_EQ(Value(after, "process_cpu_seconds_total", "api"), usage.at("api").cpu_seconds);
  EXPECT_EQ(Value(after, "process_resident_memory_bytes", "api"), usage.at("api").resident_bytes);
}

}  // namespace
}  // namespace fastapi_exporter::process
