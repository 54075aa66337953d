// Route templates from a service's OpenAPI document (FastAPI serves it at /openapi.json by
// default), and the thread that keeps them fresh.
//
// Every key of `paths` becomes a route in FastAPI syntax, prefixed by the path of the first
// `servers` URL (FastAPI's root_path), and also without it (an app behind a proxy that strips
// the prefix logs paths without it). Path parameters match one segment whatever their
// declared type: FastAPI routes a request by its path first and validates types afterwards
// (a 422 under the same route), which is also what in-process middleware labels. OpenAPI
// cannot tell a {x:path} convertor (it appears as {x}), nor list mounted sub-applications or
// routes with include_in_schema=False: configured `routes` (tried first) cover those.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "config/config.hpp"

namespace fastapi_exporter::access_log {

inline constexpr std::size_t kMaxOpenApiBytes = 16 << 20;
inline constexpr std::size_t kMaxOpenApiPaths = 10000;

// Why a refresh failed: the `reason` label of fastapi_exporter_routes_refresh_errors_total.
enum class OpenApiError {
  kNone,
  kFetch,
  kHttpStatus,
  kTooLarge,
  kInvalidJson,
  kInvalidOpenApi,
  kTooManyPaths
};
inline constexpr std::size_t kOpenApiErrorCount = 7;
std::string_view OpenApiErrorName(OpenApiError error);

// The routes of an OpenAPI document, in the document's order (FastAPI's declaration order).
// On error returns the reason and says why in `message`; `routes` is then untouched. Paths
// that cannot be a route template are skipped and counted in `skipped`.
OpenApiError RoutesFromOpenApi(std::string_view document,
                               std::vector<config::RouteTemplate>& routes, std::size_t& skipped,
                               std::string& message);

// libcurl's process-wide setup, which is not thread-safe: call once from main before any
// thread starts (libcurl would otherwise do it on first use, from whichever thread).
void InitRouteDiscovery();

// Self-metrics of route discovery, per service.
struct RouteDiscoveryFamilies {
  prometheus::Family<prometheus::Gauge>& discovered;        // routes in the table in use
  prometheus::Family<prometheus::Gauge>& last_success;      // unix time of the last good refresh
  prometheus::Family<prometheus::Counter>& refresh_errors;  // by reason
};

// fastapi_exporter_routes_{discovered,last_refresh_success_timestamp_seconds,
// refresh_errors_total} in `registry`: one definition for every source that discovers routes
// (the registry merges a second registration only while name and help are identical).
RouteDiscoveryFamilies RegisterRouteDiscoveryFamilies(prometheus::Registry& registry);

// Fetches a service's OpenAPI document at start and every `refresh`, on a thread of its own:
// a slow or dead service never holds up reading logs or scrapes. Until a first document is
// read, it retries after 1 s, 2 s, 4 s... up to kFirstTableRetryMax (a service starting after
// the exporter). A failed refresh keeps the last good table. The ingestion thread picks a
// new table up with TakeUpdate.
class RouteDiscovery {
 public:
  static constexpr std::chrono::milliseconds kFirstTableRetryMax{30'000};

  RouteDiscovery(std::string service, config::RoutesFrom from, RouteDiscoveryFamilies families);
  ~RouteDiscovery();
  RouteDiscovery(const RouteDiscovery&) = delete;
  RouteDiscovery& operator=(const RouteDiscovery&) = delete;

  // Cheap enough for every line: an atomic load when nothing changed.
  bool HasUpdate() const { return has_update_.load(std::memory_order_acquire); }
  // Moves the newest table into `routes`; false when there is none since the last call.
  bool TakeUpdate(std::vector<config::RouteTemplate>& routes);
  // Waits until the first fetch has succeeded or failed, at most `timeout`.
  void WaitFirstAttempt(std::chrono::milliseconds timeout);

 private:
  void Run();
  bool RefreshOnce();  // true when a table was read
  OpenApiError Fetch(std::string& body, std::string& message) const;

  const std::string service_;
  const config::RoutesFrom from_;
  RouteDiscoveryFamilies families_;
  prometheus::Gauge* discovered_;
  prometheus::Gauge* last_success_;
  std::vector<prometheus::Counter*> errors_;
  std::string last_error_;  // logged when it changes, not on every refresh

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool attempted_ = false;
  std::vector<config::RouteTemplate> pending_;
  std::atomic<bool> has_update_{false};
  std::thread thread_;
};

}  // namespace fastapi_exporter::access_log
