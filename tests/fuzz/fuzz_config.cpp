// The YAML config loader. Checks: it returns (libFuzzer's -timeout and -rss_limit_mb bound its
// time and memory), every error names where it is, and a config it accepts can run: every
// access log has a parser with what its format needs.
#include "collectors/access_log/config_translation.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace fastapi_exporter;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const config::LoadResult result = config::ParseConfig(text);
  for (const auto& error : result.errors) {
    if (error.message.empty()) fuzz::Fail("an error without a message");
    (void)config::FormatError("fuzz.yaml", error);
  }
  if (!result.ok()) return 0;
  for (const auto& service : result.config.services) {
    if (service.name.empty()) fuzz::Fail("accepted a service without a name");
    for (const auto& log : service.access_logs) {
      if ((log.format == config::LogFormatKind::kNginx ||
           log.format == config::LogFormatKind::kGunicorn) &&
          log.field_format.tokens.empty()) {
        fuzz::Fail("accepted a text format without its log_format");
      }
      if (log.format == config::LogFormatKind::kRegex && log.regex.empty()) {
        fuzz::Fail("accepted format regex without a pattern");
      }
      if (!access_log::MakeLineParser(log)) fuzz::Fail("no parser for an accepted log");
    }
  }
  return 0;
}
