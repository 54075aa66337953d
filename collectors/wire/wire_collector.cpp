#include "collectors/wire/wire_collector.hpp"

#include <poll.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <thread>

#include "collectors/access_log/access_log_collector.hpp"
#include "collectors/access_log/config_translation.hpp"
#include "collectors/access_log/line_pipeline.hpp"
#include "collectors/access_log/openapi_routes.hpp"
#include "collectors/process/process_finder.hpp"
#include "collectors/wire/capture.hpp"
#include "collectors/wire/http_pairing.hpp"
#include "collectors/wire/listening_ports.hpp"
#include "collectors/wire/tcp_reassembly.hpp"

namespace fastapi_exporter::wire {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct SelfFamilies {
  explicit SelfFamilies(prometheus::Registry& r)
      : capture_up(prometheus::BuildGauge()
                       .Name("fastapi_exporter_wire_capture_up")
                       .Help("1 while the service's traffic is captured; 0 when the capture "
                             "could not open (the log says why: most often no CAP_NET_RAW).")
                       .Register(r)),
        ports(prometheus::BuildGauge()
                  .Name("fastapi_exporter_wire_ports")
                  .Help("TCP ports of the service whose traffic is captured.")
                  .Register(r)),
        packets(prometheus::BuildCounter()
                    .Name("fastapi_exporter_wire_packets_total")
                    .Help("Packets of the service's ports captured.")
                    .Register(r)),
        kernel_drops(prometheus::BuildCounter()
                         .Name("fastapi_exporter_wire_kernel_drops_total")
                         .Help("Packets the kernel dropped before the exporter read them "
                               "(pcap_stats: ring full, interface drops).")
                         .Register(r)),
        bad_packets(prometheus::BuildCounter()
                        .Name("fastapi_exporter_wire_packets_skipped_total")
                        .Help("Captured packets not read, by reason (not_tcp: IP fragments, "
                              "IPv6 extension headers; malformed).")
                        .Register(r)),
        connections(prometheus::BuildGauge()
                        .Name("fastapi_exporter_wire_connections")
                        .Help("TCP connections tracked.")
                        .Register(r)),
        connections_refused(prometheus::BuildCounter()
                                .Name("fastapi_exporter_wire_connections_untracked_total")
                                .Help("Connections not tracked because the table was full "
                                      "(max_connections): their requests are not counted.")
                                .Register(r)),
        resyncs(prometheus::BuildCounter()
                    .Name("fastapi_exporter_wire_resyncs_total")
                    .Help("Times a connection lost sync and waited for the next request, by "
                          "reason.")
                    .Register(r)),
        unparsable(prometheus::BuildCounter()
                       .Name("fastapi_exporter_wire_unparsable_streams_total")
                       .Help("Streams that are not HTTP/1.x where a message should start, by "
                             "direction.")
                       .Register(r)),
        unanswered(prometheus::BuildCounter()
                       .Name("fastapi_exporter_wire_requests_unanswered_total")
                       .Help("Requests seen whose response was not, by reason: not counted in "
                             "the request metrics.")
                       .Register(r)),
        requests(prometheus::BuildCounter()
                     .Name("fastapi_exporter_wire_requests_total")
                     .Help("Requests read off the wire and counted.")
                     .Register(r)),
        excluded(prometheus::BuildCounter()
                     .Name("fastapi_exporter_wire_excluded_total")
                     .Help("Requests not counted because their path is in exclude_paths.")
                     .Register(r)),
        invalid_paths(prometheus::BuildCounter()
                          .Name("fastapi_exporter_wire_invalid_paths_total")
                          .Help("Requests not counted because their target is not a path.")
                          .Register(r)),
        // The same families as the access-log source's (the registry merges them): the
        // counting itself is the access-log pipeline's (ServicePipeline).
        routes(access_log::RegisterRouteDiscoveryFamilies(r)),
        line(access_log::RegisterLineFamilies(r)) {}

