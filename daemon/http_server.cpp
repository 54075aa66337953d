#include "daemon/http_server.hpp"

#include <civetweb.h>
#include <fmt/format.h>
#include <netdb.h>
#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <memory>
#include <string_view>
#include <thread>
#include <vector>

namespace fastapi_exporter {
namespace {

constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

struct Header {
  const char* name;
  const char* value;
};

// Every response goes through here, with its Date header: civetweb would write one with
// gmtime(), whose shared buffer two workers answering at once overwrite (ThreadSanitizer
// reports it); with a Date header given, it writes none.
void SendResponse(mg_connection* conn, int status, const char* content_type,
                  const std::vector<std::shared_ptr<const std::string>>& body,
                  std::initializer_list<Header> extra = {}) {
  std::size_t length = 0;
  for (const auto& piece : body) length += piece->size();
  char date[64] = "";
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  if (gmtime_r(&now, &utc)) std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &utc);
  mg_response_header_start(conn, status);
  mg_response_header_add(conn, "Date", date, -1);
  mg_response_header_add(conn, "Content-Type", content_type, -1);
  mg_response_header_add(conn, "Content-Length", std::to_string(length).c_str(), -1);
  for (const Header& header : extra) mg_response_header_add(conn, header.name, header.value, -1);
  if (status == 405) mg_response_header_add(conn, "Allow", "GET, HEAD", -1);
  mg_response_header_send(conn);
  const mg_request_info* request = mg_get_request_info(conn);
  if (std::strcmp(request->request_method, "HEAD") != 0) {
    for (const auto& piece : body) {
      if (mg_write(conn, piece->data(), piece->size()) <= 0 && !piece->empty()) break;
    }
  }
}

void SendResponse(mg_connection* conn, int status, const char* content_type,
                  const std::string& body, std::initializer_list<Header> extra = {}) {
  // Not copied: the pointer lives only during the call, and owns nothing.
  const std::shared_ptr<const std::string> piece(&body, [](const std::string*) {});
  SendResponse(conn, status, content_type, {piece}, extra);
}

bool IsGetOrHead(mg_connection* conn) {
  const char* method = mg_get_request_info(conn)->request_method;
  return std::strcmp(method, "GET") == 0 || std::strcmp(method, "HEAD") == 0;
}

// civetweb wants an IP literal; resolve host names such as "localhost" ourselves.
std::string ListeningPorts(const config::ListenAddress& address, std::string& error) {
  const std::string port = std::to_string(address.port);
  if (address.host.empty()) {
    // Every interface; both address families where the library has IPv6.
    return (mg_check_feature(MG_FEATURES_IPV6) ? "+" : "") + port;
  }
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found);
  if (rc != 0 || !found) {
    error = "cannot resolve listen host '" + address.host + "': " + gai_strerror(rc);
    return {};
  }
  char host[NI_MAXHOST];
  getnameinfo(found->ai_addr, found->ai_addrlen, host, sizeof host, nullptr, 0, NI_NUMERICHOST);
  const bool ipv6 = found->ai_family == AF_INET6;
  freeaddrinfo(found);
  if (ipv6 && !mg_check_feature(MG_FEATURES_IPV6)) {
    // Debian's libcivetweb1 is built without IPv6: say so rather than civetweb's "invalid
    // port spec".
    error = fmt::format(
        "cannot listen on [{}]:{}: this build's HTTP library (civetweb) has no IPv6 support; "
        "listen on an IPv4 address or on every interface (\":{}\")",
        host, port, port);
    return {};
  }
  return ipv6 ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options) : options_(std::move(options)) {}

HttpServer::~HttpServer() {
  Stop();
}

