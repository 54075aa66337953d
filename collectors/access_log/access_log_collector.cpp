#include "collectors/access_log/access_log_collector.hpp"

#include <fmt/format.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>

#include "collectors/access_log/config_translation.hpp"
#include "collectors/access_log/journal_source.hpp"
#include "collectors/access_log/line_parser.hpp"
#include "collectors/access_log/line_pipeline.hpp"
#include "collectors/access_log/openapi_routes.hpp"
#include "collectors/access_log/positions.hpp"
#include "collectors/access_log/request_metrics.hpp"
#include "collectors/access_log/route_normalizer.hpp"
#include "collectors/access_log/tailer.hpp"

namespace fastapi_exporter::access_log {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;

// The exporter's own metrics about its log sources (the per-line ones: line_pipeline.hpp).
struct SelfFamilies {
  explicit SelfFamilies(prometheus::Registry& registry)
      : line(RegisterLineFamilies(registry)),
        bytes_read(prometheus::BuildCounter()
                       .Name("fastapi_exporter_log_read_bytes_total")
                       .Help("Bytes read from access logs.")
                       .Register(registry)),
        bytes_unread(prometheus::BuildGauge()
                         .Name("fastapi_exporter_log_unread_bytes")
                         .Help("Bytes written to the access logs and not read yet.")
                         .Register(registry)),
        files(prometheus::BuildGauge()
                  .Name("fastapi_exporter_log_files")
                  .Help("Access-log files open, rotated ones still being drained included.")
                  .Register(registry)),
        rotations(prometheus::BuildCounter()
                      .Name("fastapi_exporter_log_rotations_total")
                      .Help("Access-log files rotated away (renamed, deleted or replaced).")
                      .Register(registry)),
        truncations(prometheus::BuildCounter()
                        .Name("fastapi_exporter_log_truncations_total")
                        .Help("Access-log files truncated (copytruncate), read again from 0.")
                        .Register(registry)),
        open_errors(prometheus::BuildCounter()
                        .Name("fastapi_exporter_log_open_errors_total")
                        .Help("Access-log files that matched but could not be opened.")
                        .Register(registry)),
        routes(RegisterRouteDiscoveryFamilies(registry)),
        abandoned(prometheus::BuildCounter()
                      .Name("fastapi_exporter_log_files_abandoned_total")
                      .Help("Rotated access-log files closed while a process still had them "
                            "open for writing: what it writes there later is not counted.")
                      .Register(registry)),
        tailer_polling(prometheus::BuildGauge()
                           .Name("fastapi_exporter_log_tailer_polling")
                           .Help("1 when inotify (or one of its watches) failed and log changes "
                                 "are found by polling only.")
                           .Register(registry)
                           .Add({})),
        tailer_running(prometheus::BuildGauge()
                           .Name("fastapi_exporter_log_tailer_running")
                           .Help("1 while the thread that reads the access logs runs.")
                           .Register(registry)
                           .Add({})),
        inotify_overflows(
            prometheus::BuildCounter()
                .Name("fastapi_exporter_log_inotify_overflows_total")
                .Help("Times inotify's queue overflowed (fs.inotify.max_queued_events) and "
                      "every access log was rescanned: nothing is missed, it costs a rescan.")
                .Register(registry)
                .Add({})),
        positions_save_errors(
            prometheus::BuildCounter()
                .Name("fastapi_exporter_log_positions_save_errors_total")
                .Help("Failed writes of the positions file (and a start where it cannot be "
                      "written): after a restart, logs are read from start_at again.")
                .Register(registry)
                .Add({})),
        journal_lag(prometheus::BuildGauge()
                        .Name("fastapi_exporter_log_journal_lag_seconds")
                        .Help("Journal sources: seconds between the newest journal entry and "
                              "the last one read while entries are left to read; 0 when every "
                              "matching entry is read.")
                        .Register(registry)),
        journal_cursor_lost(prometheus::BuildCounter()
                                .Name("fastapi_exporter_log_journal_cursor_lost_total")
                                .Help("Journal sources whose saved cursor was no longer in the "
                                      "journal (vacuumed): reading restarted as start_at says.")
                                .Register(registry)) {}

