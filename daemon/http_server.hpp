// The HTTP side: civetweb serving the telemetry path, /healthz and the live view's paths.
// It knows nothing about metrics: it asks a callback for the exposition text.
#pragma once

#include <sys/socket.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "config/listen_address.hpp"
#include "daemon/basic_auth.hpp"
#include "daemon/tls.hpp"

struct mg_context;
struct mg_connection;

namespace fastapi_exporter {

// A /metrics response body: the concatenation of `pieces`, written one after another.
struct MetricsBody {
  std::vector<std::shared_ptr<const std::string>> pieces;
  bool gzip = false;  // the pieces together are a gzip file (Content-Encoding: gzip)
};

// A response of the live view (daemon/live_view.hpp).
struct WebResponse {
  int status = 200;
  std::string content_type;
  std::string body;
  bool cache = false;  // static assets: may be cached; API answers and the page: not
};

struct HttpServerOptions {
  config::ListenAddress listen_address;
  std::string telemetry_path = "/metrics";
  // Called concurrently from server threads, with whether the scraper accepts gzip; may
  // answer plain text even then.
  std::function<MetricsBody(bool accepts_gzip)> render_metrics;
  // Called concurrently from server threads: empty when healthy, otherwise why not, which
  // /healthz answers with 503.
  std::function<std::string()> unhealthy_reason;
  // The live view: called concurrently for every path but the telemetry path and /healthz,
  // behind the same TLS and basic auth; false: not its path (404). Unset: every such path is
  // 404.
  std::function<bool(std::string_view path, std::string_view query, WebResponse&)> web_app;
  int threads = 4;
  // Serve HTTPS with these settings instead of HTTP.
  std::shared_ptr<TlsServer> tls;
};

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Starts listening. On failure returns false and says why in `error`
  // (e.g. "cannot listen on 127.0.0.1:9869: Address already in use").
  bool Start(std::string& error);
  // Stops accepting and waits for requests in flight.
  void Stop();

  // Requires these credentials of every request but /healthz (null or no users: none).
  void SetBasicAuth(std::shared_ptr<BasicAuth> auth);
  bool serves_tls() const { return options_.tls != nullptr; }

 private:
  static int HandleMetrics(mg_connection* conn, void* self);
  static int HandleOtherPaths(mg_connection* conn, void* self);
  static int HandleHealth(mg_connection* conn, void* self);
  int HandleWebApp(mg_connection* conn);
  static int InitTls(void* ssl_context, void* self);
  static int LogMessage(const mg_connection* conn, const char* message);
  // Answers 401 and returns false when the request lacks valid credentials.
  bool Authorized(mg_connection* conn);
  // civetweb's master thread looks at its stop flag only every 2 s, between polls of the
  // listening sockets: Stop() connects to them to wake it, so that stopping takes
  // milliseconds. Where to connect:
  struct ListenerAddress {
    sockaddr_storage address;
    socklen_t length;
  };
  std::vector<ListenerAddress> ListenerAddresses() const;

  HttpServerOptions options_;
  std::mutex auth_mutex_;
  std::shared_ptr<BasicAuth> auth_;
  std::mutex messages_mutex_;
  std::vector<std::string> library_messages_;  // civetweb's log, for start-up errors
  mg_context* context_ = nullptr;
};

// Whether an Accept-Encoding header value accepts gzip (and does not refuse it with q=0).
bool AcceptsGzip(const char* accept_encoding);

}  // namespace fastapi_exporter