  Family<Gauge>& capture_up;
  Family<Gauge>& ports;
  Family<Counter>& packets;
  Family<Counter>& kernel_drops;
  Family<Counter>& bad_packets;
  Family<Gauge>& connections;
  Family<Counter>& connections_refused;
  Family<Counter>& resyncs;
  Family<Counter>& unparsable;
  Family<Counter>& unanswered;
  Family<Counter>& requests;
  Family<Counter>& excluded;
  Family<Counter>& invalid_paths;
  access_log::RouteDiscoveryFamilies routes;
  access_log::LineFamilies line;
};

// A counter that follows a cumulative count kept elsewhere.
struct Follow {
  Counter* counter = nullptr;
  uint64_t seen = 0;
  void To(uint64_t total) {
    if (total > seen) counter->Increment(double(total - seen));
    seen = total;
  }
};

// Whether two `wire:` settings capture and pair the same way (where they were written aside).
bool SameCapture(const config::WireConfig& a, const config::WireConfig& b) {
  return a.auto_ports == b.auto_ports && a.ports == b.ports && a.interface == b.interface &&
         a.snap_length == b.snap_length && a.request_timeout == b.request_timeout &&
         a.max_connections == b.max_connections;
}

// One service's capture, connections and request counting. Lives on the capture thread.
class Service final : public RequestSink {
 public:
  Service(const config::ServiceConfig& config, access_log::RequestStore& store, SelfFamilies& self,
          const process::ProcFs& procfs)
      : name_(config.name),
        process_(config.process),
        config_(*config.wire),
        self_(self),
        procfs_(procfs) {
    const prometheus::Labels labels{{"service", name_}};
    capture_up_ = &self.capture_up.Add(labels);
    ports_gauge_ = &self.ports.Add(labels);
    packets_ = &self.packets.Add(labels);
    kernel_drops_.counter = &self.kernel_drops.Add(labels);
    not_tcp_ = &self.bad_packets.Add({{"service", name_}, {"reason", "not_tcp"}});
    malformed_ = &self.bad_packets.Add({{"service", name_}, {"reason", "malformed"}});
    connections_ = &self.connections.Add(labels);
    refused_.counter = &self.connections_refused.Add(labels);
    for (std::size_t i = 0; i < kDesyncReasonCount; ++i) {
      resyncs_[i].counter =
          &self.resyncs.Add({{"service", name_}, {"reason", DesyncReasonName(DesyncReason(i))}});
    }
    unparsable_[0] = &self.unparsable.Add({{"service", name_}, {"direction", "request"}});
    unparsable_[1] = &self.unparsable.Add({{"service", name_}, {"direction", "response"}});
    for (std::size_t i = 0; i < kUnansweredCount; ++i) {
      unanswered_[i] =
          &self.unanswered.Add({{"service", name_}, {"reason", UnansweredName(Unanswered(i))}});
    }
    requests_ = &self.requests.Add(labels);
    excluded_ = &self.excluded.Add(labels);
    invalid_paths_ = &self.invalid_paths.Add(labels);
    std::unique_ptr<access_log::RouteDiscovery> discovery;
    if (config.routes_from) {
      discovery = std::make_unique<access_log::RouteDiscovery>(config.name, *config.routes_from,
                                                               self.routes);
    }
    pipeline_ = std::make_unique<access_log::ServicePipeline>(
        access_log::ServiceOptionsOf(config), store, self.line, std::move(discovery));
    if (config_.auto_ports) {
      finder_ = std::make_unique<process::ProcessFinder>(config.process, procfs);
    }
    PairingOptions pairing;
    pairing.request_timeout_us = int64_t(config_.request_timeout.count()) * 1000;
    ReassemblyOptions reassembly;
    reassembly.max_connections = std::size_t(config_.max_connections);
    reassembler_ = std::make_unique<TcpReassembler>(config_.ports, reassembly,
                                                    HttpPairingFactory(*this, pairing));
  }

  ~Service() override {
    reassembler_.reset();  // its connections report to this sink as they go
    self_.capture_up.Remove(capture_up_);
    self_.ports.Remove(ports_gauge_);
    self_.packets.Remove(packets_);
    self_.kernel_drops.Remove(kernel_drops_.counter);
    self_.bad_packets.Remove(not_tcp_);
    self_.bad_packets.Remove(malformed_);
    self_.connections.Remove(connections_);
    self_.connections_refused.Remove(refused_.counter);
    for (auto& follow : resyncs_) self_.resyncs.Remove(follow.counter);
    for (auto* counter : unparsable_) self_.unparsable.Remove(counter);
    for (auto* counter : unanswered_) self_.unanswered.Remove(counter);
    self_.requests.Remove(requests_);
    self_.excluded.Remove(excluded_);
    self_.invalid_paths.Remove(invalid_paths_);
  }

  // The live view's ring of recent requests; null turns it off. Between reads only.
  void SetRecentLines(std::shared_ptr<history::RecentLines> recent) {
    pipeline_->SetRecentLines(std::move(recent));
  }

  // Whether `config` asks for exactly what this one does (then it is kept on reload).
  bool Same(const config::ServiceConfig& config) const {
    return config.wire && pipeline_->options() == access_log::ServiceOptionsOf(config) &&
           SameCapture(*config.wire, config_) && config.process == process_;
  }