  LineFamilies line;
  Family<Counter>& bytes_read;
  Family<Gauge>& bytes_unread;
  Family<Gauge>& files;
  Family<Counter>& rotations;
  Family<Counter>& truncations;
  Family<Counter>& open_errors;
  RouteDiscoveryFamilies routes;
  Family<Counter>& abandoned;
  Gauge& tailer_polling;
  Gauge& tailer_running;
  Counter& inotify_overflows;
  Counter& positions_save_errors;
  Family<Gauge>& journal_lag;
  Family<Counter>& journal_cursor_lost;
};

}  // namespace

std::vector<std::string> ExcludedPaths(const config::ServiceConfig& config) {
  std::vector<std::string> paths = config.exclude_paths;
  if (config.routes_from && !config.routes_from->openapi_url.empty()) {
    std::string_view url = config.routes_from->openapi_url;
    const std::size_t slash = url.find('/', url.find("://") + 3);
    if (slash != std::string_view::npos) {
      url = url.substr(slash);
      paths.emplace_back(url.substr(0, url.find_first_of("?#")));
    }
  }
  return paths;
}

namespace {

class TailerState final : public TailerObserver {
 public:
  TailerState(Gauge& polling, Counter& overflows) : polling_(polling), overflows_(overflows) {}
  void OnPolling(bool polling) override { polling_.Set(polling ? 1 : 0); }
  void OnInotifyOverflow() override { overflows_.Increment(); }

 private:
  Gauge& polling_;
  Counter& overflows_;
};

// The key of a source's saved positions (files) or cursor (journal), stable across restarts
// and reloads: its service and its `source` label.
std::string PositionKey(const std::string& service, const std::string& source) {
  return service + "\t" + source;
}

// What a source is built from. A reload keeps a source (and its counters) when this is equal:
// the pipeline's options and where reading starts in a file that is new to the tailer.
struct SourceSetup {
  SourceOptions pipeline;
  config::StartAt start_at = config::StartAt::kEnd;
  std::optional<config::JournalSelector> journal;
  std::string path;
  bool operator==(const SourceSetup&) const = default;
};

SourceSetup SourceSetupOf(const config::AccessLogConfig& log, std::size_t max_line_bytes) {
  return {SourceOptionsOf(log, max_line_bytes), log.start_at, log.journal, log.path};
}

// One configured access log: its line pipeline, and the handles of the self-metrics of its
// files or journal. Series are per glob, not per file, so rotated file names create no series.
class SourceState final : public SourceObserver, public JournalObserver {
 public:
  SourceState(SourceSetup setup, ServicePipeline& service, SelfFamilies& self)
      : setup_(std::move(setup)), self_(self), pipeline_(setup_.pipeline, service) {
    const prometheus::Labels labels{{"service", service.name()}, {"source", pipeline_.source()}};
    if (setup_.journal) {
      journal_lag_ = &self.journal_lag.Add(labels);
      journal_cursor_lost_ = &self.journal_cursor_lost.Add(labels);
    }
    bytes_read_ = &self.bytes_read.Add(labels);
    bytes_unread_ = &self.bytes_unread.Add(labels);
    files_ = &self.files.Add(labels);
    rotations_ = &self.rotations.Add(labels);
    truncations_ = &self.truncations.Add(labels);
    open_errors_ = &self.open_errors.Add(labels);
    abandoned_ = &self.abandoned.Add(labels);
  }
  ~SourceState() override {
    self_.bytes_read.Remove(bytes_read_);
    self_.bytes_unread.Remove(bytes_unread_);
    self_.files.Remove(files_);
    self_.rotations.Remove(rotations_);
    self_.truncations.Remove(truncations_);
    self_.open_errors.Remove(open_errors_);
    self_.abandoned.Remove(abandoned_);
    if (journal_lag_) self_.journal_lag.Remove(journal_lag_);
    if (journal_cursor_lost_) self_.journal_cursor_lost.Remove(journal_cursor_lost_);
  }
  SourceState(const SourceState&) = delete;
  SourceState& operator=(const SourceState&) = delete;

  const ServicePipeline& service() const { return pipeline_.service(); }
  const SourceSetup& setup() const { return setup_; }
  const std::string& name() const { return pipeline_.source(); }
  LinePipeline& pipeline() { return pipeline_; }

