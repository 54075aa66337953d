// Reassembly and pairing from recorded packet sequences: each test writes a pcap file of
// synthesized Ethernet/IPv4/TCP frames (cut to a snap length as a capture would), reads it
// back with libpcap and checks the exact requests that come out.
#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "collectors/wire/http_pairing.hpp"
#include "collectors/wire/listening_ports.hpp"
#include "collectors/wire/packet.hpp"
#include "collectors/wire/tcp_reassembly.hpp"
#include "config/config.hpp"

namespace fastapi_exporter::wire {
namespace {

constexpr uint16_t kServerPort = 8000;

// Writes frames to a pcap file as a capture with `snaplen` would have kept them.
class PcapFile {
 public:
  explicit PcapFile(int snaplen) : snaplen_(snaplen) {
    path_ = (std::filesystem::temp_directory_path() / ("wire_test_" + std::to_string(::getpid()) +
                                                       "_" + std::to_string(counter_++) + ".pcap"))
                .string();
    dead_ = pcap_open_dead(DLT_EN10MB, snaplen);
    dumper_ = pcap_dump_open(dead_, path_.c_str());
  }
  ~PcapFile() {
    if (dumper_) pcap_dump_close(dumper_);
    pcap_close(dead_);
    std::filesystem::remove(path_);
  }
  void Write(const std::vector<uint8_t>& frame, int64_t time_us) {
    pcap_pkthdr header{};
    header.ts.tv_sec = time_us / 1000000;
    header.ts.tv_usec = time_us % 1000000;
    header.len = uint32_t(frame.size());
    header.caplen = std::min<uint32_t>(header.len, uint32_t(snaplen_));
    pcap_dump(reinterpret_cast<u_char*>(dumper_), &header, frame.data());
  }
  const std::string& Close() {
    pcap_dump_close(dumper_);
    dumper_ = nullptr;
    return path_;
  }

 private:
  static inline int counter_ = 0;
  int snaplen_;
  std::string path_;
  pcap_t* dead_;
  pcap_dumper_t* dumper_;
};

void Put16(std::vector<uint8_t>& out, std::size_t at, uint32_t value) {
  out[at] = uint8_t(value >> 8);
  out[at + 1] = uint8_t(value);
}
void Put32(std::vector<uint8_t>& out, std::size_t at, uint32_t value) {
  Put16(out, at, value >> 16);
  Put16(out, at + 2, value & 0xffff);
}

std::vector<uint8_t> Frame(uint8_t src_host, uint16_t src_port, uint8_t dst_host, uint16_t dst_port,
                           uint32_t seq, uint32_t ack, uint8_t flags, std::string_view payload) {
  std::vector<uint8_t> frame(14 + 20 + 20 + payload.size(), 0);
  Put16(frame, 12, 0x0800);
  uint8_t* ip = frame.data() + 14;
  ip[0] = 0x45;
  Put16(frame, 16, uint32_t(20 + 20 + payload.size()));
  ip[8] = 64;
  ip[9] = 6;
  const uint8_t src[4] = {127, 0, 0, src_host}, dst[4] = {127, 0, 0, dst_host};
  std::copy(src, src + 4, ip + 12);
  std::copy(dst, dst + 4, ip + 16);
  Put16(frame, 34, src_port);
  Put16(frame, 36, dst_port);
  Put32(frame, 38, seq);
  Put32(frame, 42, ack);
  frame[46] = 5 << 4;
  frame[47] = flags;
  std::copy(payload.begin(), payload.end(), frame.begin() + 54);
  return frame;
}

// One TCP connection between client 127.0.0.1:port and server 127.0.0.2:8000.
class Conversation {
 public:
  Conversation(PcapFile& file, uint16_t client_port, uint32_t client_isn = 1000,
               uint32_t server_isn = 50000)
      : file_(file), port_(client_port), client_(client_isn), server_(server_isn) {}

