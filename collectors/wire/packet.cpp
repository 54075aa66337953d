#include "collectors/wire/packet.hpp"

#include <pcap/dlt.h>

#include <cstring>

namespace fastapi_exporter::wire {
namespace {

uint16_t Be16(const uint8_t* p) {
  return uint16_t(p[0] << 8 | p[1]);
}
uint32_t Be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

constexpr uint16_t kEtherIpv4 = 0x0800;
constexpr uint16_t kEtherIpv6 = 0x86dd;
constexpr uint16_t kEtherVlan = 0x8100;
constexpr uint8_t kIpProtoTcp = 6;

// `ip_payload` bytes of TCP at p (caplen of them captured).
Decoded DecodeTcp(const uint8_t* p, uint32_t caplen, uint32_t ip_payload, TcpSegment& out) {
  if (caplen < 20 || ip_payload < 20) return Decoded::kMalformed;
  const uint32_t header = uint32_t(p[12] >> 4) * 4;
  if (header < 20 || header > ip_payload) return Decoded::kMalformed;
  if (caplen < header) return Decoded::kMalformed;
  out.src_port = Be16(p);
  out.dst_port = Be16(p + 2);
  out.seq = Be32(p + 4);
  out.ack = Be32(p + 8);
  out.flags = p[13] & (kFin | kSyn | kRst | kAck);
  out.payload = p + header;
  out.length = ip_payload - header;
  out.captured = caplen - header < out.length ? caplen - header : out.length;
  return Decoded::kTcp;
}

Decoded DecodeIp(uint16_t ethertype, const uint8_t* p, uint32_t caplen, TcpSegment& out) {
  if (ethertype == kEtherIpv4) {
    if (caplen < 20 || (p[0] >> 4) != 4) return Decoded::kMalformed;
    const uint32_t header = uint32_t(p[0] & 0xf) * 4;
    const uint32_t total = Be16(p + 2);
    if (header < 20 || total < header || caplen < header) return Decoded::kMalformed;
    if (p[9] != kIpProtoTcp) return Decoded::kNotTcp;
    if ((Be16(p + 6) & 0x3fff) != 0) return Decoded::kNotTcp;  // a fragment (MF or offset)
    out.src.fill(0);
    out.dst.fill(0);
    out.src[10] = out.src[11] = out.dst[10] = out.dst[11] = 0xff;
    std::memcpy(out.src.data() + 12, p + 12, 4);
    std::memcpy(out.dst.data() + 12, p + 16, 4);
    return DecodeTcp(p + header, caplen - header, total - header, out);
  }
  if (ethertype == kEtherIpv6) {
    if (caplen < 40 || (p[0] >> 4) != 6) return Decoded::kMalformed;
    if (p[6] != kIpProtoTcp) return Decoded::kNotTcp;
    std::memcpy(out.src.data(), p + 8, 16);
    std::memcpy(out.dst.data(), p + 24, 16);
    return DecodeTcp(p + 40, caplen - 40, Be16(p + 4), out);
  }
  return Decoded::kNotTcp;
}

}  // namespace

Decoded DecodeFrame(int linktype, const uint8_t* frame, uint32_t caplen, TcpSegment& out) {
  switch (linktype) {
    case DLT_EN10MB: {
      if (caplen < 14) return Decoded::kMalformed;
      uint16_t type = Be16(frame + 12);
      uint32_t offset = 14;
      if (type == kEtherVlan) {
        if (caplen < 18) return Decoded::kMalformed;
        type = Be16(frame + 16);
        offset = 18;
      }
      return DecodeIp(type, frame + offset, caplen - offset, out);
    }
    case DLT_LINUX_SLL:
      if (caplen < 16) return Decoded::kMalformed;
      return DecodeIp(Be16(frame + 14), frame + 16, caplen - 16, out);
    case DLT_LINUX_SLL2:
      if (caplen < 20) return Decoded::kMalformed;
      return DecodeIp(Be16(frame), frame + 20, caplen - 20, out);
    case DLT_RAW:
    case 101:  // LINKTYPE_RAW, as some files spell DLT_RAW
      if (caplen < 1) return Decoded::kMalformed;
      return DecodeIp((frame[0] >> 4) == 6 ? kEtherIpv6 : kEtherIpv4, frame, caplen, out);
    default:
      return Decoded::kNotTcp;
  }
}

}  // namespace fastapi_exporter::wire
