#include "collectors/access_log/config_translation.hpp"

#include <gtest/gtest.h>

#include "config/config.hpp"

namespace fastapi_exporter::access_log {
namespace {

using config::AccessLogConfig;
using config::LogFormatKind;

std::unique_ptr<LineParser> Parser(const std::string& yaml_log) {
  const auto loaded =
      config::ParseConfig("services:\n  - name: s\n    access_logs:\n      - " + yaml_log + "\n");
  EXPECT_TRUE(loaded.ok()) << (loaded.ok() ? "" : loaded.errors[0].message);
  return MakeLineParser(loaded.config.services.at(0).access_logs.at(0));
}

struct Expect {
  std::string method;
  std::string target;
  int status;
  double seconds;  // < 0: no duration
};

void ExpectRequest(LineParser& parser, std::string_view line, const Expect& expect) {
  ParsedRequest request;
  ASSERT_EQ(parser.Parse(line, request), ParseError::kNone) << line;
  EXPECT_EQ(request.method, expect.method) << line;
  EXPECT_EQ(request.target, expect.target) << line;
  EXPECT_EQ(request.status, expect.status) << line;
  if (expect.seconds < 0) {
    EXPECT_FALSE(request.has_duration) << line;
  } else {
    EXPECT_TRUE(request.has_duration) << line;
    EXPECT_NEAR(request.duration_seconds, expect.seconds, 1e-9) << line;
  }
}

ParseError Reject(LineParser& parser, std::string_view line) {
  ParsedRequest request;
  return parser.Parse(line, request);
}

TEST(JsonParser, TheReferenceSchema) {
  auto parser = Parser("{path: /l, format: json}");
  ExpectRequest(*parser,
                R"({"timestamp": "2025-12-18T01:23:45.123Z", "level": "INFO", "service": )"
                R"("fastapi-backend", "endpoint": "/api/users", "method": "GET", "status_code": )"
                R"(200, "duration_ms": 45, "message": "Request completed"})",
                {"GET", "/api/users", 200, 0.045});
}

TEST(JsonParser, KeyOrderExtraKeysNestedValuesStringsAndEscapes) {
  auto parser = Parser("{path: /l, format: json}");
  ExpectRequest(*parser,
                R"({"duration_ms":"12.5","extra":{"a":[1,2,{"b":null}]},"status_code":"404",)"
                R"("method":"POST","endpoint":"/api/a\"b\u00e9\/c"})",
                {"POST", "/api/a\"b\xc3\xa9/c", 404, 0.0125});
  // No duration field: counted without a duration; a null duration likewise.
  ExpectRequest(*parser, R"({"method":"GET","endpoint":"/","status_code":200})",
                {"GET", "/", 200, -1});
  ExpectRequest(*parser, R"({"method":"GET","endpoint":"/","status_code":200,"duration_ms":null})",
                {"GET", "/", 200, -1});
}

TEST(JsonParser, ConfiguredFieldsAndUnits) {
  auto parser = Parser(
      "{path: /l, format: json, json: {method: verb, path: url, status: code, duration: took, "
      "duration_unit: s}}");
  ExpectRequest(*parser, R"({"verb":"DELETE","url":"/x?y=1","code":204,"took":0.25})",
                {"DELETE", "/x?y=1", 204, 0.25});
  auto micros = Parser("{path: /l, format: json, json: {duration: us, duration_unit: us}}");
  ExpectRequest(*micros, R"({"method":"GET","endpoint":"/","status_code":200,"us":1500})",
                {"GET", "/", 200, 0.0015});
}