bool HttpServer::Start(std::string& error) {
  std::string ports = ListeningPorts(options_.listen_address, error);
  if (ports.empty()) return false;
  if (options_.tls) ports += "s";
  const std::string threads = std::to_string(options_.threads);
  // tcp_nodelay: a response goes out in several small writes (TLS records especially); with
  // Nagle on, each one after the first waits for the client's delayed ACK (~40 ms per scrape).
  const char* civet_options[] = {"listening_ports",
                                 ports.c_str(),
                                 "num_threads",
                                 threads.c_str(),
                                 "request_timeout_ms",
                                 "30000",
                                 "enable_keep_alive",
                                 "yes",
                                 "tcp_nodelay",
                                 "1",
                                 nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = LogMessage;
  if (options_.tls) callbacks.init_ssl = InitTls;
  mg_init_data init{&callbacks, this, civet_options};
  char error_text[256] = "";
  mg_error_data error_data{nullptr, error_text, sizeof error_text};
  mg_init_library(options_.tls ? MG_FEATURES_TLS : 0);
  context_ = mg_start2(&init, &error_data);
  if (!context_) {
    const std::string shown =
        fmt::format("{}:{}", options_.listen_address.host, options_.listen_address.port);
    error = "cannot listen on " + shown + ": " + (error_text[0] ? error_text : "unknown error");
    for (const std::string& message : library_messages_) {
      if (message != error_text) error += "; " + message;
    }
    return false;
  }
  mg_set_request_handler(context_, options_.telemetry_path.c_str(), HandleMetrics, this);
  mg_set_request_handler(context_, "/healthz$", HandleHealth, this);
  // Last, so that it gets only what the others do not take: every other path answers here
  // (404), not from civetweb's own error page.
  mg_set_request_handler(context_, "/", HandleOtherPaths, this);
  return true;
}

void HttpServer::Stop() {
  if (!context_) return;
  // Read before mg_stop starts: it closes the listening sockets and frees the context.
  const std::vector<ListenerAddress> listeners = ListenerAddresses();
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    mg_stop(context_);
    stopped = true;
  });
  // Until mg_stop returns: its first step sets the stop flag, the next poll return sees it.
  for (int attempt = 0; attempt < 400 && !stopped; ++attempt) {
    for (const ListenerAddress& listener : listeners) {
      const int fd = ::socket(listener.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      [[maybe_unused]] const int rc =
          ::connect(fd, reinterpret_cast<const sockaddr*>(&listener.address), listener.length);
      ::close(fd);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  stopper.join();
  context_ = nullptr;
}

std::vector<HttpServer::ListenerAddress> HttpServer::ListenerAddresses() const {
  std::vector<ListenerAddress> listeners;
  mg_server_port ports[4];
  const int count = mg_get_server_ports(context_, 4, ports);
  const std::string& host = options_.listen_address.host;
  for (int i = 0; i < count; ++i) {
    ListenerAddress listener{};
    if (ports[i].protocol == 2) {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&listener.address);
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons(uint16_t(ports[i].port));
      if (host.empty() || ::inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) != 1) {
        in6->sin6_addr = in6addr_loopback;
      }
      listener.length = sizeof *in6;
    } else {
      auto* in4 = reinterpret_cast<sockaddr_in*>(&listener.address);
      in4->sin_family = AF_INET;
      in4->sin_port = htons(uint16_t(ports[i].port));
      if (host.empty() || ::inet_pton(AF_INET, host.c_str(), &in4->sin_addr) != 1) {
        in4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      }
      listener.length = sizeof *in4;
    }
    listeners.push_back(listener);
  }
  return listeners;
}

void HttpServer::SetBasicAuth(std::shared_ptr<BasicAuth> auth) {
  std::lock_guard lock(auth_mutex_);
  auth_ = std::move(auth);
}

bool HttpServer::Authorized(mg_connection* conn) {
  std::shared_ptr<BasicAuth> auth;
  {
    std::lock_guard lock(auth_mutex_);
    auth = auth_;
  }
  if (!auth || auth->Allows(mg_get_header(conn, "Authorization"))) return true;
  SendResponse(conn, 401, "text/plain", "unauthorized\n",
               {{"WWW-Authenticate", "Basic realm=\"fastapi-exporter\""}});
  return false;
}

int HttpServer::InitTls(void* ssl_context, void* self_ptr) {
  auto* self = static_cast<HttpServer*>(self_ptr);
  self->options_.tls->ConfigureContext(static_cast<SSL_CTX*>(ssl_context));
  return 1;  // configured: civetweb loads no certificate of its own
}

