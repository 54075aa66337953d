// One captured frame -> the TCP segment it carries.
//
// Link layers: Ethernet (DLT_EN10MB, one 802.1Q tag), Linux cooked v1 and v2 (DLT_LINUX_SLL,
// DLT_LINUX_SLL2: what libpcap gives on the "any" device) and raw IP (DLT_RAW). IPv4 without
// fragments, and IPv6 whose next header is TCP (no extension headers); anything else is not
// ours. Formats: RFC 791 (IPv4), RFC 8200 (IPv6), RFC 9293 (TCP), and
// https://www.tcpdump.org/linktypes.html for the link-layer headers.
#pragma once

#include <array>
#include <cstdint>

namespace fastapi_exporter::wire {

enum TcpFlags : uint8_t { kFin = 0x01, kSyn = 0x02, kRst = 0x04, kAck = 0x10 };

struct TcpSegment {
  std::array<uint8_t, 16> src{}, dst{};  // IPv4 as ::ffff:a.b.c.d
  uint16_t src_port = 0, dst_port = 0;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0;  // TcpFlags
  // The payload as captured: `captured` bytes at `payload`, the first of `length` bytes that
  // the segment carried (the IP length says how many; a snap length cuts the rest).
  const uint8_t* payload = nullptr;
  uint32_t captured = 0;
  uint32_t length = 0;
  int64_t time_us = 0;  // capture time, microseconds since the epoch
};

enum class Decoded : uint8_t {
  kTcp,
  kNotTcp,     // another protocol, an IP fragment, IPv6 extension headers
  kMalformed,  // headers cut by the snap length, or lengths that do not add up
};

// Views into `frame`: valid while the frame is.
Decoded DecodeFrame(int linktype, const uint8_t* frame, uint32_t caplen, TcpSegment& out);

}  // namespace fastapi_exporter::wire