TEST(JsonParser, MalformedLinesSayWhy) {
  auto parser = Parser("{path: /l, format: json}");
  EXPECT_EQ(Reject(*parser, R"({"method":"GET","endpoint":"/","status_code":200)"),
            ParseError::kInvalidJson);  // truncated
  // Lines that do not even start an object are other writers' lines in the stream.
  EXPECT_EQ(Reject(*parser, "not json at all"), ParseError::kNotAccessLine);
  EXPECT_EQ(Reject(*parser, ""), ParseError::kNotAccessLine);
  EXPECT_EQ(Reject(*parser, "[1,2]"), ParseError::kNotAccessLine);
  EXPECT_EQ(Reject(*parser, R"({"level":"INFO","message":"Application startup complete."})"),
            ParseError::kNotAccessLine);
  EXPECT_EQ(Reject(*parser, "{not json"), ParseError::kInvalidJson);
  EXPECT_EQ(Reject(*parser, R"({"method":"GET","endpoint":"/","status_code":200} trailing)"),
            ParseError::kInvalidJson);
  EXPECT_EQ(Reject(*parser, R"({"method":"GET","status_code":200})"), ParseError::kMissingField);
  EXPECT_EQ(Reject(*parser, R"({"method":1,"endpoint":"/","status_code":200})"),
            ParseError::kMissingField);
  EXPECT_EQ(Reject(*parser, R"({"method":"GET","endpoint":"/","status_code":"abc"})"),
            ParseError::kInvalidStatus);
  EXPECT_EQ(Reject(*parser, R"({"method":"GET","endpoint":"/","status_code":999})"),
            ParseError::kInvalidStatus);
  EXPECT_EQ(Reject(*parser, R"({"method":"GET","endpoint":"/","status_code":200.5})"),
            ParseError::kInvalidStatus);
  // A duration that is not one: the request counts, without a duration.
  for (const char* line :
       {R"({"method":"GET","endpoint":"/","status_code":200,"duration_ms":-4})",
        R"({"method":"GET","endpoint":"/","status_code":200,"duration_ms":1e12})",
        R"({"method":"GET","endpoint":"/","status_code":200,"duration_ms":"fast"})",
        R"({"method":"GET","endpoint":"/","status_code":200,"duration_ms":true})"}) {
    ParsedRequest request;
    ASSERT_EQ(parser->Parse(line, request), ParseError::kNone) << line;
    EXPECT_TRUE(request.duration_invalid) << line;
    EXPECT_FALSE(request.has_duration) << line;
  }
  EXPECT_EQ(Reject(*parser, std::string("{\"method\":\"GET\",\"endpoint\":\"/\xff\xfe\"}")),
            ParseError::kInvalidJson);  // invalid UTF-8
  EXPECT_EQ(Reject(*parser, std::string("{\"method\":\"GET\"\0,\"x\":1}", 22)),
            ParseError::kInvalidJson);  // a NUL byte
}

TEST(UvicornParser, DefaultAccessLines) {
  auto parser = Parser("{path: /l, format: uvicorn}");
  ExpectRequest(*parser, R"(INFO:     127.0.0.1:54321 - "GET /items/5?q=x HTTP/1.1" 200 OK)",
                {"GET", "/items/5?q=x", 200, -1});
  ExpectRequest(*parser,
                R"(INFO:     10.1.2.3:40000 - "POST /api/users HTTP/1.1" 422 Unprocessable Entity)",
                {"POST", "/api/users", 422, -1});
  ExpectRequest(*parser, R"(2026-11-27 10:00:00 uvicorn.access 1.2.3.4:5 - "HEAD / HTTP/2" 307)",
                {"HEAD", "/", 307, -1});
  EXPECT_EQ(Reject(*parser, "INFO:     Started server process [1234]"), ParseError::kNotAccessLine);
  EXPECT_EQ(Reject(*parser, R"(INFO:     1.2.3.4:5 - "GET /x HTTP/1.1" abc OK)"),
            ParseError::kInvalidStatus);
  EXPECT_EQ(Reject(*parser, R"(INFO:     1.2.3.4:5 - "garbage" 200 OK)"),
            ParseError::kInvalidRequestLine);
}

TEST(GunicornParser, DefaultFormatHasNoDuration) {
  auto parser = Parser("{path: /l, format: gunicorn}");
  ExpectRequest(*parser,
                R"(127.0.0.1 - - [27/Nov/2026:10:00:00 +0000] "GET /api/users/7 HTTP/1.1" 200 )"
                R"x(512 "-" "Mozilla/5.0 (X11; Linux x86_64)")x",
                {"GET", "/api/users/7", 200, -1});
}

TEST(GunicornParser, CustomFormatWithEveryDurationAtom) {
  auto micros = Parser(
      R"({path: /l, format: gunicorn, gunicorn: {log_format: '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)s'}})");
  ExpectRequest(
      *micros,
      R"(10.0.0.1 - - [27/Nov/2026:10:00:00 +0000] "PUT /a HTTP/1.1" 201 0 "-" "curl/8" 1234)",
      {"PUT", "/a", 201, 0.001234});
  auto split = Parser(
      R"({path: /l, format: gunicorn, gunicorn: {log_format: '%(m)s %(U)s?%(q)s %(s)s %(M)sms %({x-request-id}i)s %(L)s'}})");
  // The most precise duration wins: %(M)s over %(L)s.
  ExpectRequest(*split, "GET /items/9?x=1 503 12ms abc-123 0.012345",
                {"GET", "/items/9", 503, 0.012});
  EXPECT_EQ(Reject(*split, "GET /items/9?x=1 503 12ms"), ParseError::kNoMatch);
}

