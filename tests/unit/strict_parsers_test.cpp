// What the first fuzzing pass found (issue #17), each a unit test with the right value:
// a line's result is a function of that line alone, invalid JSON is rejected wherever the
// damage is, every format checks method and target alike, and the config refuses what could
// never work or would take unbounded work to read.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "collectors/access_log/ansi.hpp"
#include "collectors/access_log/config_translation.hpp"
#include "collectors/access_log/envelope.hpp"
#include "collectors/access_log/route_normalizer.hpp"
#include "config/config.hpp"

namespace fastapi_exporter::access_log {
namespace {

using ::testing::HasSubstr;

config::AccessLogConfig LogConfig(const std::string& yaml_log) {
  const auto loaded =
      config::ParseConfig("services:\n  - name: s\n    access_logs:\n      - " + yaml_log + "\n");
  EXPECT_TRUE(loaded.ok()) << (loaded.ok() ? "" : loaded.errors[0].message);
  return loaded.config.services.at(0).access_logs.at(0);
}

ParseError ParseFresh(const config::AccessLogConfig& log, std::string_view line) {
  ParsedRequest request;
  return MakeLineParser(log)->Parse(line, request);
}

// Lines that once changed the answer for the line after them, and lines broken in places a
// reader might not look: every ordered pair is parsed by one parser, and the second answer
// must be the fresh one.
const std::vector<std::string> kOddJsonLines = {
    R"("      }          ")",
    R"({"":}})",
    R"({"method":"GET","endpoint":"/a","status_code":200,"x":}})",
    R"({"method":"GET","endpoint":"/a","status_code":200,"duration_ms":12,"y":[1,}})",
    R"({"method":"GET","endpoint":"/a","status_code":200})",
    R"({"method":"GET","endpoint":"/a","status_code":200,"x":"\ud800"})",
    std::string(R"({"method":"GET","endpoint":"/a","status_code":200,"x":")") + "\xc3\x28\"}",
    R"({"method":"GET","endpoint":"/a","status_code":200}})",
    R"({"method":"GET","endpoint":"/a","status_code":200,"x":tru})",
    R"({"method":"GET","endpoint":"/a","status_code":200,"x":01})",
    R"({"method":"GET","endpoint":"/a","status_code":200,"x":"a)",
    std::string(200, ' ') + "{}" + std::string(100, ']'),
    "{",
    "",
};

TEST(StrictJson, AnswerDependsOnTheLineAlone) {
  const auto log = LogConfig("{path: /l, format: json}");
  EXPECT_EQ(ParseFresh(log, R"({"":}})"), ParseError::kInvalidJson);
  for (const std::string& before : kOddJsonLines) {
    for (const std::string& line : kOddJsonLines) {
      auto parser = MakeLineParser(log);
      ParsedRequest request;
      parser->Parse(before, request);
      EXPECT_EQ(parser->Parse(line, request), ParseFresh(log, line))
          << "line '" << line << "' after '" << before << "'";
    }
  }
}

TEST(StrictJson, BrokenAnywhereIsInvalidJson) {
  const auto log = LogConfig("{path: /l, format: json}");
  for (const char* line : {R"({"method":"GET","endpoint":"/a","status_code":200,"x":}})",
                           R"({"x":}},"method":"GET","endpoint":"/a","status_code":200})",
                           R"({"method":"GET","endpoint":"/a","status_code":200,"y":[1,}})",
                           R"({"method":"GET","endpoint":"/a","status_code":200,"x":{"a" 1}})",
                           R"({"method":"GET","endpoint":"/a","status_code":200,"x":tru})",
                           R"({"method":"GET","endpoint":"/a","status_code":200,"x":01})",
                           R"({"method":"GET","endpoint":"/a","status_code":200,"x":"\q"})",
                           R"({"method":"GET","endpoint":"/a","status_code":200,"x":"\ud800"})"}) {
    EXPECT_EQ(ParseFresh(log, line), ParseError::kInvalidJson) << line;
  }
  // Invalid UTF-8 in a key and in a value nobody reads.
  EXPECT_EQ(ParseFresh(log,
                       "{\"method\":\"GET\",\"endpoint\":\"/a\",\"status_code\":200,"
                       "\"\xff\":1}"),
            ParseError::kInvalidJson);
  EXPECT_EQ(ParseFresh(log,
                       "{\"method\":\"GET\",\"endpoint\":\"/a\",\"status_code\":200,"
                       "\"x\":\"\xc3\x28\"}"),
            ParseError::kInvalidJson);
  // The same line, whole, is a request.
  EXPECT_EQ(ParseFresh(log, R"({"method":"GET","endpoint":"/a","status_code":200,"x":null})"),
            ParseError::kNone);
}