  void Handshake(int64_t t) {
    file_.Write(Frame(1, port_, 2, kServerPort, client_, 0, kSyn, ""), t);
    file_.Write(Frame(2, kServerPort, 1, port_, server_, client_ + 1, kSyn | kAck, ""), t);
    ++client_;
    ++server_;
    file_.Write(Frame(1, port_, 2, kServerPort, client_, server_, kAck, ""), t);
  }
  // Data in segments of at most `mss` bytes, all at time t; returns the first sequence number.
  uint32_t Client(std::string_view bytes, int64_t t, std::size_t mss = 65000) {
    return Send(true, bytes, t, mss);
  }
  uint32_t Server(std::string_view bytes, int64_t t, std::size_t mss = 65000) {
    return Send(false, bytes, t, mss);
  }
  // A segment written at an explicit sequence number, leaving the stream's position alone.
  void ServerAt(uint32_t seq, std::string_view bytes, int64_t t) {
    file_.Write(Frame(2, kServerPort, 1, port_, seq, client_, kAck, bytes), t);
  }
  void ClientAt(uint32_t seq, std::string_view bytes, int64_t t, uint32_t ack) {
    file_.Write(Frame(1, port_, 2, kServerPort, seq, ack, kAck, bytes), t);
  }
  void ClientReset(int64_t t) {
    file_.Write(Frame(1, port_, 2, kServerPort, client_, server_, kRst | kAck, ""), t);
  }
  void Close(int64_t t) {
    file_.Write(Frame(1, port_, 2, kServerPort, client_, server_, kFin | kAck, ""), t);
    ++client_;
    file_.Write(Frame(2, kServerPort, 1, port_, server_, client_, kFin | kAck, ""), t);
    ++server_;
    file_.Write(Frame(1, port_, 2, kServerPort, client_, server_, kAck, ""), t);
  }
  uint32_t client_seq() const { return client_; }
  uint32_t server_seq() const { return server_; }

 private:
  uint32_t Send(bool from_client, std::string_view bytes, int64_t t, std::size_t mss) {
    uint32_t& seq = from_client ? client_ : server_;
    const uint32_t first = seq;
    for (std::size_t at = 0; at < bytes.size(); at += mss) {
      const std::string_view piece = bytes.substr(at, mss);
      if (from_client) {
        file_.Write(Frame(1, port_, 2, kServerPort, seq, server_, kAck, piece), t);
      } else {
        file_.Write(Frame(2, kServerPort, 1, port_, seq, client_, kAck, piece), t);
      }
      seq += uint32_t(piece.size());
    }
    return first;
  }

  PcapFile& file_;
  uint16_t port_;
  uint32_t client_, server_;
};

class Collect final : public RequestSink {
 public:
  void OnRequest(const WireRequest& r) override {
    requests.push_back(std::string(r.method) + " " + std::string(r.target) + " " +
                       std::to_string(r.status) + " " + std::to_string(r.start_us) + "-" +
                       std::to_string(r.end_us));
  }
  void OnUnanswered(Unanswered reason, uint64_t count) override {
    unanswered[std::size_t(reason)] += count;
  }
  void OnUnparsable(Direction direction) override { ++unparsable[std::size_t(direction)]; }