TEST(NginxParser, CombinedAndRequestTime) {
  auto combined = Parser("{path: /l, format: nginx}");
  ExpectRequest(*combined,
                R"(192.168.1.5 - - [27/Nov/2026:10:00:00 +0000] "GET /api/items/3 HTTP/1.1" 200 )"
                R"(612 "https://example.com/" "Mozilla/5.0")",
                {"GET", "/api/items/3", 200, -1});
  auto timed = Parser(
      R"({path: /l, format: nginx, nginx: {log_format: '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time'}})");
  ExpectRequest(
      *timed,
      R"(10.0.0.0 - - [27/Nov/2026:10:00:00 +0000] "GET /api/users/4507/details HTTP/1.1" )"
      R"(200 1779 "-" "python-requests/2.31" 0.0402)",
      {"GET", "/api/users/4507/details", 200, 0.0402});
  ParsedRequest request;
  ASSERT_EQ(timed->Parse(
                R"(10.0.0.0 - - [27/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x" abc)",
                request),
            ParseError::kNone);
  EXPECT_TRUE(request.duration_invalid);
  EXPECT_EQ(Reject(*timed, "\x01\x02\x03 binary"), ParseError::kNotAccessLine);
  EXPECT_EQ(Reject(*timed, "\x01\x02\x03 GET / binary"), ParseError::kNoMatch);
}

TEST(NginxParser, UpstreamResponseTime) {
  auto parser = Parser(
      R"({path: /l, format: nginx, nginx: {log_format: '$request_method $request_uri $status $upstream_response_time'}})");
  ExpectRequest(*parser, "GET /a?b=1 200 0.010", {"GET", "/a?b=1", 200, 0.010});
  ExpectRequest(*parser, "GET /a 502 0.010, 0.020 : 0.005", {"GET", "/a", 502, 0.035});
  ExpectRequest(*parser, "GET /a 499 -", {"GET", "/a", 499, -1});
  // $request_time, when present, is preferred over the upstream time.
  auto both = Parser(
      R"({path: /l, format: nginx, nginx: {log_format: '"$request" $status $upstream_response_time $request_time'}})");
  ExpectRequest(*both, R"("GET /x HTTP/1.1" 200 0.1 0.2)", {"GET", "/x", 200, 0.2});
}

TEST(RegexParser, NamedGroups) {
  auto parser = Parser(
      R"({path: /l, format: regex, regex: {pattern: '^(?P<method>\w+) (?P<path>\S+) -> (?P<status>\d+) in (?P<duration>[\d.]+)ms$', duration_unit: ms}})");
  ExpectRequest(*parser, "PATCH /v1/x -> 200 in 7.5ms", {"PATCH", "/v1/x", 200, 0.0075});
  EXPECT_EQ(Reject(*parser, "something else"), ParseError::kNotAccessLine);
  EXPECT_EQ(Reject(*parser, "something GET /a else"), ParseError::kNoMatch);
  EXPECT_EQ(Reject(*parser, "GET /v1/x -> 700 in 1ms"), ParseError::kInvalidStatus);
}

TEST(LogFormatConfig, UnusableFormatsAreConfigErrors) {
  const auto result = config::ParseConfig(R"(services:
  - name: s
    access_logs:
      - path: /l
        format: nginx
        nginx: {log_format: '$remote_addr $request_time'}
      - path: /l
        format: gunicorn
        gunicorn: {log_format: '%(r)s%(s)s'}
      - path: relative.log
        format: regex
        regex: {pattern: '(?P<method>\w+)'}
      - path: /l
        format: json
        nginx: {log_format: combined}
)");
  ASSERT_EQ(result.errors.size(), 6u);
  EXPECT_EQ(result.errors[0].key, "services[0].access_logs[0].nginx.log_format");
  EXPECT_EQ(result.errors[0].message, "the format has no status field");
  EXPECT_EQ(result.errors[1].key, "services[0].access_logs[1].gunicorn.log_format");
  EXPECT_EQ(result.errors[2].key, "services[0].access_logs[2].path");
  EXPECT_EQ(result.errors[3].key, "services[0].access_logs[2].regex.pattern");
  EXPECT_EQ(result.errors[3].message, "the pattern needs a named group (?P<path>...)");
  EXPECT_EQ(result.errors[5].key, "services[0].access_logs[3].nginx");
  EXPECT_EQ(result.errors[5].position.line, 15);
}

}  // namespace
}  // namespace fastapi_exporter::access_log
