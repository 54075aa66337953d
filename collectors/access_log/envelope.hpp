// Container log envelopes around the application's own line: Docker's json-file driver and
// the CRI format of Kubernetes/containerd. Both split long lines into partial records; the
// decoder joins them. One decoder per file, as partial records belong to their file.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace fastapi_exporter::access_log {

// The envelope of a source's records (the config's `envelope`).
enum class Envelope { kNone, kDocker, kCri };

class EnvelopeDecoder {
 public:
  enum class Status {
    kLine,     // `line` holds the application's complete line
    kPartial,  // a partial record was kept; the line continues in the next record
    kInvalid,  // not a record of this envelope
    kTooLong,  // the joined line went over the limit and was dropped
  };
  virtual ~EnvelopeDecoder() = default;
  // `line` stays valid until the next call.
  virtual Status Decode(std::string_view record, std::string_view& line) = 0;
  // True while partial records are held (their line is not complete yet).
  virtual bool HoldsPartial() const = 0;
};

// nullptr for Envelope::kNone.
std::unique_ptr<EnvelopeDecoder> MakeEnvelopeDecoder(Envelope envelope, std::size_t max_line_bytes);

}  // namespace fastapi_exporter::access_log
