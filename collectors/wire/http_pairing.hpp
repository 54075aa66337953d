// HTTP/1.x requests and responses of one TCP connection -> (method, target, status, start,
// end), with Debian's libhttp-parser (nodejs/http-parser 2.9) reading both directions.
//
// Keep-alive and pipelining: requests wait in order and each final response answers the
// oldest. 1xx responses (100 Continue) are interim and answer nothing; 101 ends HTTP on the
// connection (an upgrade: nothing more is read). Responses to HEAD have no body, whatever
// their Content-Length says. Start is the capture time of the segment holding the request's
// first byte, end that of the segment holding the response's last byte, as nginx's
// $request_time.
//
// Bytes the snap length cut are body bytes the parser does not need to see: while it is
// inside a body of known length (Content-Length, or the current chunk of a chunked body) or a
// body that ends with the connection, that many zero bytes are fed in their place. Cut bytes
// anywhere else (a head, a chunk-size line) make the stream unreadable (DesyncReason::kCut);
// only the CRLF that must end a chunk's data is taken as read when cut with it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/wire/tcp_reassembly.hpp"

namespace fastapi_exporter::wire {

struct WireRequest {
  std::string_view method;  // "GET", as http-parser names it
  std::string_view target;  // as sent: path and query
  int status = 0;
  int64_t start_us = 0;
  int64_t end_us = 0;
};

enum class Unanswered : uint8_t {
  kClosed,   // the connection closed or reset before the response ended
  kDesync,   // dropped when the connection lost sync
  kTimeout,  // waited longer than the request timeout
  kIdle,     // the connection expired
};
inline constexpr std::size_t kUnansweredCount = 4;
const char* UnansweredName(Unanswered reason);  // "closed", ...

// Where a service's requests go. Called on the capture thread.
class RequestSink {
 public:
  virtual ~RequestSink() = default;
  virtual void OnRequest(const WireRequest& request) = 0;
  virtual void OnUnanswered(Unanswered reason, uint64_t requests) = 0;
  // A stream http-parser refused (direction: which side sent it).
  virtual void OnUnparsable(Direction direction) = 0;
};

struct PairingOptions {
  int64_t request_timeout_us = 300'000'000;
  std::size_t max_pipelined = 32;       // requests waiting for responses, per connection
  std::size_t max_target_bytes = 8192;  // a longer request target makes the stream unparsable
};

// Makes a StreamConsumer per connection, all feeding `sink` (which must outlive them).
TcpReassembler::ConsumerFactory HttpPairingFactory(RequestSink& sink, PairingOptions options);

// Whether bytes start an HTTP/1.x request line ("GET /", a method token then a space).
bool StartsRequestLine(const uint8_t* data, uint32_t size);

}  // namespace fastapi_exporter::wire
