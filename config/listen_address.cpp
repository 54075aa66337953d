#include "config/listen_address.hpp"

#include <charconv>

namespace fastapi_exporter::config {

std::optional<ListenAddress> ParseListenAddress(const std::string& text, std::string* problem) {
  auto fail = [&](const std::string& why) -> std::optional<ListenAddress> {
    if (problem) *problem = "'" + text + "' is not host:port: " + why;
    return std::nullopt;
  };
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) return fail("missing ':port'");
  ListenAddress address;
  address.host = text.substr(0, colon);
  if (!address.host.empty() && address.host.front() == '[') {
    if (address.host.size() < 3 || address.host.back() != ']') return fail("unbalanced brackets");
    address.host = address.host.substr(1, address.host.size() - 2);
  } else if (address.host.find(':') != std::string::npos) {
    return fail("an IPv6 address needs brackets, as in [::1]:9869");
  }
  const std::string port = text.substr(colon + 1);
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), address.port);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || address.port < 0 ||
      address.port > 65535) {
    return fail("the port must be a number from 0 to 65535");
  }
  return address;
}

}  // namespace fastapi_exporter::config
