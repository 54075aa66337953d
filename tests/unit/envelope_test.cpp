#include "collectors/access_log/envelope.hpp"

#include <gtest/gtest.h>

namespace fastapi_exporter::access_log {
namespace {

using Status = EnvelopeDecoder::Status;

TEST(DockerEnvelope, UnwrapsAndJoinsPartials) {
  auto decoder = MakeEnvelopeDecoder(Envelope::kDocker, 1024);
  std::string_view line;
  ASSERT_EQ(
      decoder->Decode(
          R"({"log":"INFO:     1.2.3.4:5 - \"GET / HTTP/1.1\" 200 OK\n","stream":"stdout","time":"2026-11-27T10:00:00.000000001Z"})",
          line),
      Status::kLine);
  EXPECT_EQ(line, R"(INFO:     1.2.3.4:5 - "GET / HTTP/1.1" 200 OK)");
  // Docker splits lines over 16 KiB: records without a trailing newline are partials.
  EXPECT_EQ(decoder->Decode(R"({"log":"{\"method\":","stream":"stdout","time":"t"})", line),
            Status::kPartial);
  EXPECT_TRUE(decoder->HoldsPartial());
  ASSERT_EQ(decoder->Decode(R"({"stream":"stdout","log":"\"GET\"}\r\n","time":"t"})", line),
            Status::kLine);
  EXPECT_EQ(line, R"({"method":"GET"})");
  EXPECT_FALSE(decoder->HoldsPartial());
}

TEST(DockerEnvelope, RejectsOtherLines) {
  auto decoder = MakeEnvelopeDecoder(Envelope::kDocker, 1024);
  std::string_view line;
  EXPECT_EQ(decoder->Decode("plain text", line), Status::kInvalid);
  EXPECT_EQ(decoder->Decode(R"({"stream":"stdout"})", line), Status::kInvalid);
  EXPECT_EQ(decoder->Decode(R"({"log":1})", line), Status::kInvalid);
  EXPECT_EQ(decoder->Decode(R"({"log":"x\n"} extra)", line), Status::kInvalid);
}

TEST(CriEnvelope, UnwrapsAndJoinsPartials) {
  auto decoder = MakeEnvelopeDecoder(Envelope::kCri, 1024);
  std::string_view line;
  ASSERT_EQ(decoder->Decode("2026-11-27T10:00:00.123456789Z stdout F {\"a\": 1}", line),
            Status::kLine);
  EXPECT_EQ(line, "{\"a\": 1}");
  EXPECT_EQ(decoder->Decode("2026-11-27T10:00:00.1Z stdout P part one ", line), Status::kPartial);
  EXPECT_EQ(decoder->Decode("2026-11-27T10:00:00.2Z stdout P and two ", line), Status::kPartial);
  ASSERT_EQ(decoder->Decode("2026-11-27T10:00:00.3Z stdout F end", line), Status::kLine);
  EXPECT_EQ(line, "part one and two end");
  ASSERT_EQ(decoder->Decode("2026-11-27T10:00:00.3Z stderr F", line), Status::kLine);
  EXPECT_EQ(line, "");
  EXPECT_EQ(decoder->Decode("2026-11-27T10:00:00.3Z stdout X y", line), Status::kInvalid);
  EXPECT_EQ(decoder->Decode("garbage", line), Status::kInvalid);
}

TEST(CriEnvelope, JoinedLinesAreBounded) {
  auto decoder = MakeEnvelopeDecoder(Envelope::kCri, 10);
  std::string_view line;
  EXPECT_EQ(decoder->Decode("t stdout P 123456", line), Status::kPartial);
  EXPECT_EQ(decoder->Decode("t stdout P 789012", line), Status::kPartial);
  EXPECT_EQ(decoder->Decode("t stdout F x", line), Status::kTooLong);
  ASSERT_EQ(decoder->Decode("t stdout F ok", line), Status::kLine);
  EXPECT_EQ(line, "ok");
}

}  // namespace
}  // namespace fastapi_exporter::access_log
