// The access-log format languages users write in the config: gunicorn's access_log_format
// atoms and nginx's log_format variables, compiled to a sequence of literals and fields.
// They live with the config because validating a config means parsing them; the line parser
// in collectors/access_log consumes the compiled form.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace fastapi_exporter::config {

enum class LogField {
  kIgnore,           // any field the exporter does not use
  kRequestLine,      // "GET /path?q HTTP/1.1"
  kMethod,           // GET
  kTarget,           // path with query string (nginx $request_uri)
  kPath,             // path without query string (gunicorn %(U)s, nginx $uri)
  kStatus,           // 200
  kSeconds,          // decimal seconds (nginx $request_time, gunicorn %(L)s, %(T)s)
  kMilliseconds,     // gunicorn %(M)s
  kMicroseconds,     // gunicorn %(D)s
  kUpstreamSeconds,  // nginx $upstream_response_time: "-", "0.01" or "0.01, 0.02 : 0.03"
  kBracketed,        // a value in [...] that may contain spaces (gunicorn %(t)s)
};

struct LogFormatToken {
  bool is_literal = false;
  std::string literal;  // when is_literal
  LogField field = LogField::kIgnore;
  bool operator==(const LogFormatToken&) const = default;
};

struct CompiledLogFormat {
  std::vector<LogFormatToken> tokens;
  bool operator==(const CompiledLogFormat&) const = default;
};

inline constexpr const char* kGunicornDefaultFormat =
    R"(%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s")";
inline constexpr const char* kNginxCombinedFormat =
    R"($remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent )"
    R"("$http_referer" "$http_user_agent")";

// Both return nullopt and say why in `problem` when the format cannot give a request:
// it needs a status and either a request line or a method and a path; two fields in a row
// with nothing between them cannot be told apart.
std::optional<CompiledLogFormat> CompileGunicornFormat(const std::string& format,
                                                       std::string* problem);
// Also accepts the name "combined" for nginx's predefined format.
std::optional<CompiledLogFormat> CompileNginxFormat(const std::string& format,
                                                    std::string* problem);

}  // namespace fastapi_exporter::config