  void OnLag(double seconds) override { journal_lag_->Set(seconds); }
  void OnCursorLost() override { journal_cursor_lost_->Increment(); }
  void OnJournalError(const std::string& error) override {
    open_errors_->Increment();
    open_error_ = error;
  }

  void OnBytesRead(uint64_t bytes) override { bytes_read_->Increment(double(bytes)); }
  void OnRotation(const std::string& path) override {
    rotations_->Increment();
    spdlog::debug("{}: rotated; reading the old file to its end", path);
  }
  void OnTruncation(const std::string& path) override {
    truncations_->Increment();
    spdlog::info("{}: truncated; reading again from the start", path);
  }
  void OnOpenError(const std::string& path, const std::string& error) override {
    open_errors_->Increment();
    open_error_ = path + ": " + error;
    spdlog::warn("service {}: cannot open access log {}: {}", service().name(), path, error);
  }
  void OnAbandoned(const std::string& /*path*/) override { abandoned_->Increment(); }
  void OnNoFile(const std::string& glob, const std::string& reason) override {
    no_file_ = reason.empty() ? std::string() : glob + ": " + reason;
    if (reason.empty()) {
      spdlog::info("service {}: access log {} found", service().name(), glob);
    } else {
      spdlog::warn("service {}: access log {}: {}; it is read once it appears", service().name(),
                   glob, reason);
    }
  }
  void OnState(uint64_t open_files, uint64_t unread_bytes) override {
    files_->Set(double(open_files));
    bytes_unread_->Set(double(unread_bytes));
  }

  // Why a file or journal of this source was not read ("/x.log: Permission denied"), empty if
  // nothing was left out: a one-shot read must not pass over it in silence. Reading thread
  // only.
  const std::string& unread_reason() const { return open_error_.empty() ? no_file_ : open_error_; }

 private:
  SourceSetup setup_;
  SelfFamilies& self_;
  LinePipeline pipeline_;
  Counter* bytes_read_;
  Gauge* bytes_unread_;
  Gauge* files_;
  Counter* rotations_;
  Counter* truncations_;
  Counter* open_errors_;
  Counter* abandoned_;
  Gauge* journal_lag_ = nullptr;            // journal sources only
  Counter* journal_cursor_lost_ = nullptr;  // journal sources only
  std::string open_error_;  // the last file or journal that could not be opened, and why
  std::string no_file_;     // the glob and why it matches no file, while it does not
};

}  // namespace

// A service with `wire:` has its requests counted from the network, never from both
// sources (docs/wire.md says why).
static bool ReadsLogs(const config::ServiceConfig& config) {
  return !config.access_logs.empty() && !config.wire;
}

struct AccessLogCollector::Impl {
  Impl(const config::Config& config, prometheus::Registry& registry, AccessLogOptions options)
      : options(options),
        store(std::make_shared<RequestStore>(config.metric_prefix)),
        self(registry),
        tailer_state(self.tailer_polling, self.inotify_overflows) {
    Apply(config);
  }

  ~Impl() {
    StopThread();
    tailer.reset();
    journals.clear();
    sources.clear();  // they refer to their services
  }