TEST(StrictJson, DockerRecordsBrokenAnywhereAreInvalid) {
  using Status = EnvelopeDecoder::Status;
  auto decode = [](std::string_view record) {
    std::string_view line;
    return MakeEnvelopeDecoder(Envelope::kDocker, 1024)->Decode(record, line);
  };
  EXPECT_EQ(decode(R"({"log":"GET / 200\n","stream":"stdout","time":}})"), Status::kInvalid);
  EXPECT_EQ(decode(R"({"time":[,"log":"GET / 200\n","stream":"stdout"})"), Status::kInvalid);
  EXPECT_EQ(decode("{\"log\":\"GET / 200\\n\",\"stream\":\"std\xff\"}"), Status::kInvalid);
  EXPECT_EQ(decode(R"({"log":"GET / 200\n","stream":"stdout","time":"t"})"), Status::kLine);
  // After any record that leaves no partial, a record decodes as it would in a fresh decoder.
  const std::vector<std::string> records = {
      R"({"log":"GET / 200\n","stream":"stdout","time":}})",
      R"("      }          ")",
      R"({"log":"x\n","stream":"stdout","time":"t"})",
      R"({"log":"","stream":"stdout"})",
      R"({"":}})",
      "{",
  };
  for (const std::string& before : records) {
    for (const std::string& record : records) {
      auto decoder = MakeEnvelopeDecoder(Envelope::kDocker, 1024);
      std::string_view line;
      decoder->Decode(before, line);
      if (decoder->HoldsPartial()) continue;
      EXPECT_EQ(decoder->Decode(record, line), decode(record))
          << "record '" << record << "' after '" << before << "'";
    }
  }
}

TEST(StrictRequests, EveryFormatRejectsEmptyOrNonHttpMethodsAndEmptyTargets) {
  const auto json = LogConfig("{path: /l, format: json}");
  EXPECT_EQ(ParseFresh(json, R"({"method":"","endpoint":"/a","status_code":200})"),
            ParseError::kMissingField);
  EXPECT_EQ(ParseFresh(json, R"({"method":"GET","endpoint":"","status_code":200})"),
            ParseError::kMissingField);
  EXPECT_EQ(ParseFresh(json, R"({"method":"get","endpoint":"/a","status_code":200})"),
            ParseError::kInvalidRequestLine);
  EXPECT_EQ(ParseFresh(json, R"({"method":"G T","endpoint":"/a","status_code":200})"),
            ParseError::kInvalidRequestLine);

  const auto nginx =
      LogConfig("{path: /l, format: nginx, nginx: {log_format: '$request_method $uri $status'}}");
  EXPECT_EQ(ParseFresh(nginx, "GET /a 200"), ParseError::kNone);
  EXPECT_EQ(ParseFresh(nginx, "get /a 200"), ParseError::kInvalidRequestLine);
  EXPECT_EQ(ParseFresh(nginx, "- /a 200"), ParseError::kInvalidRequestLine);

  const auto regex = LogConfig(
      R"({path: /l, format: regex, regex: {pattern: '^(?P<method>\S*) (?P<path>\S*) (?P<status>\d+)'}})");
  EXPECT_EQ(ParseFresh(regex, "GET /a 200"), ParseError::kNone);
  EXPECT_EQ(ParseFresh(regex, " /a 200"), ParseError::kMissingField);
  EXPECT_EQ(ParseFresh(regex, "GET  200"), ParseError::kMissingField);
  EXPECT_EQ(ParseFresh(regex, "get /a 200"), ParseError::kInvalidRequestLine);

  const auto uvicorn = LogConfig("{path: /l, format: uvicorn}");
  EXPECT_EQ(ParseFresh(uvicorn, R"(INFO:     1.2.3.4:5 - "get /a HTTP/1.1" 200 OK)"),
            ParseError::kInvalidRequestLine);
}