  // Opens the capture; false (logged) when it cannot.
  bool Open() {
    if (capture_) return true;
    CaptureOptions options;
    options.interface = config_.interface;
    options.snap_length = config_.snap_length;
    std::string error;
    capture_ = Capture::Open(options, error);
    if (!capture_) {
      spdlog::error("service {}: wire: {}; its requests are not counted", name_, error);
      capture_up_->Set(0);
      return false;
    }
    capture_up_->Set(1);
    if (!config_.auto_ports) ApplyPorts(config_.ports);
    return true;
  }

  // ports: auto -- the ports the service's processes listen on now.
  void RefreshPorts() {
    if (!finder_ || !capture_) return;
    process::ProcessTable table(procfs_);
    const process::FindResult found = finder_->Find(table);
    std::vector<uint16_t> ports = ListeningPorts(procfs_, found.pids);
    if (ports != ports_) ApplyPorts(ports);
  }

  void ApplyPorts(const std::vector<uint16_t>& ports) {
    std::string error;
    if (!capture_->SetPorts(ports, error)) {
      spdlog::error("service {}: wire: {}", name_, error);
      return;
    }
    ports_ = ports;
    reassembler_->SetServerPorts(ports);
    ports_gauge_->Set(double(ports.size()));
    std::string list;
    for (const uint16_t port : ports) {
      if (!list.empty()) list += ',';
      list += std::to_string(port);
    }
    if (ports.empty()) {
      spdlog::warn("service {}: wire: no listening TCP port found; nothing is captured", name_);
    } else {
      spdlog::info("service {}: wire: capturing TCP port(s) {} on {}", name_, list,
                   config_.interface);
    }
  }

  int fd() const { return capture_ ? capture_->fd() : -1; }

  void Read() {
    if (!capture_) return;
    Capture::Counts counts;
    std::string error;
    if (!capture_->Dispatch([this](const TcpSegment& s) { reassembler_->Handle(s); }, counts,
                            error)) {
      spdlog::error("service {}: wire: capture failed: {}; its requests are no longer counted",
                    name_, error);
      capture_.reset();
      capture_up_->Set(0);
    }
    packets_->Increment(double(counts.packets));
    if (counts.not_tcp) not_tcp_->Increment(double(counts.not_tcp));
    if (counts.malformed) malformed_->Increment(double(counts.malformed));
  }

  // Once a second: expiry, timeouts and the self-metrics that follow cumulative counts.
  void Tick(int64_t now_us) {
    reassembler_->Expire(now_us);
    const ReassemblyStats& stats = reassembler_->stats();
    connections_->Set(double(reassembler_->connections()));
    refused_.To(stats.connections_refused);
    for (std::size_t i = 0; i < kDesyncReasonCount; ++i) resyncs_[i].To(stats.desyncs[i]);
    uint64_t drops = 0;
    std::string error;
    if (capture_ && capture_->Drops(drops, error)) kernel_drops_.To(drops);
  }

  void WaitForRoutes() { pipeline_->WaitForRoutes(); }

  // RequestSink, called by the reassembler's connections.
  void OnRequest(const WireRequest& request) override {
    const double seconds = double(request.end_us - request.start_us) / 1e6;
    switch (
        pipeline_->Count(request.method, request.target, request.status, seconds >= 0, seconds)) {
      case access_log::ServicePipeline::Outcome::kInvalidPath:
        invalid_paths_->Increment();
        return;
      case access_log::ServicePipeline::Outcome::kExcluded:
        excluded_->Increment();
        return;
      case access_log::ServicePipeline::Outcome::kCounted:
        requests_->Increment();
        return;
    }
  }
  void OnUnanswered(Unanswered reason, uint64_t requests) override {
    unanswered_[std::size_t(reason)]->Increment(double(requests));
  }
  void OnUnparsable(Direction direction) override {
    unparsable_[std::size_t(direction)]->Increment();
  }

  const std::string& name() const { return name_; }

 private:
  std::string name_;
  config::ProcessSelector process_;
  config::WireConfig config_;
  SelfFamilies& self_;
  const process::ProcFs& procfs_;
  std::unique_ptr<access_log::ServicePipeline> pipeline_;  // routes and request series
  std::unique_ptr<process::ProcessFinder> finder_;
  std::unique_ptr<Capture> capture_;
  std::unique_ptr<TcpReassembler> reassembler_;
  std::vector<uint16_t> ports_;
  Gauge* capture_up_;
  Gauge* ports_gauge_;
  Counter* packets_;
  Follow kernel_drops_;
  Counter* not_tcp_;
  Counter* malformed_;
  Gauge* connections_;
  Follow refused_;
  std::array<Follow, kDesyncReasonCount> resyncs_;
  std::array<Counter*, 2> unparsable_{};
  std::array<Counter*, kUnansweredCount> unanswered_{};
  Counter* requests_;
  Counter* excluded_;
  Counter* invalid_paths_;
};

}  // namespace