  // Builds the services and sources of `config`, keeping those whose configuration did not
  // change (and so their counters), and the tailer with every position it holds.
  void Apply(const config::Config& config) {
    positions_file = config.positions_file;
    // Every request series is named after the prefix: a new one starts every count again.
    // Otherwise services and sources are kept when the options they are built from are equal
    // (ServiceOptions, SourceSetup), and only then.
    const bool everything_changed = config.metric_prefix != metric_prefix;
    metric_prefix = config.metric_prefix;
    max_line_bytes = config.max_line_bytes;
    store->SetMetricPrefix(metric_prefix);

    // What is kept is taken out first; the rest is destroyed before anything is created, so
    // that a series dropped and created again under the same labels starts from zero.
    std::vector<std::unique_ptr<ServicePipeline>> kept_services(config.services.size());
    std::vector<std::vector<std::unique_ptr<SourceState>>> kept_sources(config.services.size());
    for (std::size_t s = 0; s < config.services.size() && !everything_changed; ++s) {
      const auto& service_config = config.services[s];
      const ServiceOptions options = ServiceOptionsOf(service_config);
      auto service = std::find_if(services.begin(), services.end(), [&](const auto& old) {
        return old && old->options() == options;
      });
      if (service == services.end() || !ReadsLogs(service_config)) continue;
      kept_services[s] = std::move(*service);
      kept_sources[s].resize(service_config.access_logs.size());
      for (std::size_t l = 0; l < service_config.access_logs.size(); ++l) {
        const SourceSetup setup =
            SourceSetupOf(service_config.access_logs[l], std::size_t(config.max_line_bytes));
        auto source = std::find_if(sources.begin(), sources.end(), [&](const auto& old) {
          return old && &old->service() == kept_services[s].get() && old->setup() == setup;
        });
        if (source != sources.end()) kept_sources[s][l] = std::move(*source);
      }
    }
    std::vector<SourceState*> previous_sources;
    for (const auto& source : sources) previous_sources.push_back(source.get());
    sources.clear();
    services.clear();

    {
      std::vector<std::string> names;
      for (const auto& service_config : config.services) names.push_back(service_config.name);
      recent_lines->Keep(names);
    }
    std::vector<TailSource> tail_sources;
    std::vector<SourceState*> journal_sources;
    std::vector<SourceState*> next_sources;
    for (std::size_t s = 0; s < config.services.size(); ++s) {
      const auto& service_config = config.services[s];
      if (!ReadsLogs(service_config)) continue;
      auto service = std::move(kept_services[s]);
      if (!service) {
        std::unique_ptr<RouteDiscovery> discovery;
        if (service_config.routes_from) {
          discovery = std::make_unique<RouteDiscovery>(service_config.name,
                                                       *service_config.routes_from, self.routes);
        }
        service = std::make_unique<ServicePipeline>(ServiceOptionsOf(service_config), *store,
                                                    self.line, std::move(discovery));
      }
      // Set apart from the counters: turning recent lines on or off keeps them.
      service->SetRecentLines(service_config.recent_lines
                                  ? recent_lines->Get(service_config.name, options.recent_lines,
                                                      service_config.recent_lines_query)
                                  : nullptr);
      if (!service_config.recent_lines) recent_lines->Drop(service_config.name);
      kept_sources[s].resize(service_config.access_logs.size());
      for (std::size_t l = 0; l < service_config.access_logs.size(); ++l) {
        const auto& log = service_config.access_logs[l];
        auto source = std::move(kept_sources[s][l]);
        if (!source) {
          source = std::make_unique<SourceState>(SourceSetupOf(log, std::size_t(max_line_bytes)),
                                                 *service, self);
        }
        SourceState* raw = source.get();
        if (log.journal) {
          journal_sources.push_back(raw);
        } else {
          tail_sources.push_back({PositionKey(service->name(), raw->name()), log.path, log.start_at,
                                  [raw] { return raw->pipeline().MakeFileSink(); }, raw,
                                  service->name()});
        }
        next_sources.push_back(raw);
        sources.push_back(std::move(source));
      }
      services.push_back(std::move(service));
    }

    // Same sources in the same order (and so the same files): the running tailer goes on.
    if (tailer && next_sources == previous_sources) return;
    std::optional<Positions> positions;
    if (tailer && positions_loaded) positions = Snapshot();
    TailerOptions tailer_options;
    tailer_options.max_line_bytes = std::size_t(max_line_bytes);
    tailer_options.use_inotify = options.use_inotify;
    tailer_options.from_beginning = options.from_beginning;
    tailer_options.observer = &tailer_state;
    self.tailer_polling.Set(0);  // the new tailer reports only when it has to poll
    tailer = std::make_unique<Tailer>(std::move(tail_sources), tailer_options);
    journals.clear();
    JournalSourceOptions journal_options;
    journal_options.max_line_bytes = std::size_t(max_line_bytes);
    journal_options.from_beginning = options.from_beginning;
    for (SourceState* source : journal_sources) {
      journals.push_back(std::make_unique<JournalSource>(
          PositionKey(source->service().name(), source->name()), *source->setup().journal,
          source->setup().start_at, source->pipeline(), source, journal_options));
    }
    if (positions) Restore(*positions);
  }

