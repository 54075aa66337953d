// A libpcap capture of one interface's TCP traffic to and from a set of ports.
//
// libpcap on Linux reads a TPACKET_V3 ring (memory-mapped blocks the kernel fills): with
// immediate mode off, a block is handed over when full or after the buffer timeout, so an
// idle exporter wakes up at most every timeout and a busy one once per block. The BPF filter
// runs in the kernel: packets of other ports are never copied. Only `snap_length` bytes of
// each packet are kept: headers and the HTTP head, not bodies.
//
// Opening needs CAP_NET_RAW (and CAP_NET_ADMIN on some interfaces); Open says which is
// missing when it fails for lack of it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "collectors/wire/packet.hpp"

typedef struct pcap pcap_t;

namespace fastapi_exporter::wire {

struct CaptureOptions {
  std::string interface = "any";
  int snap_length = 2048;
  int buffer_bytes = 8 << 20;  // the ring
  int timeout_ms = 100;        // a block is handed over at the latest after this
};

class Capture {
 public:
  // nullptr and `error` set when the capture cannot be opened.
  static std::unique_ptr<Capture> Open(const CaptureOptions& options, std::string& error);
  ~Capture();
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;

  // Installs the filter for these ports (none: nothing is captured).
  bool SetPorts(const std::vector<uint16_t>& ports, std::string& error);

  // A descriptor that polls readable when packets are ready.
  int fd() const { return fd_; }

  struct Counts {
    uint64_t packets = 0;    // handed to us
    uint64_t not_tcp = 0;    // not TCP over IPv4/IPv6 (an IP fragment, say)
    uint64_t malformed = 0;  // headers cut or inconsistent
  };
  // Reads every packet ready without blocking; each TCP segment goes to `handle`.
  // False on a capture error (in `error`).
  bool Dispatch(const std::function<void(const TcpSegment&)>& handle, Counts& counts,
                std::string& error);

  // The kernel's drops (ring full) and the interface's, since the capture opened.
  bool Drops(uint64_t& dropped, std::string& error);

 private:
  explicit Capture(pcap_t* pcap);
  pcap_t* pcap_;
  int fd_ = -1;
  int linktype_ = 0;
};

}  // namespace fastapi_exporter::wire
