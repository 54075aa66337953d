#include "collectors/wire/http_pairing.hpp"

#include <http_parser.h>

#include <algorithm>
#include <climits>
#include <cstring>

namespace fastapi_exporter::wire {

const char* UnansweredName(Unanswered reason) {
  switch (reason) {
    case Unanswered::kClosed:
      return "closed";
    case Unanswered::kDesync:
      return "desync";
    case Unanswered::kTimeout:
      return "timeout";
    case Unanswered::kIdle:
      return "idle";
  }
  return "unknown";
}

bool StartsRequestLine(const uint8_t* data, uint32_t size) {
  // The methods http-parser knows, as it spells them (enum http_method runs from 0 to
  // HTTP_SOURCE): anything else it would refuse anyway.
  for (int method = 0; method <= HTTP_SOURCE; ++method) {
    const char* name = http_method_str(http_method(method));
    const std::size_t length = std::strlen(name);
    if (size > length && std::memcmp(data, name, length) == 0 && data[length] == ' ') return true;
  }
  return false;
}

namespace {

constexpr uint8_t kNoMethod = 0xff;

class HttpPairing final : public StreamConsumer {
 public:
  HttpPairing(RequestSink& sink, const PairingOptions& options) : sink_(sink), options_(options) {
    Reset();
  }

  bool OnData(Direction direction, const uint8_t* data, uint32_t captured, uint32_t length,
              int64_t time_us, DesyncReason* reason) override {
    if (upgraded_) return true;
    now_us_ = time_us;
    const std::size_t side = std::size_t(direction);
    http_parser& parser = parsers_[side];
    while (captured > 0) {
      const std::size_t parsed = http_parser_execute(&parser, &Settings(direction),
                                                     reinterpret_cast<const char*>(data), captured);
      if (HTTP_PARSER_ERRNO(&parser) != HPE_OK) return Fail(direction, reason);
      if (upgraded_) return true;
      if (parsed == captured) break;
      if (!parser.upgrade || direction != Direction::kToServer) return Fail(direction, reason);
      // A request asking for an upgrade: what follows is a request again unless the server
      // answers 101, after which nothing is read.
      http_parser_init(&parser, HTTP_REQUEST);
      parser.data = this;
      data += parsed;
      captured -= uint32_t(parsed);
    }
    if (parser.upgrade && direction == Direction::kToServer) {
      http_parser_init(&parser, HTTP_REQUEST);
      parser.data = this;
    }
    uint64_t missing = length - std::min(length, captured);
    if (missing == 0) return true;
    const uint64_t room = body_[side] == Body::kNone ? 0 : parser.content_length;
    // A chunk's data is followed by the CRLF that the grammar requires (RFC 9112 7.1): h11
    // writes it with the data, so it is cut with it.
    const uint64_t crlf =
        body_[side] == Body::kChunkData && room > 0 && missing > room ? missing - room : 0;
    if (missing > room + (crlf <= 2 ? crlf : 0)) {
      *reason = DesyncReason::kCut;
      return false;
    }
    // Body bytes the capture did not keep: http-parser only counts them.
    static const char kZeros[65536] = {};
    for (uint64_t left = missing - crlf; left > 0;) {
      const std::size_t piece = std::size_t(std::min<uint64_t>(left, sizeof kZeros));
      http_parser_execute(&parser, &Settings(direction), kZeros, piece);
      if (HTTP_PARSER_ERRNO(&parser) != HPE_OK) return Fail(direction, reason);
      left -= piece;
    }
    if (crlf > 0) {
      http_parser_execute(&parser, &Settings(direction), "\r\n", std::size_t(crlf));
      if (HTTP_PARSER_ERRNO(&parser) != HPE_OK) return Fail(direction, reason);
    }
    return true;
  }

  void OnEnd(Direction direction, int64_t time_us) override {
    if (direction != Direction::kToClient || upgraded_) return;
    now_us_ = time_us;
    // A body that ends with the connection ends here.
    http_parser_execute(&parsers_[1], &Settings(direction), nullptr, 0);
  }

  void OnDesync(DesyncReason /*reason*/) override {
    Drop(Unanswered::kDesync);
    Reset();
  }

  bool StartsMessage(const uint8_t* data, uint32_t captured) const override {
    return StartsRequestLine(data, captured);
  }

  void OnClose(CloseReason reason) override {
    Drop(reason == CloseReason::kIdle ? Unanswered::kIdle : Unanswered::kClosed);
  }

  bool OnTick(int64_t now_us) override {
    if (count_ == 0 || now_us - pending_[0].start_us <= options_.request_timeout_us) return true;
    Drop(Unanswered::kTimeout);
    return false;
  }

 private:
  enum class Body : uint8_t { kNone, kIdentity, kChunkData };
  struct Pending {
    std::string target;  // kept with its capacity when the slot is reused
    uint8_t method = kNoMethod;
    int64_t start_us = 0;
  };

  static HttpPairing& Of(http_parser* parser) { return *static_cast<HttpPairing*>(parser->data); }