  // The files' positions and the journals' cursors, saved together.
  Positions Snapshot() {
    Positions positions = tailer->Snapshot();
    for (const auto& journal : journals) {
      if (auto position = journal->Position()) positions.journals.push_back(std::move(*position));
    }
    return positions;
  }

  void Restore(const Positions& positions) {
    tailer->Restore(positions);
    for (const auto& journal : journals) journal->Restore(positions);
  }

  std::vector<PolledInput*> Inputs() const {
    std::vector<PolledInput*> inputs;
    for (const auto& journal : journals) inputs.push_back(journal.get());
    return inputs;
  }

  // The positions file is read once, when following starts with at least one source; later
  // tailers take over the positions of the one they replace.
  void LoadPositionsOnce() {
    if (positions_loaded || sources.empty()) return;
    // Said at start, not at the first save minutes later: without saved positions a restart
    // reads every log from start_at again, losing or repeating lines.
    std::string unwritable;
    if (options.save_positions && !PositionsWritable(positions_file, unwritable)) {
      self.positions_save_errors.Increment();
      spdlog::error(
          "{}: positions cannot be saved, so after a restart every access log is read "
          "from start_at again (lines lost or counted twice); fix the folder's "
          "permissions or set positions_file",
          unwritable);
    }
    std::string warning;
    const Positions positions = LoadPositions(positions_file, warning);
    if (!warning.empty()) spdlog::warn("{}", warning);
    Restore(positions);
    positions_loaded = true;
  }

  void StartThread() {
    if (sources.empty() || thread.joinable()) return;
    // Before the thread (which may first wait for the routes) and so before the exporter
    // reports ready: start_at end means the lines written from then on.
    tailer->MarkStart();
    for (const auto& journal : journals) journal->MarkStart();
    stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    self.tailer_running.Set(1);
    {
      std::lock_guard lock(failure_mutex);
      failure.clear();
    }
    last_pass_ns.store(std::chrono::steady_clock::now().time_since_epoch().count());
    thread_alive = true;
    thread_expected = true;
    thread = std::thread([this] {
      for (const auto& service : services) service->WaitForRoutes();
      auto last_save = std::chrono::steady_clock::now();
      try {
        tailer->Run(
            stop_fd,
            [&] {
              const auto now = std::chrono::steady_clock::now();
              last_pass_ns.store(now.time_since_epoch().count(), std::memory_order_relaxed);
              if (options.save_positions && now - last_save >= options.save_interval) {
                SavePositions();
                last_save = now;
              }
            },
            Inputs());
      } catch (const std::exception& error) {
        // Nothing is read from here on: say so, loudly, and let the gauge and /healthz show it.
        spdlog::critical("the access-log reader stopped: {}; no request is counted any more",
                         error.what());
        std::lock_guard lock(failure_mutex);
        failure = error.what();
      }
      self.tailer_running.Set(0);
      thread_alive = false;
      // Every line read has been handed over: the positions are exactly what was counted.
      if (options.save_positions) SavePositions(/*final_save=*/true);
    });
  }

  void StopThread() {
    thread_expected = false;
    if (!thread.joinable()) return;
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t written = ::write(stop_fd, &one, sizeof one);
    thread.join();
    ::close(stop_fd);
    stop_fd = -1;
  }

  void SavePositions(bool final_save = false) {
    Positions positions = Snapshot();
    // Unchanged positions are not written again: an idle exporter does no disk I/O.
    if (last_saved && positions.files == last_saved->files &&
        positions.journals == last_saved->journals) {
      return;
    }
    std::string error;
    if (!access_log::SavePositions(positions_file, positions, error)) {
      self.positions_save_errors.Increment();
      if (!save_failed || final_save) {
        spdlog::error("{}{}", error,
                      final_save ? "; positions not saved, the next start reads from start_at"
                                 : " (will keep trying)");
      }
      save_failed = true;
    } else {
      save_failed = false;
      last_saved = std::move(positions);
    }
  }