int HttpServer::LogMessage(const mg_connection* conn, const char* message) {
  spdlog::debug("http: {}", message);
  // Keep the messages: when starting fails they hold the reason ("cannot bind ...").
  if (auto* self = static_cast<HttpServer*>(mg_get_user_data(mg_get_context(conn)))) {
    std::lock_guard lock(self->messages_mutex_);
    if (self->library_messages_.size() < 32) self->library_messages_.push_back(message);
  }
  return 1;  // handled: keep civetweb from printing to stderr itself
}

int HttpServer::HandleMetrics(mg_connection* conn, void* self_ptr) {
  auto* self = static_cast<HttpServer*>(self_ptr);
  if (!self->Authorized(conn)) return 401;
  if (!IsGetOrHead(conn)) {
    SendResponse(conn, 405, "text/plain", "method not allowed\n");
    return 405;
  }
  // civetweb matches handler URIs as prefixes; serve the exact path only.
  if (std::strcmp(mg_get_request_info(conn)->local_uri, self->options_.telemetry_path.c_str())) {
    SendResponse(conn, 404, "text/plain", "not found\n");
    return 404;
  }
  const MetricsBody body =
      self->options_.render_metrics(AcceptsGzip(mg_get_header(conn, "Accept-Encoding")));
  if (body.gzip) {
    SendResponse(conn, 200, kMetricsContentType, body.pieces, {{"Content-Encoding", "gzip"}});
  } else {
    SendResponse(conn, 200, kMetricsContentType, body.pieces);
  }
  return 200;
}

int HttpServer::HandleOtherPaths(mg_connection* conn, void* self_ptr) {
  auto* self = static_cast<HttpServer*>(self_ptr);
  if (!self->Authorized(conn)) return 401;
  if (self->options_.web_app) return self->HandleWebApp(conn);
  SendResponse(conn, 404, "text/plain", "not found\n");
  return 404;
}

int HttpServer::HandleWebApp(mg_connection* conn) {
  if (!IsGetOrHead(conn)) {
    SendResponse(conn, 405, "text/plain", "method not allowed\n");
    return 405;
  }
  const mg_request_info* request = mg_get_request_info(conn);
  WebResponse response;
  if (!options_.web_app(request->local_uri ? request->local_uri : "",
                        request->query_string ? request->query_string : "", response)) {
    SendResponse(conn, 404, "text/plain", "not found\n");
    return 404;
  }
  // Scripts, styles and data come from here only, and no inline script runs: a path or log
  // line that slipped into the page as markup could not execute. Dygraphs positions its
  // elements with style attributes, hence style-src 'unsafe-inline' (styles cannot run code).
  SendResponse(conn, response.status, response.content_type.c_str(), response.body,
               {{"Content-Security-Policy",
                 "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                 "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                 "form-action 'none'; frame-ancestors 'none'"},
                {"X-Content-Type-Options", "nosniff"},
                {"Referrer-Policy", "no-referrer"},
                {"Cache-Control", response.cache ? "max-age=3600" : "no-store"}});
  return response.status;
}

int HttpServer::HandleHealth(mg_connection* conn, void* self_ptr) {
  auto* self = static_cast<HttpServer*>(self_ptr);
  const std::string reason =
      self->options_.unhealthy_reason ? self->options_.unhealthy_reason() : std::string();
  if (reason.empty()) {
    SendResponse(conn, 200, "text/plain", "ok\n");
    return 200;
  }
  SendResponse(conn, 503, "text/plain", fmt::format("unhealthy: {}\n", reason));
  return 503;
}

bool AcceptsGzip(const char* accept_encoding) {
  if (!accept_encoding) return false;
  std::string_view header(accept_encoding);
  while (!header.empty()) {
    const auto comma = header.find(',');
    std::string_view item = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    const auto semicolon = item.find(';');
    std::string_view coding = item.substr(0, semicolon);
    while (!coding.empty() && coding.back() == ' ') coding.remove_suffix(1);
    if (coding != "gzip" && coding != "*") continue;
    if (semicolon == std::string_view::npos) return true;
    std::string_view params = item.substr(semicolon + 1);
    const auto q = params.find("q=");
    if (q == std::string_view::npos) return true;
    // q=0 (or 0.0, 0.000) refuses; any non-zero digit accepts.
    const std::string_view value = params.substr(q + 2);
    return value.find_first_of("123456789") != std::string_view::npos;
  }
  return false;
}

}  // namespace fastapi_exporter