  std::vector<std::string> requests;
  uint64_t unanswered[kUnansweredCount] = {};
  uint64_t unparsable[2] = {};
};

struct Result {
  Collect sink;
  ReassemblyStats stats;
  std::size_t open_connections = 0;
  uint64_t not_tcp = 0, malformed = 0;
};

// Reads the file back through libpcap, the frame decoder, reassembly and pairing.
void Replay(const std::string& path, Result& result, int64_t expire_at_us = 0) {
  char error[PCAP_ERRBUF_SIZE];
  pcap_t* pcap = pcap_open_offline(path.c_str(), error);
  ASSERT_NE(pcap, nullptr) << error;
  TcpReassembler reassembler({kServerPort}, ReassemblyOptions{},
                             HttpPairingFactory(result.sink, PairingOptions{}));
  pcap_pkthdr* header;
  const u_char* data;
  while (pcap_next_ex(pcap, &header, &data) == 1) {
    TcpSegment segment;
    switch (DecodeFrame(pcap_datalink(pcap), data, header->caplen, segment)) {
      case Decoded::kTcp:
        segment.time_us = int64_t(header->ts.tv_sec) * 1000000 + header->ts.tv_usec;
        reassembler.Handle(segment);
        break;
      case Decoded::kNotTcp:
        ++result.not_tcp;
        break;
      case Decoded::kMalformed:
        ++result.malformed;
        break;
    }
  }
  pcap_close(pcap);
  if (expire_at_us) reassembler.Expire(expire_at_us);
  result.stats = reassembler.stats();
  result.open_connections = reassembler.connections();
}

uint64_t Desyncs(const Result& result, DesyncReason reason) {
  return result.stats.desyncs[std::size_t(reason)];
}
uint64_t AllDesyncs(const Result& result) {
  uint64_t total = 0;
  for (const uint64_t n : result.stats.desyncs) total += n;
  return total;
}

std::string Response(int status, std::string_view body, std::string_view extra = "") {
  return "HTTP/1.1 " + std::to_string(status) +
         " X\r\ncontent-length: " + std::to_string(body.size()) + "\r\n" + std::string(extra) +
         "\r\n" + std::string(body);
}

TEST(Wire, KeepAliveRequestsPairInOrderWithTheirTimes) {
  PcapFile file(65535);
  Conversation c(file, 40000);
  c.Handshake(1000);
  c.Client("GET /a?x=1 HTTP/1.1\r\nhost: h\r\n\r\n", 2000);
  c.Server(Response(200, "hello"), 5000);
  c.Client("POST /items HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\n\r\nabc", 7000);
  c.Server(Response(201, "{}"), 9500);
  c.Close(10000);
  Result result;
  Replay(file.Close(), result);
  EXPECT_EQ(result.sink.requests,
            (std::vector<std::string>{"GET /a?x=1 200 2000-5000", "POST /items 201 7000-9500"}));
  EXPECT_EQ(AllDesyncs(result), 0u);
  EXPECT_EQ(result.stats.connections_opened, 1u);
  EXPECT_EQ(result.open_connections, 0u);  // closed by the FINs
}

TEST(Wire, PipelinedRequestsAreAnsweredOldestFirst) {
  PcapFile file(65535);
  Conversation c(file, 40001);
  c.Handshake(1000);
  c.Client("GET /one HTTP/1.1\r\n\r\nGET /two HTTP/1.1\r\n\r\nDELETE /three HTTP/1.1\r\n\r\n",
           2000);
  c.Server(Response(200, "1") + Response(404, "2"), 3000);
  c.Server(Response(204, ""), 4000);
  Result result;
  Replay(file.Close(), result);
  EXPECT_EQ(result.sink.requests,
            (std::vector<std::string>{"GET /one 200 2000-3000", "GET /two 404 2000-3000",
                                      "DELETE /three 204 2000-4000"}));
  EXPECT_EQ(result.open_connections, 1u);
}

TEST(Wire, ChunkedResponseEndsAtItsLastChunk) {
  PcapFile file(65535);
  Conversation c(file, 40002);
  c.Handshake(1000);
  c.Client("GET /stream HTTP/1.1\r\n\r\n", 2000);
  c.Server("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", 3000);
  c.Server("5\r\nhello\r\n", 4000);
  c.Server("6\r\n world\r\n", 5000);
  c.Server("0\r\n\r\n", 6000);
  c.Client("GET /next HTTP/1.1\r\n\r\n", 7000);
  c.Server(Response(200, "ok"), 8000);
  Result result;
  Replay(file.Close(), result);
  EXPECT_EQ(result.sink.requests,
            (std::vector<std::string>{"GET /stream 200 2000-6000", "GET /next 200 7000-8000"}));
  EXPECT_EQ(AllDesyncs(result), 0u);
}

TEST(Wire, OneMegabyteBodiesCutBySnapLengthAreCountedFromLengths) {
  PcapFile file(200);  // heads survive, bodies are cut: the IP length says how much there was
  Conversation c(file, 40003);
  c.Handshake(1000);
  const std::string body(1 << 20, 'x');
  c.Client("PUT /upload HTTP/1.1\r\ncontent-length: " + std::to_string(body.size()) + "\r\n\r\n",
           2000);
  c.Client(body, 2500, 16384);
  c.Server(Response(200, body), 9000, 16384);
  // A chunked response whose chunks each start a segment: every size line is captured.
  c.Client("GET /chunks HTTP/1.1\r\n\r\n", 10000);
  c.Server("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", 11000);
  c.Server("8000\r\n" + std::string(0x8000, 'y') + "\r\n", 11500);
  c.Server("0\r\n\r\n", 12000);
  c.Client("GET /after HTTP/1.1\r\n\r\n", 13000);
  c.Server(Response(200, "ok"), 14000);
  Result result;
  Replay(file.Close(), result);
  EXPECT_EQ(result.sink.requests,
            (std::vector<std::string>{"PUT /upload 200 2000-9000", "GET /chunks 200 10000-12000",
                                      "GET /after 200 13000-14000"}));
  EXPECT_EQ(AllDesyncs(result), 0u);
}

TEST(Wire, BytesCutWhereTheParserNeedsThemResynchronise) {
  PcapFile file(120);  // 54 bytes of headers: 66 of payload
  Conversation c(file, 40004);
  c.Handshake(1000);
  c.Client("GET /a HTTP/1.1\r\n\r\n", 2000);
  // The second response's head is in the cut part of the first one's segment.
  c.Server(Response(200, std::string(100, 'b')) + Response(200, "x"), 3000);
  c.Client("GET /b HTTP/1.1\r\n\r\n", 4000);
  c.Server(Response(200, "ok"), 5000);
  Result result;
  Replay(file.Close(), result);
  // /a is lost with the stream; /b starts a request with nothing unacknowledged: resynced.
  EXPECT_EQ(result.sink.requests, (std::vector<std::string>{"GET /b 200 4000-5000"}));
  EXPECT_EQ(Desyncs(result, DesyncReason::kCut), 1u);
  EXPECT_EQ(result.sink.unanswered[std::size_t(Unanswered::kDesync)], 1u);
}

TEST(Wire, HeadResponsesHaveNoBodyWhateverTheirLength) {
  PcapFile file(65535);
  Conversation c(file, 40005);
  c.Handshake(1000);
  c.Client("HEAD /file HTTP/1.1\r\n\r\nGET /file HTTP/1.1\r\n\r\n", 2000);
  c.Server("HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n", 3000);
  c.Server(Response(200, "0123456789"), 4000);
  Result result;
  Replay(file.Close(), result);
  EXPECT_EQ(result.sink.requests,
            (std::vector<std::string>{"HEAD /file 200 2000-3000", "GET /file 200 2000-4000"}));
  EXPECT_EQ(AllDesyncs(result), 0u);
}

TEST(Wire, NoContentAndNotModifiedHaveNoBody) {
  PcapFile file(65535);
  Conversation c(file, 40006);
  c.Handshake(1000);
  c.Client("DELETE /x/1 HTTP/1.1\r\n\r\n", 2000);
  c.Server("HTTP/1.1 204 No Content\r\n\r\n", 3000);
  c.Client("GET /x HTTP/1.1\r\nif-none-match: \"e\"\r\n\r\n", 4000);
  c.Server("HTTP/1.1 304 Not Modified\r\netag: \"e\"\r\n\r\n", 5000);
  c.Client("GET /y HTTP/1.1\r\n\r\n", 6000);
  c.Server(Response(200, "y"), 7000);
  Result result;
  Replay(file.Close(), result);
  EXPECT_EQ(result.sink.requests,
            (std::vector<std::string>{"DELETE /x/1 204 2000-3000", "GET /x 304 4000-5000",
                                      "GET /y 200 6000-7000"}));
}

TEST(Wire, ContinueIsInterimAndTheFinalResponseAnswers) {
  PcapFile file(65535);
  Conversation c(file, 40007);
  c.Handshake(1000);
  c.Client("POST /upload HTTP/1.1\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n", 2000);
  c.Server("HTTP/1.1 100 Continue\r\n\r\n", 2500);
  c.Client("data", 3000);
  c.Server(Response(201, "done"), 6000);
  Result result;
  Replay(file.Close(), result);
  EXPECT_EQ(result.sink.requests, (std::vector<std::string>{"POST /upload 201 2000-6000"}));
}

TEST(Wire, ClientResetMidResponseLeavesTheRequestUnanswered) {
  PcapFile file(65535);
  Conversation c(file, 40008);
  c.Handshake(1000);
  c.Client("GET /ok HTTP/1.1\r\n\r\n", 2000);
  c.Server(Response(200, "fine"), 3000);
  c.Client("GET /slow HTTP/1.1\r\n\r\n", 4000);
  c.Server("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhalf", 5000);
  c.ClientReset(6000);
  Result result;
  Replay(file.Close(), result);
  EXPECT_EQ(result.sink.requests, (std::vector<std::string>{"GET /ok 200 2000-3000"}));
  EXPECT_EQ(result.sink.unanswered[std::size_t(Unanswered::kClosed)], 1u);
  EXPECT_EQ(result.open_connections, 0u);
}

TEST(Wire, RetransmittedAndOutOfOrderSegmentsAreDeliveredOnceInOrder) {
  PcapFile file(65535);
  Conversation c(file, 40009);
  c.Handshake(1000);
  const uint32_t request = c.client_seq();
  const std::string first = "GET /ordered HTTP/1.1\r\n";
  const std::string second = "host: h\r\n\r\n";
  // The request's second half is captured before its first, then the first twice.
  c.ClientAt(request + uint32_t(first.size()), second, 2100, c.server_seq());
  c.ClientAt(request, first, 2000, c.server_seq());
  c.ClientAt(request, first, 2200, c.server_seq());
  c.Client(first + second, 2300);  // moves the conversation's position past both
  const std::string response = Response(200, "abcdefghij");
  const uint32_t reply = c.Server(response, 4000);
  c.ServerAt(reply + 5, response.substr(5), 4100);  // overlapping retransmission
  c.Client("GET /again HTTP/1.1\r\n\r\n", 5000);
  c.Server(Response(200, "k"), 6000);
  Result result;
  Replay(file.Close(), result);
  EXPECT_EQ(result.sink.requests,
            (std::vector<std::string>{"GET /ordered 200 2000-4000", "GET /again 200 5000-6000"}));
  EXPECT_EQ(result.stats.out_of_order, 1u);
  EXPECT_EQ(result.stats.retransmitted, 3u);  // the first half again, the whole, the overlap
  EXPECT_EQ(AllDesyncs(result), 0u);
}

TEST(Wire, CaptureStartingMidConnectionWaitsForARequestBoundary) {
  PcapFile file(65535);
  Conversation c(file, 40010);
  // No handshake: the capture starts in the middle of a response body.
  c.Server("tail of an earlier body", 1000);
  c.Client("GET /first HTTP/1.1\r\n\r\n", 2000);
  c.Server(Response(200, "1"), 3000);
  c.Client("GET /second HTTP/1.1\r\n\r\n", 4000);
  c.Server(Response(500, "2"), 5000);
  Result result;
  Replay(file.Close(), result);
  EXPECT_EQ(result.sink.requests,
            (std::vector<std::string>{"GET /first 200 2000-3000", "GET /second 500 4000-5000"}));
  EXPECT_EQ(Desyncs(result, DesyncReason::kMidStream), 1u);
  EXPECT_EQ(AllDesyncs(result), 1u);
}

TEST(Wire, AConnectionOutOfStepIsClosedByItsTwoFins) {
  PcapFile file(65535);
  Conversation c(file, 40020);
  // Seen from the middle of a response: out of step, and no request follows before the end.
  c.Server("the rest of a body", 1000);
  c.Close(2000);
  Conversation d(file, 40021);
  d.Server("more of a body", 1000);
  Result result;
  Replay(file.Close(), result);
  EXPECT_EQ(Desyncs(result, DesyncReason::kMidStream), 2u);
  EXPECT_EQ(result.open_connections, 1u);  // d: still open, no FIN
  EXPECT_TRUE(result.sink.requests.empty());
}

TEST(Wire, MidStreamRequestWhileTheServerStillSendsIsNotAResyncPoint) {
  PcapFile file(65535);
  Conversation c(file, 40011);
  const uint32_t server_at = c.server_seq();
  // The server sends bytes the client has not acknowledged when the client's next request is
  // seen: its response may be any of several, so nothing is paired until the next one.
  c.ServerAt(server_at, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", 1000);
  c.ClientAt(c.client_seq(), "GET /pipelined HTTP/1.1\r\n\r\n", 1500, server_at);
  Result result;
  Replay(file.Close(), result);
  EXPECT_TRUE(result.sink.requests.empty());
  EXPECT_EQ(Desyncs(result, DesyncReason::kMidStream), 1u);
}

TEST(Wire, AGapTheReceiverAcknowledgedResynchronises) {
  const std::string response = Response(200, "0123456789");
  PcapFile gap(65535);
  Conversation g(gap, 40012);
  g.Handshake(1000);
  g.Client("GET /lost HTTP/1.1\r\n\r\n", 2000);
  g.ServerAt(g.server_seq() + 10, response.substr(10), 3000);  // its first 10 bytes missed
  // The client acknowledges the whole response, then asks again.
  g.ClientAt(g.client_seq(), "GET /found HTTP/1.1\r\n\r\n", 4000,
             g.server_seq() + uint32_t(response.size()));
  g.ServerAt(g.server_seq() + uint32_t(response.size()), Response(200, "ok"), 5000);
  Result result;
  Replay(gap.Close(), result);
  EXPECT_EQ(result.sink.requests, (std::vector<std::string>{"GET /found 200 4000-5000"}));
  EXPECT_EQ(Desyncs(result, DesyncReason::kGap), 1u);
  EXPECT_EQ(result.sink.unanswered[std::size_t(Unanswered::kDesync)], 1u);
}

TEST(Wire, GarbageIsCountedUnparsableAndAfterwardsRequestsPairAgain) {
  PcapFile file(65535);
  Conversation c(file, 40013);
  c.Handshake(1000);
  c.Client("\x16\x03\x01 not http", 2000);  // a TLS ClientHello, say
  c.Server("\x16\x03\x03", 2100);
  c.Client("GET /plain HTTP/1.1\r\n\r\n", 3000);
  c.Server(Response(200, "p"), 4000);
  Result result;
  Replay(file.Close(), result);
  EXPECT_EQ(result.sink.requests, (std::vector<std::string>{"GET /plain 200 3000-4000"}));
  EXPECT_EQ(result.sink.unparsable[0], 1u);
  EXPECT_EQ(Desyncs(result, DesyncReason::kUnparsable), 1u);
}

TEST(Wire, RequestsWithoutResponsesTimeOutAndIdleConnectionsExpire) {
  PcapFile file(65535);
  Conversation a(file, 40014);
  a.Handshake(1000);
  a.Client("GET /never HTTP/1.1\r\n\r\n", 2000);
  Conversation b(file, 40015);
  b.Handshake(1000);
  Result timed_out;
  const std::string path = file.Close();
  // 301 s later: past the request timeout (300 s), not the idle timeout (600 s); past the
  // handshake timeout (30 s) of b, which never carried a byte.
  Replay(path, timed_out, 2000 + 301'000'000);
  EXPECT_EQ(timed_out.sink.unanswered[std::size_t(Unanswered::kTimeout)], 1u);
  EXPECT_EQ(timed_out.open_connections, 1u);
  EXPECT_EQ(timed_out.stats.connections_expired, 1u);
  Result expired;
  Replay(path, expired, 2000 + 601'000'000);
  EXPECT_EQ(expired.sink.unanswered[std::size_t(Unanswered::kIdle)], 1u);
  EXPECT_EQ(expired.stats.connections_expired, 2u);
  EXPECT_EQ(expired.open_connections, 0u);
}

TEST(Wire, TheConnectionTableIsCapped) {
  PcapFile file(65535);
  for (uint16_t port = 41000; port < 41010; ++port) Conversation(file, port).Handshake(1000);
  const std::string path = file.Close();
  char error[PCAP_ERRBUF_SIZE];
  pcap_t* pcap = pcap_open_offline(path.c_str(), error);
  ASSERT_NE(pcap, nullptr);
  Collect sink;
  ReassemblyOptions options;
  options.max_connections = 4;
  TcpReassembler reassembler({kServerPort}, options, HttpPairingFactory(sink, PairingOptions{}));
  pcap_pkthdr* header;
  const u_char* data;
  while (pcap_next_ex(pcap, &header, &data) == 1) {
    TcpSegment segment;
    ASSERT_EQ(DecodeFrame(pcap_datalink(pcap), data, header->caplen, segment), Decoded::kTcp);
    reassembler.Handle(segment);
  }
  pcap_close(pcap);
  EXPECT_EQ(reassembler.connections(), 4u);
  EXPECT_EQ(reassembler.stats().connections_refused, 6u);
}

TEST(Wire, MoreSegmentsBehindAHoleThanTheQueueHoldsResynchronise) {
  PcapFile file(65535);
  Conversation c(file, 40016);
  c.Handshake(1000);
  const uint32_t hole = c.client_seq();
  // 10 bytes never seen, then 33 segments behind them (the queue holds 32).
  for (uint32_t i = 0; i < 33; ++i) c.ClientAt(hole + 10 + i * 4, "abcd", 2000, c.server_seq());
  Result result;
  Replay(file.Close(), result);
  EXPECT_EQ(result.stats.out_of_order, 32u);
  EXPECT_EQ(Desyncs(result, DesyncReason::kGap), 1u);
  EXPECT_TRUE(result.sink.requests.empty());
}

TEST(Wire, RequestsPipelinedBeyondTheCapAndOverLongTargetsAreUnparsable) {
  // 33 requests in one segment before any response: the 33rd is one more than a
  // connection keeps waiting (32); the stream is counted unparsable and resynchronised.
  std::string pipelined;
  for (int i = 0; i < 33; ++i) pipelined += "GET /p" + std::to_string(i) + " HTTP/1.1\r\n\r\n";
  PcapFile file(65535);
  Conversation c(file, 40017);
  c.Handshake(1000);
  c.Client(pipelined, 2000);
  // A request target of 9 KiB (over the 8 KiB kept) on another connection.
  Conversation d(file, 40018);
  d.Handshake(1000);
  d.Client("GET /" + std::string(9 * 1024, 'a') + " HTTP/1.1\r\n\r\n", 2000);
  d.Server(Response(200, "x"), 3000);
  d.Client("GET /after HTTP/1.1\r\n\r\n", 4000);
  d.Server(Response(200, "y"), 5000);
  Result result;
  Replay(file.Close(), result);
  EXPECT_EQ(result.sink.unparsable[std::size_t(Direction::kToServer)], 2u);
  EXPECT_EQ(Desyncs(result, DesyncReason::kUnparsable), 2u);
  EXPECT_EQ(result.sink.requests, (std::vector<std::string>{"GET /after 200 4000-5000"}));
}

// The same TCP segment in every link type a capture gives (Ethernet, VLAN, Linux cooked v1
// and v2 from the "any" interface, raw IP), over IPv4 and IPv6: the same ports, sequence
// numbers, flags and payload.
TEST(Wire, EveryLinkTypeAndIpv6DecodeToTheSameSegment) {
  const std::string payload = "GET / HTTP/1.1\r\n\r\n";
  std::vector<uint8_t> tcp(20, 0);
  Put16(tcp, 0, 40019);
  Put16(tcp, 2, kServerPort);
  Put32(tcp, 4, 1234);
  Put32(tcp, 8, 5678);
  tcp[12] = 5 << 4;
  tcp[13] = kAck | kFin;
  tcp.insert(tcp.end(), payload.begin(), payload.end());
  std::vector<uint8_t> ipv4(20, 0);
  ipv4[0] = 0x45;
  Put16(ipv4, 2, uint32_t(20 + tcp.size()));
  ipv4[8] = 64;
  ipv4[9] = 6;
  ipv4[12] = 127, ipv4[15] = 1, ipv4[16] = 127, ipv4[19] = 2;
  ipv4.insert(ipv4.end(), tcp.begin(), tcp.end());
  std::vector<uint8_t> ipv6(40, 0);
  ipv6[0] = 0x60;
  Put16(ipv6, 4, uint32_t(tcp.size()));
  ipv6[6] = 6;
  ipv6[7] = 64;
  ipv6[23] = 1;  // ::1
  ipv6[39] = 1;
  ipv6.insert(ipv6.end(), tcp.begin(), tcp.end());
  auto wrap = [](std::vector<uint8_t> head, const std::vector<uint8_t>& ip) {
    head.insert(head.end(), ip.begin(), ip.end());
    return head;
  };
  for (const bool v6 : {false, true}) {
    const std::vector<uint8_t>& ip = v6 ? ipv6 : ipv4;
    const uint16_t ethertype = v6 ? 0x86dd : 0x0800;
    std::vector<uint8_t> ethernet(14, 0), vlan(18, 0), sll(16, 0), sll2(20, 0);
    Put16(ethernet, 12, ethertype);
    Put16(vlan, 12, 0x8100);
    Put16(vlan, 16, ethertype);
    Put16(sll, 14, ethertype);
    Put16(sll2, 0, ethertype);
    const std::pair<int, std::vector<uint8_t>> frames[] = {
        {DLT_EN10MB, wrap(ethernet, ip)},
        {DLT_EN10MB, wrap(vlan, ip)},
        {DLT_LINUX_SLL, wrap(sll, ip)},
        {DLT_LINUX_SLL2, wrap(sll2, ip)},
        {DLT_RAW, ip},
    };
    for (const auto& [linktype, frame] : frames) {
      SCOPED_TRACE(std::to_string(linktype) + (v6 ? " IPv6" : " IPv4"));
      TcpSegment segment;
      ASSERT_EQ(DecodeFrame(linktype, frame.data(), uint32_t(frame.size()), segment),
                Decoded::kTcp);
      EXPECT_EQ(segment.src_port, 40019);
      EXPECT_EQ(segment.dst_port, kServerPort);
      EXPECT_EQ(segment.seq, 1234u);
      EXPECT_EQ(segment.ack, 5678u);
      EXPECT_EQ(segment.flags, kAck | kFin);
      EXPECT_EQ(segment.length, payload.size());
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(segment.payload), segment.captured),
                payload);
      EXPECT_EQ(segment.src[15], 1);
      EXPECT_EQ(segment.dst[15], v6 ? 1 : 2);
      EXPECT_EQ(segment.src[10], v6 ? 0 : 0xff);  // IPv4 as ::ffff:a.b.c.d
      // Cut inside the TCP header, as a too-small snap length would: malformed, not TCP.
      EXPECT_EQ(
          DecodeFrame(linktype, frame.data(), uint32_t(frame.size() - payload.size() - 1), segment),
          Decoded::kMalformed);
    }
  }
}

TEST(Wire, RequestLineStartsAreTheMethodsHttpParserKnows) {
  auto starts = [](std::string_view text) {
    return StartsRequestLine(reinterpret_cast<const uint8_t*>(text.data()), uint32_t(text.size()));
  };
  EXPECT_TRUE(starts("GET / HTTP/1.1"));
  EXPECT_TRUE(starts("PATCH /x"));
  EXPECT_FALSE(starts("GETX / HTTP/1.1"));
  EXPECT_FALSE(starts("GET"));
  EXPECT_FALSE(starts("HTTP/1.1 200 OK"));
}

TEST(WireConfig, ReadsEveryKeyAndDefaults) {
  const config::LoadResult result = config::ParseConfig(R"(services:
  - name: a
    process: {comm: uvicorn}
    wire: {}
  - name: b
    wire:
      ports: [8000, 8001]
      interface: lo
      snap_length: 512
      request_timeout: 30s
      max_connections: 100
)");
  ASSERT_TRUE(result.ok()) << result.errors[0].message;
  const auto& a = *result.config.services[0].wire;
  EXPECT_TRUE(a.auto_ports);
  EXPECT_EQ(a.interface, "any");
  EXPECT_EQ(a.snap_length, 2048);
  EXPECT_EQ(a.request_timeout, std::chrono::minutes(5));
  const auto& b = *result.config.services[1].wire;
  EXPECT_FALSE(b.auto_ports);
  EXPECT_EQ(b.ports, (std::vector<uint16_t>{8000, 8001}));
  EXPECT_EQ(b.interface, "lo");
  EXPECT_EQ(b.snap_length, 512);
  EXPECT_EQ(b.request_timeout, std::chrono::seconds(30));
  EXPECT_EQ(b.max_connections, 100);
}

TEST(WireConfig, BadValuesNameTheirKeyAndLine) {
  const config::LoadResult result = config::ParseConfig(R"(services:
  - name: a
    wire:
      ports: [0, 70000]
      snap_length: 10
      colour: red
  - name: b
    wire: {ports: auto}
)");
  std::vector<std::string> keys;
  for (const auto& error : result.errors) {
    keys.push_back(error.key + ":" + std::to_string(error.position.line));
  }
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "services[0].wire.colour:6", "services[0].wire.ports[0]:4",
                      "services[0].wire.ports[1]:4", "services[0].wire.snap_length:5",
                      "services[1].wire.ports:8"}));
}

TEST(WireListeningPorts, OnlyListeningSocketsOfTheGivenInodes) {
  // /proc/net/tcp6 as the kernel writes it (trimmed): 8000 listening (inode 111), 8001
  // listening but another process's (222), 8002 established (333).
  const std::string text =
      "  sl  local_address                         remote_address                        st "
      "tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
      "   0: 00000000000000000000000000000000:1F40 00000000000000000000000000000000:0000 0A "
      "00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 "
      "0\n"
      "   1: 00000000000000000000000000000000:1F41 00000000000000000000000000000000:0000 0A "
      "00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 100 0 0 10 "
      "0\n"
      "   2: 0000000000000000FFFF00000100007F:1F42 0000000000000000FFFF00000100007F:9C40 01 "
      "00000000:00000000 00:00000000 00000000     0        0 333 1 0000000000000000 20 4 30 10 "
      "-1\n";
  std::vector<uint16_t> ports;
  ParseListeningPorts(text, {111, 333}, ports);
  EXPECT_EQ(ports, (std::vector<uint16_t>{8000}));
}

}  // namespace
}  // namespace fastapi_exporter::wire