  static const http_parser_settings& Settings(Direction direction) {
    static const http_parser_settings kRequest = [] {
      http_parser_settings settings;
      http_parser_settings_init(&settings);
      settings.on_message_begin = [](http_parser* p) { return Of(p).RequestBegin(); };
      settings.on_url = [](http_parser* p, const char* at, std::size_t size) {
        return Of(p).RequestTarget(at, size);
      };
      settings.on_headers_complete = [](http_parser* p) { return Of(p).RequestHead(); };
      settings.on_message_complete = [](http_parser* p) {
        Of(p).body_[0] = Body::kNone;
        return 0;
      };
      settings.on_chunk_header = [](http_parser* p) { return Of(p).ChunkHeader(0); };
      settings.on_chunk_complete = [](http_parser* p) { return Of(p).ChunkHeader(0); };
      return settings;
    }();
    static const http_parser_settings kResponse = [] {
      http_parser_settings settings;
      http_parser_settings_init(&settings);
      settings.on_headers_complete = [](http_parser* p) { return Of(p).ResponseHead(); };
      settings.on_message_complete = [](http_parser* p) { return Of(p).ResponseEnd(); };
      settings.on_chunk_header = [](http_parser* p) { return Of(p).ChunkHeader(1); };
      settings.on_chunk_complete = [](http_parser* p) { return Of(p).ChunkHeader(1); };
      return settings;
    }();
    return direction == Direction::kToServer ? kRequest : kResponse;
  }

  int RequestBegin() {
    if (count_ >= options_.max_pipelined) return -1;
    if (count_ == pending_.size()) pending_.emplace_back();
    Pending& pending = pending_[count_];
    pending.target.clear();
    pending.method = kNoMethod;
    pending.start_us = now_us_;
    writing_ = int(count_);
    ++count_;
    return 0;
  }

  int RequestTarget(const char* at, std::size_t size) {
    if (writing_ < 0) return 0;
    std::string& target = pending_[std::size_t(writing_)].target;
    if (target.size() + size > options_.max_target_bytes) return -1;
    target.append(at, size);
    return 0;
  }

  int RequestHead() {
    http_parser& parser = parsers_[0];
    if (writing_ >= 0) pending_[std::size_t(writing_)].method = uint8_t(parser.method);
    body_[0] = (parser.flags & F_CHUNKED) ? Body::kNone : Body::kIdentity;
    return 0;
  }

  // Called at a chunk's size line and at its end: inside its data, content_length is what
  // is left of it.
  int ChunkHeader(std::size_t side) {
    body_[side] = parsers_[side].content_length > 0 ? Body::kChunkData : Body::kNone;
    return 0;
  }

  int ResponseHead() {
    if (count_ == 0) return -1;  // a response to no request
    http_parser& parser = parsers_[1];
    const unsigned status = parser.status_code;
    if (status / 100 == 1) return 0;  // interim: http-parser reads no body
    if (pending_[0].method == HTTP_HEAD) {
      body_[1] = Body::kNone;
      return 1;  // tells http-parser there is no body
    }
    body_[1] = (parser.flags & F_CHUNKED) ? Body::kNone : Body::kIdentity;
    return 0;
  }

  int ResponseEnd() {
    body_[1] = Body::kNone;
    const unsigned status = parsers_[1].status_code;
    if (status / 100 == 1 && status != 101) return 0;
    if (count_ == 0) return -1;
    const Pending& pending = pending_[0];
    WireRequest request;
    request.method = pending.method == kNoMethod ? std::string_view("UNKNOWN")
                                                 : http_method_str(http_method(pending.method));
    request.target = pending.target;
    request.status = int(status);
    request.start_us = pending.start_us;
    request.end_us = now_us_;
    sink_.OnRequest(request);
    // The answered slot moves behind the waiting ones, keeping its string's capacity.
    std::rotate(pending_.begin(), pending_.begin() + 1, pending_.begin() + std::ptrdiff_t(count_));
    --count_;
    --writing_;
    if (status == 101) upgraded_ = true;
    return 0;
  }

  bool Fail(Direction direction, DesyncReason* reason) {
    sink_.OnUnparsable(direction);
    *reason = DesyncReason::kUnparsable;
    return false;
  }

  void Drop(Unanswered reason) {
    if (count_ > 0) sink_.OnUnanswered(reason, count_);
    count_ = 0;
    writing_ = -1;
  }

  void Reset() {
    http_parser_init(&parsers_[0], HTTP_REQUEST);
    http_parser_init(&parsers_[1], HTTP_RESPONSE);
    parsers_[0].data = parsers_[1].data = this;
    body_[0] = body_[1] = Body::kNone;
    upgraded_ = false;
    count_ = 0;
    writing_ = -1;
  }

  RequestSink& sink_;
  const PairingOptions options_;
  http_parser parsers_[2];  // requests, responses
  Body body_[2] = {Body::kNone, Body::kNone};
  bool upgraded_ = false;
  int64_t now_us_ = 0;
  std::vector<Pending> pending_;  // [0, count_) wait for responses, oldest first
  std::size_t count_ = 0;
  int writing_ = -1;  // the slot the request parser fills, -1: none (or answered already)
};

}  // namespace

TcpReassembler::ConsumerFactory HttpPairingFactory(RequestSink& sink, PairingOptions options) {
  return [&sink, options]() -> std::unique_ptr<StreamConsumer> {
    return std::make_unique<HttpPairing>(sink, options);
  };
}

}  // namespace fastapi_exporter::wire
