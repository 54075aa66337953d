#include "collectors/process/process_collector.hpp"

#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "collectors/metric_families.hpp"
#include "collectors/process/group_accounting.hpp"
#include "collectors/process/process_finder.hpp"
#include "collectors/process/procfs.hpp"

namespace fastapi_exporter::process {
namespace {

using prometheus::MetricType;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Counts a problem per kind, and logs each distinct message once while it lasts, so a
// permanently unreadable file does not write a log line per scrape.
class ProblemLog {
 public:
  // Every kind's series exists from the first scrape, at 0: rate() and increase() need the
  // zero before the first error to see it.
  ProblemLog() {
    for (const char* kind : {"pidfile", "cgroup", "stat", "status", "io", "fd", "limits"}) {
      counts_[kind] = 0;
    }
  }
  void Report(const std::string& service, const std::string& kind, const std::string& message) {
    ++counts_[kind];
    seen_now_.insert(message);
    if (active_.insert(message).second) {
      spdlog::warn("service {}: {}", service, message);
    }
  }
  // Called after each scrape: problems not seen again are forgotten, so they log again if
  // they come back.
  void EndScrape() {
    std::erase_if(active_, [&](const std::string& m) { return !seen_now_.contains(m); });
    seen_now_.clear();
  }
  const std::map<std::string, uint64_t>& counts() const { return counts_; }

 private:
  std::map<std::string, uint64_t> counts_;
  std::set<std::string> active_;
  std::set<std::string> seen_now_;
};

// A counter read from a source that may restart from zero (a unit's cgroup is recreated
// when the unit restarts); folds each restart into a base so the total never decreases.
class ResettableCounter {
 public:
  void Observe(uint64_t value) {
    if (value < last_) base_ += last_;
    last_ = value;
    seen_ = true;
  }
  bool seen() const { return seen_; }
  uint64_t total() const { return base_ + last_; }

 private:
  uint64_t base_ = 0;
  uint64_t last_ = 0;
  bool seen_ = false;
};

// Soft fd limits by process, re-read once a minute: the limits file is as costly to read as
// stat, and a limit seldom changes.
struct CachedLimit {
  uint64_t max_fds = 0;
  std::chrono::steady_clock::time_point read_at;
  bool seen = false;  // in the current scrape
};

struct Service {
  std::string name;
  config::ProcessSelector selector;
  std::map<std::pair<pid_t, uint64_t>, CachedLimit> limits;
  std::unique_ptr<ProcessFinder> finder;
  bool include_children = true;
  GroupAccounting accounting;
  ResettableCounter cgroup_cpu_usec;
  bool ever_seen = false;
  ProblemLog problems;
  // The same for ReadUsage, apart: its samples hold CPU ticks only.
  GroupAccounting usage_accounting;
  ResettableCounter usage_cgroup_cpu_usec;
  bool usage_ever_seen = false;
};

// Gauges summed or folded over the live processes of a group. A *_valid flag is false when
// some process's value could not be read: a partial sum would be a wrong value, so it is left
// out.
struct GroupGauges {
  uint64_t processes = 0;
  double resident_bytes = 0;
  double virtual_bytes = 0;
  double threads = 0;
  double open_fds = 0;
  bool open_fds_valid = true;
  double max_fds = 0;
  bool max_fds_valid = true;
  double oldest_start_ticks = std::numeric_limits<double>::infinity();
};

}  // namespace

struct ProcessCollector::State {
  ProcFs procfs;
  std::vector<Service> services;
  long ticks_per_second = ::sysconf(_SC_CLK_TCK);
  long page_size = ::sysconf(_SC_PAGESIZE);
  std::optional<uint64_t> boot_time;
  std::string buffer;  // reused file buffer

  explicit State(ProcessCollectorOptions options)
      : procfs(std::move(options.proc_root), std::move(options.cgroup_root)) {}

