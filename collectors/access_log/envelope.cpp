#include "collectors/access_log/envelope.hpp"

#include "collectors/access_log/json_line.hpp"

namespace fastapi_exporter::access_log {
namespace {

// Joins partial records, with memory bounded by the line limit.
// One per stream: the runtime copies stdout and stderr concurrently, so a stderr record can
// land between two pieces of a stdout line.
class Joiner {
 public:
  explicit Joiner(std::size_t max_bytes) : max_bytes_(max_bytes) {}

  // Adds a piece; `last` completes the line. Returns the status and, for kLine, the line.
  EnvelopeDecoder::Status Add(std::string_view piece, bool last, std::string_view& line) {
    if (!holding_ && last) {
      line = piece;
      return piece.size() > max_bytes_ ? EnvelopeDecoder::Status::kTooLong
                                       : EnvelopeDecoder::Status::kLine;
    }
    holding_ = true;
    if (!overflowed_) {
      if (buffer_.size() + piece.size() > max_bytes_) {
        overflowed_ = true;
        buffer_.clear();
      } else {
        buffer_.append(piece);
      }
    }
    if (!last) return EnvelopeDecoder::Status::kPartial;
    holding_ = false;
    if (overflowed_) {
      overflowed_ = false;
      return EnvelopeDecoder::Status::kTooLong;
    }
    joined_.swap(buffer_);
    buffer_.clear();
    line = joined_;
    return EnvelopeDecoder::Status::kLine;
  }
  bool holding() const { return holding_; }

 private:
  std::size_t max_bytes_;
  std::string buffer_;
  std::string joined_;
  bool holding_ = false;
  bool overflowed_ = false;
};

// Partial lines of stdout and stderr, joined apart.
class StreamJoiners {
 public:
  explicit StreamJoiners(std::size_t max_bytes) : stdout_(max_bytes), stderr_(max_bytes) {}
  Joiner& of(bool is_stderr) { return is_stderr ? stderr_ : stdout_; }
  bool holding() const { return stdout_.holding() || stderr_.holding(); }

 private:
  Joiner stdout_;
  Joiner stderr_;
};

// {"log":"INFO: ...\n","stream":"stdout","time":"2026-11-27T10:00:00.000000000Z"}
// A record whose log does not end in a newline is a partial (Docker splits at 16 KiB).
class DockerDecoder final : public EnvelopeDecoder {
 public:
  explicit DockerDecoder(std::size_t max_line_bytes) : joiners_(max_line_bytes) {}

  Status Decode(std::string_view record, std::string_view& line) override {
    simdjson::dom::object object;
    if (!json_.ParseObject(record, object)) return Status::kInvalid;
    std::string_view log;
    std::string_view stream = "stdout";  // records of old runtimes have no stream
    bool found = false;
    for (const simdjson::dom::key_value_pair field : object) {
      if (field.key == "log") {
        if (field.value.get_string().get(log)) return Status::kInvalid;
        found = true;
      } else if (field.key == "stream") {
        if (field.value.get_string().get(stream)) return Status::kInvalid;
      }
    }
    if (!found) return Status::kInvalid;
    const bool complete = !log.empty() && log.back() == '\n';
    if (complete) log.remove_suffix(1);
    if (complete && !log.empty() && log.back() == '\r') log.remove_suffix(1);
    return joiners_.of(stream == "stderr").Add(log, complete, line);
  }
  bool HoldsPartial() const override { return joiners_.holding(); }

 private:
  JsonLine json_;
  StreamJoiners joiners_;
};

// 2026-11-27T10:00:00.123456789Z stdout F the line
// The tag is P for a partial record, F for the last one (further tags follow a ':').
class CriDecoder final : public EnvelopeDecoder {
 public:
  explicit CriDecoder(std::size_t max_line_bytes) : joiners_(max_line_bytes) {}

  Status Decode(std::string_view record, std::string_view& line) override {
    const std::size_t time_end = record.find(' ');
    if (time_end == std::string_view::npos || time_end == 0) return Status::kInvalid;
    const std::size_t stream_end = record.find(' ', time_end + 1);
    if (stream_end == std::string_view::npos) return Status::kInvalid;
    const std::string_view stream = record.substr(time_end + 1, stream_end - time_end - 1);
    if (stream != "stdout" && stream != "stderr") return Status::kInvalid;
    std::size_t tag_end = record.find(' ', stream_end + 1);
    if (tag_end == std::string_view::npos) tag_end = record.size();  // an empty line
    const std::string_view tags = record.substr(stream_end + 1, tag_end - stream_end - 1);
    const std::string_view tag = tags.substr(0, tags.find(':'));
    if (tag != "P" && tag != "F") return Status::kInvalid;
    const std::string_view content =
        tag_end < record.size() ? record.substr(tag_end + 1) : std::string_view();
    return joiners_.of(stream == "stderr").Add(content, tag == "F", line);
  }
  bool HoldsPartial() const override { return joiners_.holding(); }

 private:
  StreamJoiners joiners_;
};

}  // namespace

std::unique_ptr<EnvelopeDecoder> MakeEnvelopeDecoder(Envelope envelope,
                                                     std::size_t max_line_bytes) {
  switch (envelope) {
    case Envelope::kDocker:
      return std::make_unique<DockerDecoder>(max_line_bytes);
    case Envelope::kCri:
      return std::make_unique<CriDecoder>(max_line_bytes);
    default:
      return nullptr;
  }
}

}  // namespace fastapi_exporter::access_log