struct WireCollector::Impl {
  Impl(prometheus::Registry& registry, std::shared_ptr<access_log::RequestStore> store,
       WireOptions options)
      : store(std::move(store)),
        self(registry),
        procfs(options.proc_root, options.cgroup_root),
        recent_lines(std::move(options.recent_lines)),
        recent_lines_capacity(options.recent_lines_capacity) {}

  // Services whose configuration did not change are kept, with their counters and their
  // connections in flight; the others are built anew.
  void Build(const config::Config& config) {
    std::vector<std::unique_ptr<Service>> previous = std::move(services);
    services.clear();
    std::vector<std::unique_ptr<Service>> kept(config.services.size());
    for (std::size_t i = 0; i < config.services.size(); ++i) {
      for (auto& old : previous) {
        if (old && old->Same(config.services[i])) kept[i] = std::move(old);
      }
    }
    previous.clear();  // dropped series go before new ones are made
    for (std::size_t i = 0; i < config.services.size(); ++i) {
      const auto& service = config.services[i];
      if (!service.wire) continue;
      if (kept[i]) {
        services.push_back(std::move(kept[i]));
      } else {
        if (!service.access_logs.empty()) {
          spdlog::info(
              "service {}: requests are read off the wire; its access_logs are not counted "
              "(docs/wire.md)",
              service.name);
        }
        services.push_back(std::make_unique<Service>(service, *store, self, procfs));
      }
      // Apart from what keeps a service: turning recent lines on or off keeps its counters.
      if (!recent_lines) continue;
      if (service.recent_lines) {
        services.back()->SetRecentLines(
            recent_lines->Get(service.name, recent_lines_capacity, service.recent_lines_query));
      } else {
        services.back()->SetRecentLines(nullptr);
        recent_lines->Drop(service.name);
      }
    }
  }

  void StartThread() {
    if (services.empty() || thread.joinable()) return;
    stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    // Opened here, before the thread: the error for a missing capability is in the log by
    // the time the exporter says it is ready.
    for (auto& service : services) service->Open();
    thread = std::thread([this] { Run(); });
  }

  void Run() {
    for (auto& service : services) service->WaitForRoutes();
    auto next_tick = std::chrono::steady_clock::now();
    auto next_ports = next_tick;
    std::vector<pollfd> fds;
    for (;;) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= next_ports) {
        for (auto& service : services) service->RefreshPorts();
        next_ports = now + std::chrono::seconds(5);
      }
      if (now >= next_tick) {
        const int64_t now_us = NowUs();
        for (auto& service : services) service->Tick(now_us);
        next_tick = now + std::chrono::seconds(1);
      }
      fds.assign(1, pollfd{stop_fd, POLLIN, 0});
      for (auto& service : services) {
        if (service->fd() >= 0) fds.push_back(pollfd{service->fd(), POLLIN, 0});
      }
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::min(next_tick, next_ports) - std::chrono::steady_clock::now());
      ::poll(fds.data(), fds.size(), int(std::max<int64_t>(wait.count(), 0)) + 1);
      if (fds[0].revents & POLLIN) break;
      // pcap's descriptor may poll readable for a retired block only: every capture is read.
      for (auto& service : services) service->Read();
    }
    for (auto& service : services) service->Read();
  }

  void StopThread() {
    if (!thread.joinable()) return;
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t written = ::write(stop_fd, &one, sizeof one);
    thread.join();
    ::close(stop_fd);
    stop_fd = -1;
  }

  std::shared_ptr<access_log::RequestStore> store;
  SelfFamilies self;
  process::ProcFs procfs;
  std::shared_ptr<history::RecentLinesRegistry> recent_lines;  // null: no live view
  std::size_t recent_lines_capacity;
  std::vector<std::unique_ptr<Service>> services;
  std::thread thread;
  int stop_fd = -1;
  bool started = false;
};

WireCollector::WireCollector(const config::Config& config, prometheus::Registry& registry,
                             std::shared_ptr<access_log::RequestStore> store, WireOptions options)
    : impl_(std::make_unique<Impl>(registry, std::move(store), std::move(options))) {
  impl_->Build(config);
}

WireCollector::~WireCollector() {
  Stop();
}

bool WireCollector::empty() const {
  return impl_->services.empty();
}

void WireCollector::Start() {
  impl_->started = true;
  impl_->StartThread();
}

void WireCollector::Stop() {
  impl_->StopThread();
}

void WireCollector::Reconfigure(const config::Config& config) {
  impl_->StopThread();
  impl_->Build(config);
  if (impl_->started) impl_->StartThread();
}

}  // namespace fastapi_exporter::wire