config::LoadResult LoadOneLog(const std::string& log_yaml) {
  return config::ParseConfig("services:\n  - name: s\n    access_logs:\n      - " + log_yaml +
                             "\n");
}

TEST(StrictConfig, FormatOptionsWithoutTheFormatsKey) {
  const auto regex = LoadOneLog("{path: /l, format: regex, regex: {duration_unit: ms}}");
  ASSERT_EQ(regex.errors.size(), 1u);
  EXPECT_EQ(regex.errors[0].key, "services[0].access_logs[0].regex.pattern");
  EXPECT_EQ(regex.errors[0].position.line, 4);
  EXPECT_THAT(regex.errors[0].message, HasSubstr("missing"));
  const auto no_options = LoadOneLog("{path: /l, format: regex}");
  ASSERT_EQ(no_options.errors.size(), 1u);
  EXPECT_EQ(no_options.errors[0].key, "services[0].access_logs[0].regex.pattern");

  // nginx: {} and gunicorn: {} mean the documented defaults, as leaving them out does.
  const auto nginx = LogConfig("{path: /l, format: nginx, nginx: {}}");
  EXPECT_EQ(ParseFresh(nginx, R"(1.2.3.4 - - [14/Jun/2026:15:58:13 -0400] "GET /a HTTP/1.1" )"
                              R"(200 5 "-" "curl/8.0")"),
            ParseError::kNone);
  const auto gunicorn = LogConfig("{path: /l, format: gunicorn, gunicorn: {}}");
  EXPECT_EQ(ParseFresh(gunicorn, R"(1.2.3.4 - - [27/Nov/2026:10:00:00 +0000] "GET /a HTTP/1.1" )"
                                 R"(200 5 "-" "curl/8.0")"),
            ParseError::kNone);
  // A log_format that is there but invalid stays an error; it does not fall back.
  const auto broken = LoadOneLog("{path: /l, format: nginx, nginx: {log_format: '$status'}}");
  ASSERT_EQ(broken.errors.size(), 1u);
  EXPECT_EQ(broken.errors[0].key, "services[0].access_logs[0].nginx.log_format");
}

TEST(StrictConfig, RoutesThatCanNeverMatchAreRejectedWithTheReason) {
  struct Case {
    std::string route;
    std::string reason;
  };
  for (const Case& c : std::vector<Case>{
           {"/a?b", "query string"},
           {"/a#b", "fragment"},
           {"/a%7Eb", "write '~' rather than '%7E'"},
           {"/a%2fb", "write '%2F' rather than '%2f'"},
           {"/a%zz", "two hex digits"},
           {"/a%2", "two hex digits"},
           {"/a\tb", "control character"},
           {"/a\xff", "UTF-8"},
           {"/users/{user-id}", "not an identifier"},
       }) {
    const auto result = config::ParseConfig(
        "services:\n  - name: s\n    process: {pid: 1}\n    routes: ['" + c.route + "']\n");
    ASSERT_EQ(result.errors.size(), 1u) << c.route;
    EXPECT_EQ(result.errors[0].key, "services[0].routes[0]");
    EXPECT_EQ(result.errors[0].position.line, 4);
    EXPECT_THAT(result.errors[0].message, HasSubstr(c.reason)) << c.route;
  }
  // What is kept encoded, in upper case, is a route that matches.
  const auto ok = config::ParseConfig(
      "services:\n  - name: s\n    process: {pid: 1}\n    routes: ['/a%2Fb/{id}']\n");
  ASSERT_TRUE(ok.ok()) << ok.errors[0].message;
  RouteNormalizer normalizer(ok.config.services[0].routes, {}, 10);
  const auto result = normalizer.Normalize("/a%2fb/7?x=1");
  EXPECT_EQ(normalizer.PathLabel(result.path_id), "/a%2Fb/{id}");
}

