#include "collectors/access_log/openapi_routes.hpp"

#include <curl/curl.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>

namespace fastapi_exporter::access_log {

RouteDiscoveryFamilies RegisterRouteDiscoveryFamilies(prometheus::Registry& registry) {
  return {prometheus::BuildGauge()
              .Name("fastapi_exporter_routes_discovered")
              .Help("Route templates read from the service's OpenAPI document and in use.")
              .Register(registry),
          prometheus::BuildGauge()
              .Name("fastapi_exporter_routes_last_refresh_success_timestamp_seconds")
              .Help("When the service's OpenAPI document was last read successfully.")
              .Register(registry),
          prometheus::BuildCounter()
              .Name("fastapi_exporter_routes_refresh_errors_total")
              .Help("Failed reads of the service's OpenAPI document, by reason; the last good "
                    "route table stays in use.")
              .Register(registry)};
}
namespace {

namespace dom = simdjson::dom;

// "http://host:8000/api/v1/" -> "/api/v1"; "/api/v1" -> "/api/v1"; "" or "/" -> "".
std::string PathPrefix(std::string_view url) {
  if (const std::size_t scheme = url.find("://"); scheme != std::string_view::npos) {
    const std::size_t slash = url.find('/', scheme + 3);
    url = slash == std::string_view::npos ? std::string_view() : url.substr(slash);
  }
  url = url.substr(0, url.find_first_of("?#"));
  while (!url.empty() && url.back() == '/') url.remove_suffix(1);
  if (!url.empty() && url.front() != '/') return "";
  return std::string(url);
}

}  // namespace

void InitRouteDiscovery() {
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

std::string_view OpenApiErrorName(OpenApiError error) {
  static constexpr std::string_view kNames[kOpenApiErrorCount] = {
      "none",         "fetch",           "http_status",   "too_large",
      "invalid_json", "invalid_openapi", "too_many_paths"};
  return kNames[std::size_t(error)];
}

OpenApiError RoutesFromOpenApi(std::string_view document,
                               std::vector<config::RouteTemplate>& routes, std::size_t& skipped,
                               std::string& message) {
  skipped = 0;
  if (document.size() > kMaxOpenApiBytes) {
    message = "the document is over " + std::to_string(kMaxOpenApiBytes) + " bytes";
    return OpenApiError::kTooLarge;
  }
  dom::parser parser;
  dom::element root;
  const simdjson::padded_string padded(document);
  if (const auto error = parser.parse(padded).get(root)) {
    message = std::string("not JSON: ") + simdjson::error_message(error);
    return OpenApiError::kInvalidJson;
  }
  dom::object paths;
  if (root["paths"].get_object().get(paths)) {
    message = "no \"paths\" object: not an OpenAPI document";
    return OpenApiError::kInvalidOpenApi;
  }
  if (paths.size() > kMaxOpenApiPaths) {
    message = std::to_string(paths.size()) + " paths, at most " + std::to_string(kMaxOpenApiPaths);
    return OpenApiError::kTooManyPaths;
  }
  // FastAPI puts root_path in servers[0].url.
  std::string prefix;
  dom::array servers;
  if (!root["servers"].get_array().get(servers) && servers.size() > 0) {
    std::string_view url;
    if (!servers.at(0)["url"].get_string().get(url)) prefix = PathPrefix(url);
  }
  // Behind a proxy that strips the prefix, the proxy's log has it and the app's own log does
  // not: both spellings are routes, the prefixed ones first.
  std::vector<config::RouteTemplate> table;
  for (const std::string& with :
       prefix.empty() ? std::vector<std::string>{""} : std::vector<std::string>{prefix, ""}) {
    for (const dom::key_value_pair path : paths) {
      std::string problem;
      auto route = config::ParseRouteTemplate(with + std::string(path.key), &problem);
      if (!route) {
        skipped += with.empty() ? 1 : 0;
        continue;
      }
      table.push_back(std::move(*route));
    }
  }
  routes = std::move(table);
  return OpenApiError::kNone;
}

RouteDiscovery::RouteDiscovery(std::string service, config::RoutesFrom from,
                               RouteDiscoveryFamilies families)
    : service_(std::move(service)), from_(std::move(from)), families_(families) {
  const prometheus::Labels labels{{"service", service_}};
  discovered_ = &families_.discovered.Add(labels);
  last_success_ = &families_.last_success.Add(labels);
  for (std::size_t i = 1; i < kOpenApiErrorCount; ++i) {
    errors_.push_back(&families_.refresh_errors.Add(
        {{"service", service_}, {"reason", std::string(OpenApiErrorName(OpenApiError(i)))}}));
  }
  thread_ = std::thread([this] { Run(); });
}

RouteDiscovery::~RouteDiscovery() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
  families_.discovered.Remove(discovered_);
  families_.last_success.Remove(last_success_);
  for (auto* counter : errors_) families_.refresh_errors.Remove(counter);
}

bool RouteDiscovery::TakeUpdate(std::vector<config::RouteTemplate>& routes) {
  std::lock_guard lock(mutex_);
  if (!has_update_.load(std::memory_order_relaxed)) return false;
  routes = std::move(pending_);
  pending_.clear();
  has_update_.store(false, std::memory_order_release);
  return true;
}

void RouteDiscovery::WaitFirstAttempt(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  wake_.wait_for(lock, timeout, [this] { return attempted_ || stop_; });
}

void RouteDiscovery::Run() {
  // Until a first table is read, retry soon: the exporter usually starts before the service
  // (boot, deploy), and each minute without the table labels requests by raw paths. 1 s, then
  // twice as long each time, up to 30 s (or `refresh`, if that is shorter).
  std::chrono::milliseconds retry{1000};
  bool loaded = false;
  std::unique_lock lock(mutex_);
  while (!stop_) {
    lock.unlock();
    loaded |= RefreshOnce();
    lock.lock();
    attempted_ = true;
    wake_.notify_all();
    const std::chrono::milliseconds wait = loaded ? from_.refresh : std::min(retry, from_.refresh);
    retry = std::min(retry * 2, kFirstTableRetryMax);
    wake_.wait_for(lock, wait, [this] { return stop_; });
  }
}

bool RouteDiscovery::RefreshOnce() {
  std::string body, message;
  OpenApiError error = Fetch(body, message);
  std::vector<config::RouteTemplate> routes;
  std::size_t skipped = 0;
  if (error == OpenApiError::kNone) error = RoutesFromOpenApi(body, routes, skipped, message);
  const std::string& where = from_.openapi_url.empty() ? from_.openapi_file : from_.openapi_url;
  if (error != OpenApiError::kNone) {
    errors_[std::size_t(error) - 1]->Increment();
    const std::string problem = std::string(OpenApiErrorName(error)) + ": " + message;
    if (problem != last_error_) {
      spdlog::warn("service {}: cannot read routes from {} ({}); keeping the last good table",
                   service_, where, problem);
      last_error_ = problem;
    }
    return false;
  }
  if (!last_error_.empty() || discovered_->Value() != double(routes.size())) {
    spdlog::info("service {}: {} routes from {}{}", service_, routes.size(), where,
                 skipped ? " (" + std::to_string(skipped) + " paths that are not routes skipped)"
                         : std::string());
  }
  last_error_.clear();
  discovered_->Set(double(routes.size()));
  last_success_->Set(double(std::time(nullptr)));
  std::lock_guard lock(mutex_);
  pending_ = std::move(routes);
  has_update_.store(true, std::memory_order_release);
  return true;
}

namespace {

struct Download {
  std::string body;
  bool too_large = false;
};

std::size_t Append(char* data, std::size_t size, std::size_t count, void* user) {
  auto* download = static_cast<Download*>(user);
  if (download->body.size() + size * count > kMaxOpenApiBytes) {
    download->too_large = true;
    return 0;  // aborts the transfer
  }
  download->body.append(data, size * count);
  return size * count;
}

}  // namespace

OpenApiError RouteDiscovery::Fetch(std::string& body, std::string& message) const {
  if (!from_.openapi_file.empty()) {
    std::ifstream file(from_.openapi_file, std::ios::binary);
    if (!file) {
      message = "cannot read " + from_.openapi_file;
      return OpenApiError::kFetch;
    }
    body.resize(kMaxOpenApiBytes + 1);
    file.read(body.data(), std::streamsize(body.size()));
    body.resize(std::size_t(file.gcount()));
    if (body.size() > kMaxOpenApiBytes) {
      message = "the file is over " + std::to_string(kMaxOpenApiBytes) + " bytes";
      return OpenApiError::kTooLarge;
    }
    return OpenApiError::kNone;
  }
  CURL* curl = curl_easy_init();
  if (!curl) {
    message = "cannot start an HTTP client";
    return OpenApiError::kFetch;
  }
  Download download;
  char error_buffer[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl, CURLOPT_URL, from_.openapi_url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM from a thread
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 3L);
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");  // whatever curl can decode
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "fastapi-exporter");
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &download);
  const CURLcode code = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  if (download.too_large) {
    message = "the response is over " + std::to_string(kMaxOpenApiBytes) + " bytes";
    return OpenApiError::kTooLarge;
  }
  if (code != CURLE_OK) {
    message = error_buffer[0] ? error_buffer : curl_easy_strerror(code);
    return OpenApiError::kFetch;
  }
  if (status != 200) {
    message = "HTTP status " + std::to_string(status);
    return OpenApiError::kHttpStatus;
  }
  body = std::move(download.body);
  return OpenApiError::kNone;
}

}  // namespace fastapi_exporter::access_log
