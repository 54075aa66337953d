#include "collectors/wire/tcp_reassembly.hpp"

#include <algorithm>
#include <cstring>

namespace fastapi_exporter::wire {
namespace {

// RFC 9293's modular comparisons.
bool SeqAfter(uint32_t a, uint32_t b) {
  return int32_t(a - b) > 0;
}
bool SeqAtOrAfter(uint32_t a, uint32_t b) {
  return int32_t(a - b) >= 0;
}

}  // namespace

const char* DesyncReasonName(DesyncReason reason) {
  switch (reason) {
    case DesyncReason::kMidStream:
      return "mid_stream";
    case DesyncReason::kGap:
      return "gap";
    case DesyncReason::kUnparsable:
      return "unparsable";
    case DesyncReason::kCut:
      return "snap_length";
    case DesyncReason::kTimeout:
      return "request_timeout";
  }
  return "unknown";
}

std::size_t TcpReassembler::KeyHash::operator()(const Key& key) const {
  // FNV-1a over the tuple: cheap, and the client port alone spreads loopback traffic.
  uint64_t hash = 1469598103934665603ull;
  auto mix = [&hash](const uint8_t* bytes, std::size_t size) {
    for (std::size_t i = 0; i < size; ++i) hash = (hash ^ bytes[i]) * 1099511628211ull;
  };
  mix(key.client.data(), 16);
  mix(key.server.data(), 16);
  const uint8_t ports[4] = {uint8_t(key.client_port >> 8), uint8_t(key.client_port),
                            uint8_t(key.server_port >> 8), uint8_t(key.server_port)};
  mix(ports, 4);
  return std::size_t(hash);
}

TcpReassembler::TcpReassembler(const std::vector<uint16_t>& server_ports, ReassemblyOptions options,
                               ConsumerFactory factory)
    : options_(options), factory_(std::move(factory)) {
  SetServerPorts(server_ports);
}

TcpReassembler::~TcpReassembler() = default;

void TcpReassembler::SetServerPorts(const std::vector<uint16_t>& server_ports) {
  ports_.reset();
  for (const uint16_t port : server_ports) ports_.set(port);
}

void TcpReassembler::Handle(const TcpSegment& segment) {
  Direction direction;
  Key key;
  if (ports_.test(segment.dst_port)) {
    direction = Direction::kToServer;
    key = {segment.src, segment.dst, segment.src_port, segment.dst_port};
  } else if (ports_.test(segment.src_port)) {
    direction = Direction::kToClient;
    key = {segment.dst, segment.src, segment.dst_port, segment.src_port};
  } else {
    return;
  }
  ++stats_.segments;
  const bool syn = segment.flags & kSyn;
  const bool opening = syn && !(segment.flags & kAck) && direction == Direction::kToServer;

  auto it = table_.find(key);
  if (it != table_.end() && opening) {
    Half& client = it->second.halves[0];
    if (client.known && client.next == segment.seq + 1) return;  // the SYN, retransmitted
    // The same ports again: the old connection is gone.
    it->second.consumer->OnClose(CloseReason::kFin);
    table_.erase(it);
    it = table_.end();
  }
  if (it == table_.end()) {
    if ((segment.flags & kRst) || (!opening && segment.length == 0)) return;
    if (table_.size() >= options_.max_connections) {
      ++stats_.connections_refused;
      return;
    }
    Connection connection;
    connection.consumer = factory_();
    if (opening) {
      connection.halves[0].known = true;
      connection.halves[0].next = segment.seq + 1;
    } else {
      connection.desynced = true;
      ++stats_.desyncs[std::size_t(DesyncReason::kMidStream)];
    }
    it = table_.emplace(key, std::move(connection)).first;
    ++stats_.connections_opened;
    if (opening) {
      it->second.last_us = segment.time_us;
      return;
    }
  }
  Connection& connection = it->second;
  connection.last_us = segment.time_us;
  if (segment.flags & kRst) {
    connection.consumer->OnClose(CloseReason::kReset);
    table_.erase(it);
    return;
  }
  Half& half = connection.halves[std::size_t(direction)];
  Half& other = connection.halves[1 - std::size_t(direction)];
  const bool fin = segment.flags & kFin;
  if (syn) {  // the server's SYN-ACK
    if (direction == Direction::kToClient && !connection.desynced) {
      half.known = true;
      half.next = segment.seq + 1;
    }
    return;
  }
  const uint32_t end = segment.seq + segment.length + (fin ? 1 : 0);
  if (!half.seen || SeqAfter(end, half.end_seen)) half.end_seen = end;
  half.seen = true;
  if (segment.length > 0) connection.carried_data = true;

  if (!connection.desynced && (segment.flags & kAck)) {
    if (!other.known && direction == Direction::kToServer) {
      // The handshake's SYN-ACK was not seen: the client's ACK says where the server starts.
      other.known = true;
      other.next = segment.ack;
    } else if (other.known && !other.ended && SeqAfter(segment.ack, other.next)) {
      // The receiver has bytes the capture never delivered, and will not send them again.
      Desync(connection, DesyncReason::kGap);
    }
  }
  if (connection.desynced && !TryResync(connection, segment)) {
    // Its bytes are not followed until a request starts, but its end is: with both FINs seen
    // it is closed, rather than counted open until it idles out (10 min).
    if (fin) half.fin_seen = true;
    if (connection.halves[0].fin_seen && connection.halves[1].fin_seen) {
      connection.consumer->OnClose(CloseReason::kFin);
      table_.erase(it);
    }
    return;
  }
  if (!half.known) {
    Desync(connection, DesyncReason::kGap);
    return;
  }
  Deliver(connection, direction, segment.seq, segment.payload, segment.captured, segment.length,
          fin, segment.time_us);
  if (!connection.desynced) DrainQueue(connection, direction);
  if (connection.halves[0].ended && connection.halves[1].ended) {
    connection.consumer->OnClose(CloseReason::kFin);
    table_.erase(it);
  }
}

void TcpReassembler::Deliver(Connection& connection, Direction direction, uint32_t seq,
                             const uint8_t* data, uint32_t captured, uint32_t length, bool fin,
                             int64_t time_us) {
  Half& half = connection.halves[std::size_t(direction)];
  if (half.ended) return;
  const int32_t offset = int32_t(seq - half.next);
  if (offset > 0) {
    if (half.queue.size() >= options_.max_queued_segments) {
      Desync(connection, DesyncReason::kGap);
      return;
    }
    ++stats_.out_of_order;
    half.queue.push_back(Queued{seq, length, fin, time_us, {data, data + captured}});
    return;
  }
  if (offset < 0) {
    const uint32_t trim = uint32_t(-int64_t(offset));
    if (trim >= length + (fin ? 1 : 0)) {
      ++stats_.retransmitted;
      return;
    }
    const uint32_t cut = std::min(trim, captured);
    data += cut;
    captured = trim >= captured ? 0 : captured - trim;
    length -= std::min(trim, length);
  }
  if (length > 0) {
    DesyncReason reason = DesyncReason::kUnparsable;
    if (!connection.consumer->OnData(direction, data, captured, length, time_us, &reason)) {
      Desync(connection, reason);
      return;
    }
    half.next += length;
  }
  if (fin) {
    half.next += 1;
    half.ended = true;
    connection.consumer->OnEnd(direction, time_us);
  }
}

void TcpReassembler::DrainQueue(Connection& connection, Direction direction) {
  Half& half = connection.halves[std::size_t(direction)];
  for (bool found = true; found && !connection.desynced && !half.queue.empty();) {
    found = false;
    for (std::size_t i = 0; i < half.queue.size(); ++i) {
      if (!SeqAtOrAfter(half.next, half.queue[i].seq)) continue;
      Queued queued = std::move(half.queue[i]);
      half.queue.erase(half.queue.begin() + std::ptrdiff_t(i));
      Deliver(connection, direction, queued.seq, queued.bytes.data(), uint32_t(queued.bytes.size()),
              queued.length, queued.fin, queued.time_us);
      found = true;
      break;
    }
  }
}

void TcpReassembler::Desync(Connection& connection, DesyncReason reason) {
  ++stats_.desyncs[std::size_t(reason)];
  connection.desynced = true;
  for (Half& half : connection.halves) {
    half.known = false;
    half.queue.clear();
  }
  connection.consumer->OnDesync(reason);
}

bool TcpReassembler::TryResync(Connection& connection, const TcpSegment& segment) {
  if (!ports_.test(segment.dst_port) || segment.captured == 0 || !(segment.flags & kAck)) {
    return false;
  }
  if (!connection.consumer->StartsMessage(segment.payload, segment.captured)) return false;
  // The server must have nothing the client has not acknowledged, or a response may be on
  // its way whose request was never seen.
  const Half& server = connection.halves[1];
  if (server.seen && SeqAfter(server.end_seen, segment.ack)) return false;
  connection.halves[0].known = true;
  connection.halves[0].next = segment.seq;
  connection.halves[1].known = true;
  connection.halves[1].next = segment.ack;
  connection.desynced = false;
  return true;
}

void TcpReassembler::Expire(int64_t now_us) {
  for (auto it = table_.begin(); it != table_.end();) {
    Connection& connection = it->second;
    if (now_us - connection.last_us >
        (connection.carried_data ? options_.idle_timeout_us : options_.handshake_timeout_us)) {
      connection.consumer->OnClose(CloseReason::kIdle);
      ++stats_.connections_expired;
      it = table_.erase(it);
      continue;
    }
    if (!connection.consumer->OnTick(now_us)) Desync(connection, DesyncReason::kTimeout);
    ++it;
  }
}

}  // namespace fastapi_exporter::wire