  void CollectService(Service& service, ProcessTable& table, MetricFamilies& out);
  void CollectSelf(MetricFamilies& out);
  std::optional<ProcessSample> ReadProcess(pid_t pid, Service& service, GroupGauges& gauges);
};

ProcessCollector::ProcessCollector(const std::vector<config::ServiceConfig>& services,
                                   ProcessCollectorOptions options)
    : state_(std::make_unique<State>(std::move(options))) {
  std::string text;
  if (ProcFs::ReadFile(state_->procfs.proc_root() + "/stat", text) == ReadStatus::kOk) {
    state_->boot_time = ParseBootTime(text);
  }
  Reconfigure(services);
}

void ProcessCollector::Reconfigure(const std::vector<config::ServiceConfig>& services) {
  std::lock_guard lock(mutex_);
  std::vector<Service> kept;
  for (const auto& config : services) {
    auto old = std::find_if(state_->services.begin(), state_->services.end(), [&](const auto& s) {
      return s.name == config.name && s.selector == config.process;
    });
    if (old != state_->services.end()) {
      kept.push_back(std::move(*old));
      state_->services.erase(old);
      continue;
    }
    Service service;
    service.name = config.name;
    service.selector = config.process;
    service.finder = std::make_unique<ProcessFinder>(config.process, state_->procfs);
    service.include_children = config.process.children;
    kept.push_back(std::move(service));
  }
  state_->services = std::move(kept);
}

ProcessCollector::~ProcessCollector() = default;

std::optional<ProcessSample> ProcessCollector::State::ReadProcess(pid_t pid, Service& service,
                                                                  GroupGauges& gauges) {
  const auto path = [&](const char* file) {
    return procfs.proc_root() + "/" + std::to_string(pid) + "/" + file;
  };
  ReadStatus status = procfs.ReadProcFile(pid, "stat", buffer);
  if (status == ReadStatus::kGone) return std::nullopt;  // exited between listing and reading
  if (status != ReadStatus::kOk) {
    service.problems.Report(service.name, "stat", "cannot read " + path("stat"));
    return std::nullopt;
  }
  const auto stat = ParseStat(buffer);
  if (!stat) {
    service.problems.Report(service.name, "stat", "cannot parse " + path("stat"));
    return std::nullopt;
  }
  ProcessSample sample;
  sample.pid = pid;
  sample.ppid = stat->ppid;
  sample.start_ticks = stat->starttime;
  sample.own[kCpuTicks] = stat->utime + stat->stime;
  sample.own[kMajorFaults] = stat->majflt;
  if (service.include_children) {
    sample.reaped_children[kCpuTicks] = stat->cutime + stat->cstime;
    sample.reaped_children[kMajorFaults] = stat->cmajflt;
  }
  ++gauges.processes;
  gauges.resident_bytes += double(stat->rss_pages) * double(page_size);
  gauges.virtual_bytes += double(stat->vsize);
  gauges.threads += double(stat->num_threads);
  gauges.oldest_start_ticks = std::min(gauges.oldest_start_ticks, double(stat->starttime));

  status = procfs.ReadProcFile(pid, "status", buffer);
  if (status == ReadStatus::kOk) {
    if (auto switches = ParseStatusContextSwitches(buffer)) {
      sample.own[kVoluntaryContextSwitches] = switches->voluntary;
      sample.own[kInvoluntaryContextSwitches] = switches->involuntary;
    }
  } else if (status != ReadStatus::kGone) {
    service.problems.Report(service.name, "status", "cannot read " + path("status"));
  }

  status = procfs.ReadProcFile(pid, "io", buffer);
  const auto io = status == ReadStatus::kOk ? ParseIo(buffer) : std::nullopt;
  sample.io_valid = io.has_value();
  if (io) {
    sample.own[kReadBytes] = io->read_bytes;
    sample.own[kWriteBytes] = io->write_bytes;
  } else if (status != ReadStatus::kGone) {
    service.problems.Report(
        service.name, "io",
        "cannot read " + path("io") + " (" +
            UnreadableReason(status, procfs.Owner(pid), ::geteuid(), "CAP_SYS_PTRACE") +
            "); process_io_* left out");
  }

  uint64_t fds = 0;
  status = procfs.CountOpenFds(pid, fds);
  if (status == ReadStatus::kOk) {
    gauges.open_fds += double(fds);
  } else {
    gauges.open_fds_valid = false;
    if (status != ReadStatus::kGone) {
      service.problems.Report(
          service.name, "fd",
          "cannot list " + path("fd") + " (" +
              UnreadableReason(status, procfs.Owner(pid), ::geteuid(), "CAP_DAC_READ_SEARCH") +
              "); process_open_fds left out");
    }
  }

  const auto now = std::chrono::steady_clock::now();
  CachedLimit& cached = service.limits[{pid, stat->starttime}];
  cached.seen = true;
  std::optional<uint64_t> max_fds;
  if (cached.read_at != std::chrono::steady_clock::time_point() &&
      now - cached.read_at < std::chrono::minutes(1)) {
    max_fds = cached.max_fds;
    status = ReadStatus::kOk;
  } else {
    status = procfs.ReadProcFile(pid, "limits", buffer);
    max_fds = status == ReadStatus::kOk ? ParseMaxOpenFilesSoft(buffer) : std::nullopt;
    if (max_fds) {
      cached.max_fds = *max_fds;
      cached.read_at = now;
    }
  }
  if (max_fds) {
    gauges.max_fds = std::max(gauges.max_fds, double(*max_fds));
  } else {
    gauges.max_fds_valid = false;
    if (status != ReadStatus::kGone) {
      service.problems.Report(service.name, "limits", "cannot read " + path("limits"));
    }
  }
  return sample;
}

void ProcessCollector::State::CollectService(Service& service, ProcessTable& table,
                                             MetricFamilies& out) {
  FindResult found = service.finder->Find(table);
  for (const auto& problem : found.problems) {
    service.problems.Report(service.name, problem.kind, problem.message);
  }

  GroupGauges gauges;
  std::vector<ProcessSample> samples;
  bool io_valid = true;
  for (pid_t pid : found.pids) {
    if (auto sample = ReadProcess(pid, service, gauges)) {
      io_valid &= sample->io_valid;
      samples.push_back(*sample);
    }
  }
  const CounterValues totals = service.accounting.Update(samples);
  for (auto it = service.limits.begin(); it != service.limits.end();) {
    // Forget processes that are gone; the others start the next scrape unseen.
    it = std::exchange(it->second.seen, false) ? std::next(it) : service.limits.erase(it);
  }

  std::optional<double> cpu_seconds;
  if (service.finder->CgroupCoversGroup()) {
    if (found.cgroup_dir) {
      const ReadStatus status = ProcFs::ReadFile(*found.cgroup_dir + "/cpu.stat", buffer);
      const auto usage = status == ReadStatus::kOk ? ParseCgroupCpuUsageUsec(buffer) : std::nullopt;
      if (usage) {
        service.cgroup_cpu_usec.Observe(*usage);
      } else if (status != ReadStatus::kGone) {
        service.problems.Report(service.name, "cgroup",
                                "cannot read usage_usec from " + *found.cgroup_dir + "/cpu.stat");
      }
    }
    if (service.cgroup_cpu_usec.seen()) cpu_seconds = double(service.cgroup_cpu_usec.total()) / 1e6;
  } else if (service.ever_seen || !samples.empty()) {
    cpu_seconds = double(totals[kCpuTicks]) / double(ticks_per_second);
  }
  service.ever_seen |= !samples.empty();
  service.problems.EndScrape();

  const prometheus::ClientMetric::Label label{"service", service.name};
  const bool up = !samples.empty();
  out.Add("fastapi_exporter_service_up",
          "1 when at least one process of the service was found, 0 otherwise.", MetricType::Gauge,
          {label}, up ? 1 : 0);
  for (const auto& [kind, count] : service.problems.counts()) {
    out.Add("fastapi_exporter_read_errors_total",
            "Files of a service that could not be read or parsed, by kind.", MetricType::Counter,
            {label, {"kind", kind}}, double(count));
  }
  if (cpu_seconds) {
    out.Add("process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds, over all processes of the service "
            "including exited ones.",
            MetricType::Counter, {label}, *cpu_seconds);
  }
  if (service.ever_seen) {
    out.Add("process_major_page_faults_total", "Major page faults of the service's processes.",
            MetricType::Counter, {label}, double(totals[kMajorFaults]));
    out.Add("process_context_switches_total", "Context switches of the service's processes.",
            MetricType::Counter, {label, {"kind", "voluntary"}},
            double(totals[kVoluntaryContextSwitches]));
    out.Add("process_context_switches_total", "Context switches of the service's processes.",
            MetricType::Counter, {label, {"kind", "involuntary"}},
            double(totals[kInvoluntaryContextSwitches]));
    if (io_valid) {
      out.Add("process_io_read_bytes_total", "Bytes the service's processes read from storage.",
              MetricType::Counter, {label}, double(totals[kReadBytes]));
      out.Add("process_io_write_bytes_total", "Bytes the service's processes wrote to storage.",
              MetricType::Counter, {label}, double(totals[kWriteBytes]));
    }
  }
  if (!up) return;  // no wrong zeros: gauges of a service without processes are absent

  out.Add("process_resident_memory_bytes", "Resident memory size in bytes, summed over processes.",
          MetricType::Gauge, {label}, gauges.resident_bytes);
  out.Add("process_virtual_memory_bytes", "Virtual memory size in bytes, summed over processes.",
          MetricType::Gauge, {label}, gauges.virtual_bytes);
  if (gauges.open_fds_valid) {
    out.Add("process_open_fds", "Number of open file descriptors, summed over processes.",
            MetricType::Gauge, {label}, gauges.open_fds);
  }
  if (gauges.max_fds_valid) {
    out.Add("process_max_fds", "Largest soft limit of open file descriptors among the processes.",
            MetricType::Gauge, {label}, gauges.max_fds);
  }
  if (boot_time) {
    out.Add("process_start_time_seconds",
            "Start time of the oldest process since unix epoch in seconds.", MetricType::Gauge,
            {label}, double(*boot_time) + gauges.oldest_start_ticks / double(ticks_per_second));
  }
  out.Add("process_threads", "Number of threads, summed over processes.", MetricType::Gauge,
          {label}, gauges.threads);
  out.Add("process_processes", "Number of processes in the service's group.", MetricType::Gauge,
          {label}, double(gauges.processes));
}

// The exporter's own cost, under its own names: process_* belong to the watched services
// (the dashboard and client_python's queries expect them there), so these cannot share them.
// A file that cannot be read leaves its metrics out of this scrape; the exporter's own files
// are always readable to it, so this is not counted as a read error.
void ProcessCollector::State::CollectSelf(MetricFamilies& out) {
  const pid_t pid = procfs.SelfPid();
  if (procfs.ReadProcFile(pid, "stat", buffer) != ReadStatus::kOk) return;
  const auto stat = ParseStat(buffer);
  if (!stat) return;
  out.Add("fastapi_exporter_process_cpu_seconds_total",
          "User and system CPU time the exporter itself spent, in seconds.", MetricType::Counter,
          {}, double(stat->utime + stat->stime) / double(ticks_per_second));
  out.Add("fastapi_exporter_process_resident_memory_bytes",
          "Resident memory size of the exporter itself, in bytes.", MetricType::Gauge, {},
          double(stat->rss_pages) * double(page_size));
  out.Add("fastapi_exporter_process_virtual_memory_bytes",
          "Virtual memory size of the exporter itself, in bytes.", MetricType::Gauge, {},
          double(stat->vsize));
  out.Add("fastapi_exporter_process_threads", "Threads of the exporter itself.", MetricType::Gauge,
          {}, double(stat->num_threads));
  if (boot_time) {
    out.Add("fastapi_exporter_process_start_time_seconds",
            "Start time of the exporter since unix epoch in seconds.", MetricType::Gauge, {},
            double(*boot_time) + double(stat->starttime) / double(ticks_per_second));
  }
  uint64_t fds = 0;
  if (procfs.CountOpenFds(pid, fds) == ReadStatus::kOk) {
    out.Add("fastapi_exporter_process_open_fds", "Open file descriptors of the exporter itself.",
            MetricType::Gauge, {}, double(fds));
  }
  if (procfs.ReadProcFile(pid, "limits", buffer) == ReadStatus::kOk) {
    if (const auto max_fds = ParseMaxOpenFilesSoft(buffer)) {
      out.Add("fastapi_exporter_process_max_fds",
              "Soft limit of open file descriptors of the exporter itself.", MetricType::Gauge, {},
              double(*max_fds));
    }
  }
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  std::lock_guard lock(mutex_);
  MetricFamilies out;
  ProcessTable table(state_->procfs);
  for (Service& service : state_->services) state_->CollectService(service, table, out);
  state_->CollectSelf(out);
  // Its duration is measured by the exposition, as every collector's is.
  return out.Release();
}

std::map<std::string, ProcessCollector::Usage> ProcessCollector::ReadUsage() const {
  std::lock_guard lock(mutex_);
  State& state = *state_;
  std::map<std::string, Usage> usage;
  ProcessTable table(state.procfs);
  for (Service& service : state.services) {
    const FindResult found = service.finder->Find(table);
    std::vector<ProcessSample> samples;
    double resident_bytes = 0;
    for (pid_t pid : found.pids) {
      if (state.procfs.ReadProcFile(pid, "stat", state.buffer) != ReadStatus::kOk) continue;
      const auto stat = ParseStat(state.buffer);
      if (!stat) continue;
      ProcessSample sample;
      sample.pid = pid;
      sample.ppid = stat->ppid;
      sample.start_ticks = stat->starttime;
      sample.own[kCpuTicks] = stat->utime + stat->stime;
      if (service.include_children) sample.reaped_children[kCpuTicks] = stat->cutime + stat->cstime;
      samples.push_back(sample);
      resident_bytes += double(stat->rss_pages) * double(state.page_size);
    }
    const CounterValues totals = service.usage_accounting.Update(samples);
    Usage& out = usage[service.name];
    out = {kNaN, samples.empty() ? kNaN : resident_bytes};
    if (service.finder->CgroupCoversGroup()) {
      if (found.cgroup_dir &&
          ProcFs::ReadFile(*found.cgroup_dir + "/cpu.stat", state.buffer) == ReadStatus::kOk) {
        if (const auto usec = ParseCgroupCpuUsageUsec(state.buffer)) {
          service.usage_cgroup_cpu_usec.Observe(*usec);
        }
      }
      if (service.usage_cgroup_cpu_usec.seen()) {
        out.cpu_seconds = double(service.usage_cgroup_cpu_usec.total()) / 1e6;
      }
    } else if (service.usage_ever_seen || !samples.empty()) {
      out.cpu_seconds = double(totals[kCpuTicks]) / double(state.ticks_per_second);
    }
    service.usage_ever_seen |= !samples.empty();
  }
  return usage;
}

void ProcessCollector::RenderText(std::string& out) const {
  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, Collect());
  out += text.view();
}

}  // namespace fastapi_exporter::process
