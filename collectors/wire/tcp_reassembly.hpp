// In-order TCP byte streams, per connection and direction, from captured segments.
//
// Bytes are delivered in sequence order: retransmitted bytes are trimmed, segments that
// arrive ahead of a hole wait (a few, bounded). Where the order cannot be known -- the
// capture started in the middle of a connection, a hole that will never be filled (the
// receiver acknowledged bytes the capture never saw, or too many segments wait), or the
// consumer could not parse what it got -- the connection is desynchronised: counted by
// reason, everything in hand dropped, and no byte is delivered until a client segment starts
// a request at a moment when the server has nothing unacknowledged (the client's ACK equals
// the end of what the server sent). Nothing is guessed across a hole.
//
// A segment's payload may be cut by the capture's snap length: the consumer gets the
// captured bytes and the number of bytes the segment really carried, from the IP length.
//
// Single-threaded; memory is bounded by max_connections and the per-direction queue caps.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "collectors/wire/packet.hpp"

namespace fastapi_exporter::wire {

enum class Direction : uint8_t { kToServer = 0, kToClient = 1 };

enum class DesyncReason : uint8_t {
  kMidStream,   // first seen without its handshake (capture started, connection expired)
  kGap,         // bytes missing from the capture
  kUnparsable,  // the consumer could not read the stream
  kCut,         // bytes cut by the snap length where they were needed
  kTimeout,     // a request waited longer than the request timeout
};
inline constexpr std::size_t kDesyncReasonCount = 5;
const char* DesyncReasonName(DesyncReason reason);  // "mid_stream", ...

enum class CloseReason : uint8_t { kFin, kReset, kIdle };

// What a connection's bytes go to. Created per connection, destroyed with it.
class StreamConsumer {
 public:
  virtual ~StreamConsumer() = default;
  // `captured` bytes at `data`, then `length - captured` bytes the capture did not keep.
  // Returns false when the stream cannot be read on (it is then desynchronised, kUnparsable
  // or kCut as the consumer says in *reason).
  virtual bool OnData(Direction direction, const uint8_t* data, uint32_t captured, uint32_t length,
                      int64_t time_us, DesyncReason* reason) = 0;
  // The direction ended (FIN), at time_us.
  virtual void OnEnd(Direction direction, int64_t time_us) = 0;
  // Everything in hand is void; the next bytes start a new message in both directions.
  virtual void OnDesync(DesyncReason reason) = 0;
  // Whether a client segment starting with these bytes starts a request: a resync point.
  virtual bool StartsMessage(const uint8_t* data, uint32_t captured) const = 0;
  virtual void OnClose(CloseReason reason) = 0;
  // Called for every connection by Expire; false desynchronises it (kTimeout).
  virtual bool OnTick(int64_t now_us) = 0;
};

struct ReassemblyOptions {
  std::size_t max_connections = 65536;
  std::size_t max_queued_segments = 32;  // per direction, waiting behind a hole
  int64_t idle_timeout_us = 600'000'000;
  // A connection that never carried a byte (a handshake only: a SYN flood, a port scan)
  // goes sooner, so that it cannot hold the table for long.
  int64_t handshake_timeout_us = 30'000'000;
};

struct ReassemblyStats {
  uint64_t segments = 0;  // TCP segments of the server ports handled
  uint64_t connections_opened = 0;
  uint64_t connections_refused = 0;  // not tracked: the table was full
  uint64_t connections_expired = 0;  // idle for idle_timeout (handshake_timeout without data)
  uint64_t retransmitted = 0;        // segments whose bytes had all been delivered already
  uint64_t out_of_order = 0;         // segments that waited behind a hole
  std::array<uint64_t, kDesyncReasonCount> desyncs{};
};

class TcpReassembler {
 public:
  using ConsumerFactory = std::function<std::unique_ptr<StreamConsumer>()>;

  TcpReassembler(const std::vector<uint16_t>& server_ports, ReassemblyOptions options,
                 ConsumerFactory factory);
  ~TcpReassembler();

  // Segments to or from another port than the server ports are ignored. Connections whose
  // server port is no longer one are kept until they close or expire.
  void SetServerPorts(const std::vector<uint16_t>& server_ports);

  void Handle(const TcpSegment& segment);
  // Expires connections idle since before now - idle_timeout, and ticks the others.
  void Expire(int64_t now_us);

  std::size_t connections() const { return table_.size(); }
  const ReassemblyStats& stats() const { return stats_; }

 private:
  struct Key {
    std::array<uint8_t, 16> client, server;
    uint16_t client_port, server_port;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& key) const;
  };
  struct Queued {
    uint32_t seq, length;
    bool fin;
    int64_t time_us;
    std::vector<uint8_t> bytes;  // the captured ones
  };
  struct Half {
    bool known = false;     // next is set
    bool ended = false;     // FIN delivered
    bool fin_seen = false;  // a FIN seen while the connection was out of step
    uint32_t next = 0;      // the next sequence number to deliver
    bool seen = false;      // end_seen is set
    uint32_t end_seen = 0;  // the highest sequence end seen, delivered or not
    std::vector<Queued> queue;
  };
  struct Connection {
    std::unique_ptr<StreamConsumer> consumer;
    std::array<Half, 2> halves;
    bool desynced = false;
    bool carried_data = false;  // a segment with payload was seen
    int64_t last_us = 0;
  };

  void Deliver(Connection& connection, Direction direction, uint32_t seq, const uint8_t* data,
               uint32_t captured, uint32_t length, bool fin, int64_t time_us);
  void DrainQueue(Connection& connection, Direction direction);
  void Desync(Connection& connection, DesyncReason reason);
  bool TryResync(Connection& connection, const TcpSegment& segment);

  std::bitset<65536> ports_;
  ReassemblyOptions options_;
  ConsumerFactory factory_;
  std::unordered_map<Key, Connection, KeyHash> table_;
  ReassemblyStats stats_;
};

}  // namespace fastapi_exporter::wire