  AccessLogOptions options;
  std::string positions_file;
  std::string metric_prefix;
  int max_line_bytes = 0;
  std::shared_ptr<RequestStore> store;
  std::shared_ptr<history::RecentLinesRegistry> recent_lines =
      std::make_shared<history::RecentLinesRegistry>();
  SelfFamilies self;
  TailerState tailer_state;
  std::vector<std::unique_ptr<ServicePipeline>> services;
  std::vector<std::unique_ptr<SourceState>> sources;
  std::unique_ptr<Tailer> tailer;
  std::vector<std::unique_ptr<JournalSource>> journals;  // read on the tailer's thread
  std::thread thread;
  int stop_fd = -1;
  // For Health(), read from server threads.
  std::atomic<bool> thread_expected{false};  // started and not being stopped
  std::atomic<bool> thread_alive{false};
  std::atomic<std::chrono::steady_clock::rep> last_pass_ns{0};
  std::mutex failure_mutex;
  std::string failure;  // why the thread ended, if it did on its own
  bool started = false;
  bool positions_loaded = false;
  bool save_failed = false;
  std::optional<Positions> last_saved;
};

AccessLogCollector::AccessLogCollector(const config::Config& config, prometheus::Registry& registry,
                                       AccessLogOptions options)
    : impl_(std::make_unique<Impl>(config, registry, options)) {}

AccessLogCollector::~AccessLogCollector() = default;

bool AccessLogCollector::empty() const {
  return impl_->sources.empty();
}

std::shared_ptr<Collector> AccessLogCollector::request_metrics() const {
  return impl_->store;
}

std::shared_ptr<RequestStore> AccessLogCollector::request_store() const {
  return impl_->store;
}

std::shared_ptr<history::RecentLinesRegistry> AccessLogCollector::recent_lines() const {
  return impl_->recent_lines;
}

void AccessLogCollector::Start() {
  impl_->started = true;
  impl_->LoadPositionsOnce();
  impl_->StartThread();
}

void AccessLogCollector::Stop() {
  impl_->StopThread();
}

void AccessLogCollector::Reconfigure(const config::Config& config) {
  impl_->StopThread();  // finishes the lines in hand and saves positions
  impl_->Apply(config);
  if (!impl_->started) return;
  impl_->LoadPositionsOnce();
  impl_->StartThread();
}

std::vector<std::string> AccessLogCollector::ReadOnce() {
  for (const auto& service : impl_->services) service->WaitForRoutes();
  // A pass reads at most max_bytes_per_poll of each file: go on until nothing is left.
  for (bool rescan = true; impl_->tailer->Poll(rescan) > 0; rescan = false) {
  }
  impl_->tailer->Finish();
  for (const auto& journal : impl_->journals) {
    while (journal->Read()) {
    }
  }
  std::vector<std::string> unread;
  for (const auto& source : impl_->sources) {
    if (source->unread_reason().empty()) continue;
    unread.push_back(
        fmt::format("service {}: {}", source->service().name(), source->unread_reason()));
  }
  return unread;
}

std::string AccessLogCollector::Health() const {
  Impl& impl = *impl_;
  if (!impl.thread_expected) return {};
  if (!impl.thread_alive) {
    std::lock_guard lock(impl.failure_mutex);
    return fmt::format("the access-log reader stopped: {}",
                       impl.failure.empty() ? "its thread ended" : impl.failure);
  }
  const auto since_pass = std::chrono::steady_clock::now() -
                          std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(
                              impl.last_pass_ns.load(std::memory_order_relaxed)));
  // A pass comes at least every rescan interval (10 s) plus the pass itself; waiting for the
  // first OpenAPI answers takes at most 8 s per service before the first one.
  if (since_pass > kStuckAfter) {
    return fmt::format("the access-log reader is stuck: no pass for {} s",
                       std::chrono::duration_cast<std::chrono::seconds>(since_pass).count());
  }
  return {};
}

std::string AccessLogCollector::Summary() const {
  std::string summary;
  for (const auto& service : impl_->services) {
    if (!summary.empty()) summary += ", ";
    summary += "service " + service->name() + ": " + std::to_string(service->metrics().recorded()) +
               " requests";
  }
  return summary;
}

}  // namespace fastapi_exporter::access_log
