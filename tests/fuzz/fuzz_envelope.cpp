// The docker and CRI envelope decoders fed several records. Checks:
// - differential: a decoder that holds no partial line answers a record exactly as a fresh
//   decoder does (what came before matters only through the partial it holds);
// - a line handed on is never longer than the limit.
// The first byte picks the envelope.
#include "collectors/access_log/envelope.hpp"
#include "tests/fuzz/fuzz_common.hpp"

namespace {
constexpr std::size_t kMaxLineBytes = 64;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace fastapi_exporter;
  using Status = access_log::EnvelopeDecoder::Status;
  if (size < 1) return 0;
  const auto envelope = data[0] % 2 ? access_log::Envelope::kDocker : access_log::Envelope::kCri;
  auto warm = access_log::MakeEnvelopeDecoder(envelope, kMaxLineBytes);
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  for (std::string_view record : fuzz::SplitLines(input)) {
    const bool was_holding = warm->HoldsPartial();
    std::string_view line;
    const Status status = warm->Decode(record, line);
    const std::string seen(status == Status::kLine ? line : std::string_view());
    if (status == Status::kLine && seen.size() > kMaxLineBytes) fuzz::Fail("line over the limit");
    if (was_holding) continue;
    auto fresh = access_log::MakeEnvelopeDecoder(envelope, kMaxLineBytes);
    std::string_view fresh_line;
    const Status fresh_status = fresh->Decode(record, fresh_line);
    if (fresh_status != status || (status == Status::kLine && std::string(fresh_line) != seen)) {
      fuzz::Fail("a decoder holding nothing differs from a fresh one");
    }
  }
  return 0;
}
