// `host:port` as Prometheus exporters take it: ":9869" (every interface), "127.0.0.1:9869",
// "[::1]:9869", "localhost:9869".
#pragma once

#include <optional>
#include <string>

namespace fastapi_exporter::config {

struct ListenAddress {
  std::string host;  // empty: every interface; IPv6 literals without brackets
  int port = 0;
};

// On failure returns nullopt and, when `problem` is given, says what is wrong.
std::optional<ListenAddress> ParseListenAddress(const std::string& text,
                                                std::string* problem = nullptr);

}  // namespace fastapi_exporter::config