TEST(StrictConfig, ExcludePathsThatCanNeverMatchAreRejected) {
  const auto result = config::ParseConfig(
      "services:\n  - name: s\n    process: {pid: 1}\n"
      "    exclude_paths: [/health, 'health', '/health?full=1', '/%7Eadmin']\n");
  ASSERT_EQ(result.errors.size(), 3u);
  EXPECT_EQ(result.errors[0].key, "services[0].exclude_paths[1]");
  EXPECT_THAT(result.errors[0].message, HasSubstr("must start with '/'"));
  EXPECT_EQ(result.errors[1].key, "services[0].exclude_paths[2]");
  EXPECT_THAT(result.errors[1].message, HasSubstr("query string"));
  EXPECT_EQ(result.errors[2].key, "services[0].exclude_paths[3]");
  EXPECT_EQ(result.errors[2].position.line, 4);
}

// A file of under 20 KB whose aliases name 4 million access logs.
std::string AliasBomb(int logs, int services) {
  std::string text =
      "e: &e {path: /var/log/a.log, format: regex, regex: {pattern: "
      "'(?P<method>x)(?P<path>y)(?P<status>z)'}}\nl: &l [";
  for (int i = 0; i < logs; ++i) text += i ? ",*e" : "*e";
  text += "]\ns: &s {name: a, access_logs: *l, routes: [/a]}\nservices: [";
  for (int i = 0; i < services; ++i) text += i ? ",*s" : "*s";
  text += "]\n";
  return text;
}

TEST(StrictConfig, AliasesThatMultiplyAreRefusedBeforeAnyPerEntryWork) {
  const std::string text = AliasBomb(4000, 1000);
  EXPECT_LT(text.size(), 21000u);
  const auto start = std::chrono::steady_clock::now();
  const auto result = config::ParseConfig(text);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // The old loader took 51 s here; this bound only tells a hang from an answer.
  EXPECT_LT(seconds, 30.0);
  EXPECT_TRUE(result.config.services.empty());
  bool named = false;
  for (const auto& error : result.errors) {
    if (error.key == "services[*].access_logs") {
      named = true;
      EXPECT_THAT(error.message, HasSubstr("4000000"));
      EXPECT_THAT(error.message, HasSubstr("at most 1000"));
      EXPECT_EQ(error.position.line, 4);
    }
  }
  EXPECT_TRUE(named);
  // Too many services is refused the same way.
  const auto services = config::ParseConfig(AliasBomb(1, 1001));
  ASSERT_FALSE(services.ok());
  EXPECT_TRUE(services.config.services.empty());
  EXPECT_THAT(services.errors.back().message, HasSubstr("too many services: 1001, at most 1000"));
  // Under the limits, the same shape is read entry by entry.
  const auto small = config::ParseConfig(AliasBomb(3, 3));
  EXPECT_EQ(small.config.services.size(), 3u);
  EXPECT_EQ(small.config.services[0].access_logs.size(), 3u);
}

}  // namespace
}  // namespace fastapi_exporter::access_log

