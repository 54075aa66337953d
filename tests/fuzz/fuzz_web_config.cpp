// The web config loader (TLS and basic auth, exporter-toolkit format): it returns, and every
// error has a message.
#include "config/web_config.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace fastapi_exporter;
  const config::WebConfigResult result =
      config::ParseWebConfig(std::string(reinterpret_cast<const char*>(data), size));
  for (const auto& error : result.errors) {
    if (error.message.empty()) fuzz::Fail("an error without a message");
  }
  return 0;
}
