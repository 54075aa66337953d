#include "daemon/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace fastapi_exporter {
namespace {

// The message, escaped for a quoted logfmt value or a JSON string, so that a message with
// quotes, backslashes or newlines (a file name, an error from a parser) stays one valid line.
class EscapedMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    static constexpr char kHex[] = "0123456789abcdef";
    for (char c : msg.payload) {
      switch (c) {
        case '"':
          dest.append(std::string_view("\\\""));
          break;
        case '\\':
          dest.append(std::string_view("\\\\"));
          break;
        case '\n':
          dest.append(std::string_view("\\n"));
          break;
        case '\t':
          dest.append(std::string_view("\\t"));
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            const char escaped[] = {'\\', 'u', '0', '0', kHex[(c >> 4) & 0xf], kHex[c & 0xf]};
            dest.append(escaped, escaped + sizeof escaped);
          } else {
            dest.push_back(c);
          }
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<EscapedMessage>();
  }
};

}  // namespace

bool SetupLogging(const std::string& level, const std::string& format) {
  spdlog::level::level_enum spd_level;
  if (level == "debug") {
    spd_level = spdlog::level::debug;
  } else if (level == "info") {
    spd_level = spdlog::level::info;
  } else if (level == "warn") {
    spd_level = spdlog::level::warn;
  } else if (level == "error") {
    spd_level = spdlog::level::err;
  } else {
    return false;
  }
  std::string pattern;
  if (format == "logfmt") {
    pattern = R"(ts=%Y-%m-%dT%H:%M:%S.%eZ level=%l msg="%*")";
  } else if (format == "json") {
    pattern = R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":"%*"})";
  } else {
    return false;
  }
  auto formatter = std::make_unique<spdlog::pattern_formatter>(
      spdlog::pattern_time_type::utc, std::string(spdlog::details::os::default_eol));
  formatter->add_flag<EscapedMessage>('*').set_pattern(pattern);
  auto logger = std::make_shared<spdlog::logger>("fastapi-exporter",
                                                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_formatter(std::move(formatter));
  logger->set_level(spd_level);
  logger->flush_on(spdlog::level::debug);
  spdlog::set_default_logger(std::move(logger));
  return true;
}

}  // namespace fastapi_exporter