namespace fastapi_exporter::access_log {
namespace {

TEST(RealWorldLines, TerminalEscapesAreRemovedWhereverTheyAre) {
  std::string scratch;
  EXPECT_EQ(StripAnsiEscapes("plain", scratch), "plain");
  EXPECT_EQ(StripAnsiEscapes("\x1b[32mINFO\x1b[0m: \"\x1b[1mGET / HTTP/1.1\x1b[0m\" \x1b[32m200",
                             scratch),
            "INFO: \"GET / HTTP/1.1\" 200");
  EXPECT_EQ(StripAnsiEscapes("\x1b[38;5;196mred\x1b[39m", scratch), "red");  // 256 colours
  EXPECT_EQ(StripAnsiEscapes("a\x1b[2Kb\x1b[1;1Hc", scratch), "abc");        // other CSI
  EXPECT_EQ(StripAnsiEscapes("a\x1b"
                             "Mb",
                             scratch),
            "ab");                                          // ESC Fe
  EXPECT_EQ(StripAnsiEscapes("end\x1b[", scratch), "end");  // cut short
  EXPECT_EQ(StripAnsiEscapes("end\x1b", scratch), "end");
  EXPECT_EQ(StripAnsiEscapes("\x1b[0m", scratch), "");
}

TEST(RealWorldLines, RequestLinesKeepSpacesInTheTarget) {
  ParsedRequest out;
  ASSERT_TRUE(SplitRequestLine("GET /index.php?x=a b HTTP/1.1", out));
  EXPECT_EQ(out.method, "GET");
  EXPECT_EQ(out.target, "/index.php?x=a b");
  ASSERT_TRUE(SplitRequestLine("GET /a  b HTTP/2.0", out));
  EXPECT_EQ(out.target, "/a  b");
  ASSERT_TRUE(SplitRequestLine("GET /a b", out));  // HTTP/0.9: no protocol
  EXPECT_EQ(out.target, "/a b");
  EXPECT_FALSE(SplitRequestLine("GET  HTTP/1.1", out));
  EXPECT_FALSE(SplitRequestLine("GET /a  HTTP/1.1", out));  // a target ending in a space
  EXPECT_FALSE(SplitRequestLine("get /a HTTP/1.1", out));
  EXPECT_FALSE(SplitRequestLine("GET", out));
}

TEST(RealWorldLines, DurationFieldsAsLogsWriteThem) {
  struct Case {
    std::string text;
    bool has;
    bool invalid;
    double seconds;
  };
  for (const Case& c : std::vector<Case>{{"", false, false, 0},
                                         {"-", false, false, 0},
                                         {"0.25", true, false, 0.25},
                                         {" 0.25 ", true, false, 0.25},
                                         {"0.010, 0.020 : 0.005", true, false, 0.035},
                                         {"-, 0.5", true, false, 0.5},
                                         {"-, -", false, false, 0},
                                         {"fast", false, true, 0},
                                         {"-1", false, true, 0},
                                         {"0.1, x", false, true, 0},
                                         {"1e9", false, true, 0}}) {
    ParsedRequest out;
    ReadDurationField(c.text, 1.0, out);
    EXPECT_EQ(out.has_duration, c.has) << c.text;
    EXPECT_EQ(out.duration_invalid, c.invalid) << c.text;
    if (c.has) {
      EXPECT_NEAR(out.duration_seconds, c.seconds, 1e-12) << c.text;
    }
  }
}

TEST(RealWorldLines, BacktrackingIsBoundedOnHostileLines) {
  const auto log = LogConfig(
      "{path: /l, format: nginx, nginx: {log_format: '$request_method $uri $a $b $c $d $status'}}");
  // Every split is tried in a well-formed line; a line of many spaces and no status gives up
  // within the step bound and says no_match or not_access_line, never hangs.
  EXPECT_EQ(ParseFresh(LogConfig("{path: /l, format: nginx, nginx: {log_format: "
                                 "'$request_method $uri $a $b $c $status'}}"),
                       "GET /x a b c d e f 200"),
            ParseError::kNone);
  const std::string hostile = "GET /" + std::string(5000, ' ') + "x";
  const ParseError error = ParseFresh(log, hostile);
  EXPECT_TRUE(error == ParseError::kNoMatch || error == ParseError::kInvalidStatus)
      << ParseErrorName(error);
}

TEST(RealWorldLines, NotAccessLinesAreToldFromBrokenAccessLines) {
  EXPECT_FALSE(LooksLikeAccessLine("INFO:     Started server process [1]"));
  EXPECT_FALSE(LooksLikeAccessLine("WARNING:  Invalid HTTP request received."));
  EXPECT_FALSE(LooksLikeAccessLine("aGET /x"));
  EXPECT_TRUE(LooksLikeAccessLine("\"GET /x HTTP/1.1\""));
  EXPECT_TRUE(LooksLikeAccessLine("POST http://h/x"));
  EXPECT_TRUE(LooksLikeAccessLine("OPTIONS * HTTP/1.1"));
}

}  // namespace
}  // namespace fastapi_exporter::access_log
