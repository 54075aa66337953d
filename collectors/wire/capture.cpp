#include "collectors/wire/capture.hpp"

#include <pcap/pcap.h>
#include <unistd.h>

namespace fastapi_exporter::wire {
namespace {

std::string Describe(pcap_t* pcap, int status) {
  std::string text = pcap_statustostr(status);
  const char* detail = pcap_geterr(pcap);
  if (detail && *detail) text += std::string(": ") + detail;
  return text;
}

}  // namespace

Capture::Capture(pcap_t* pcap) : pcap_(pcap) {}

Capture::~Capture() {
  pcap_close(pcap_);
}

std::unique_ptr<Capture> Capture::Open(const CaptureOptions& options, std::string& error) {
  char message[PCAP_ERRBUF_SIZE] = {};
  pcap_t* pcap = pcap_create(options.interface.c_str(), message);
  if (!pcap) {
    error = "cannot capture on interface '" + options.interface + "': " + message;
    return nullptr;
  }
  pcap_set_snaplen(pcap, options.snap_length);
  pcap_set_promisc(pcap, 0);
  pcap_set_timeout(pcap, options.timeout_ms);
  pcap_set_buffer_size(pcap, options.buffer_bytes);
  pcap_set_immediate_mode(pcap, 0);
  const int status = pcap_activate(pcap);
  if (status == PCAP_ERROR_PERM_DENIED || status == PCAP_ERROR_PROMISC_PERM_DENIED) {
    error = "cannot capture on interface '" + options.interface +
            "': permission denied: the wire source needs CAP_NET_RAW (and CAP_NET_ADMIN for "
            "some interfaces); run as root, or grant them with the systemd drop-in of "
            "docs/wire.md (" +
            Describe(pcap, status) + ")";
    pcap_close(pcap);
    return nullptr;
  }
  if (status < 0) {
    error = "cannot capture on interface '" + options.interface + "': " + Describe(pcap, status);
    pcap_close(pcap);
    return nullptr;
  }
  if (pcap_setnonblock(pcap, 1, message) < 0) {
    error = std::string("cannot make the capture non-blocking: ") + message;
    pcap_close(pcap);
    return nullptr;
  }
  std::unique_ptr<Capture> capture(new Capture(pcap));
  capture->fd_ = pcap_get_selectable_fd(pcap);
  capture->linktype_ = pcap_datalink(pcap);
  if (!capture->SetPorts({}, error)) return nullptr;
  return capture;
}

bool Capture::SetPorts(const std::vector<uint16_t>& ports, std::string& error) {
  // "less 1" matches no packet: a capture with no port yet stays open and silent.
  std::string filter = ports.empty() ? "less 1" : "tcp and (";
  for (std::size_t i = 0; i < ports.size(); ++i) {
    filter += (i ? " or port " : "port ") + std::to_string(ports[i]);
  }
  if (!ports.empty()) filter += ")";
  bpf_program program;
  if (pcap_compile(pcap_, &program, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) < 0) {
    error = "cannot compile the filter '" + filter + "': " + pcap_geterr(pcap_);
    return false;
  }
  const int status = pcap_setfilter(pcap_, &program);
  pcap_freecode(&program);
  if (status < 0) {
    error = "cannot set the filter '" + filter + "': " + pcap_geterr(pcap_);
    return false;
  }
  return true;
}

bool Capture::Dispatch(const std::function<void(const TcpSegment&)>& handle, Counts& counts,
                       std::string& error) {
  struct Context {
    const std::function<void(const TcpSegment&)>* handle;
    Counts* counts;
    int linktype;
  } context{&handle, &counts, linktype_};
  const int status = pcap_dispatch(
      pcap_, -1,
      [](u_char* user, const pcap_pkthdr* header, const u_char* bytes) {
        auto& context = *reinterpret_cast<Context*>(user);
        ++context.counts->packets;
        TcpSegment segment;
        switch (DecodeFrame(context.linktype, bytes, header->caplen, segment)) {
          case Decoded::kTcp:
            segment.time_us = int64_t(header->ts.tv_sec) * 1000000 + header->ts.tv_usec;
            (*context.handle)(segment);
            break;
          case Decoded::kNotTcp:
            ++context.counts->not_tcp;
            break;
          case Decoded::kMalformed:
            ++context.counts->malformed;
            break;
        }
      },
      reinterpret_cast<u_char*>(&context));
  if (status == PCAP_ERROR) {
    error = pcap_geterr(pcap_);
    return false;
  }
  return true;
}

bool Capture::Drops(uint64_t& dropped, std::string& error) {
  pcap_stat stats{};
  if (pcap_stats(pcap_, &stats) < 0) {
    error = pcap_geterr(pcap_);
    return false;
  }
  dropped = uint64_t(stats.ps_drop) + stats.ps_ifdrop;
  return true;
}

}  // namespace fastapi_exporter::wire
