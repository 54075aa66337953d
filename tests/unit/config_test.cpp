#include "config/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/listen_address.hpp"
#include "config/schema_reader.hpp"

namespace fastapi_exporter::config {
namespace {

using ::testing::HasSubstr;

// The one error of a file that should have exactly one.
ConfigError OnlyError(const std::string& yaml) {
  const LoadResult result = ParseConfig(yaml);
  EXPECT_EQ(result.errors.size(), 1u) << yaml;
  if (result.errors.empty()) return {};
  return result.errors.front();
}

TEST(Config, ReadsEverySelectorAndDefaults) {
  const LoadResult result = ParseConfig(R"(
web:
  listen_address: "127.0.0.1:9999"
services:
  - name: fastapi-backend
    process:
      pidfile: /run/fastapi/app.pid
      pid: 1234
      systemd_unit: fastapi.service
      cmdline: 'uvicorn main:app'
      comm: uvicorn
      children: false
  - name: other
    process:
      comm: gunicorn
)");
  ASSERT_TRUE(result.ok()) << FormatError("test", result.errors.front());
  const Config& config = result.config;
  EXPECT_EQ(config.web.listen_address, "127.0.0.1:9999");
  EXPECT_EQ(config.web.telemetry_path, "/metrics");
  ASSERT_EQ(config.services.size(), 2u);
  const ProcessSelector& process = config.services[0].process;
  EXPECT_EQ(config.services[0].name, "fastapi-backend");
  EXPECT_EQ(process.pidfile, "/run/fastapi/app.pid");
  EXPECT_EQ(process.pid, 1234);
  EXPECT_EQ(process.systemd_unit, "fastapi.service");
  EXPECT_EQ(process.cmdline, "uvicorn main:app");
  EXPECT_EQ(process.comm, "uvicorn");
  EXPECT_FALSE(process.children);
  EXPECT_TRUE(config.services[1].process.children);  // the default
  EXPECT_EQ(config.services[1].position.line, 13);
}

TEST(Config, EmptyFileIsAllDefaults) {
  const LoadResult result = ParseConfig("");
  EXPECT_TRUE(result.ok());
  EXPECT_EQ(result.config.web.listen_address, ":9869");
  EXPECT_TRUE(result.config.services.empty());
}

TEST(Config, UnknownKeyNamesKeyAndLine) {
  const LoadResult result = ParseConfig("services:\n  - name: a\n    process:\n      pidfle: /x\n");
  // The typo leaves the service without a selector, which is reported second.
  ASSERT_EQ(result.errors.size(), 2u);
  EXPECT_EQ(result.errors[1].key, "services[0].process");
  const ConfigError& error = result.errors[0];
  EXPECT_EQ(error.key, "services[0].process.pidfle");
  EXPECT_EQ(error.position.line, 4);
  EXPECT_EQ(error.position.column, 7);
  EXPECT_THAT(error.message, HasSubstr("unknown key"));
  EXPECT_THAT(error.message, HasSubstr("pidfile"));  // lists what is expected
}

TEST(Config, PidSelfNamesTheExportersOwnProcess) {
  const LoadResult result =
      ParseConfig("services:\n  - name: exporter\n    process:\n      pid: self\n");
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result.config.services[0].process.pid_self);
  EXPECT_FALSE(result.config.services[0].process.pid);
  EXPECT_FALSE(result.config.services[0].process.empty());

  const ConfigError error = OnlyError("services:\n  - name: a\n    process:\n      pid: Self\n");
  EXPECT_EQ(error.key, "services[0].process.pid");
  EXPECT_EQ(error.position.line, 4);
  EXPECT_EQ(error.message, "must be a PID or self, got 'Self'");
}

TEST(Config, WrongTypes) {
  ConfigError error = OnlyError("services:\n  - name: a\n    process:\n      pid: abc\n");
  EXPECT_EQ(error.key, "services[0].process.pid");
  EXPECT_EQ(error.position.line, 4);
  EXPECT_EQ(error.message, "must be a PID or self, got 'abc'");

  error = OnlyError("services:\n  - name: a\n    process:\n      comm: x\n      children: maybe\n");
  EXPECT_EQ(error.key, "services[0].process.children");
  EXPECT_EQ(error.position.line, 5);

  error = OnlyError("services: {name: a}\n");
  EXPECT_EQ(error.key, "services");
  EXPECT_THAT(error.message, HasSubstr("must be a list"));

  error = OnlyError("web:\n  listen_address: [1, 2]\n");
  EXPECT_EQ(error.key, "web.listen_address");
  EXPECT_THAT(error.message, HasSubstr("must be a string, got a list"));
}

TEST(Config, BadRegex) {
  const ConfigError error =
      OnlyError("services:\n  - name: a\n    process:\n      cmdline: 'uvicorn (main'\n");
  EXPECT_EQ(error.key, "services[0].process.cmdline");
  EXPECT_EQ(error.position.line, 4);
  EXPECT_THAT(error.message, HasSubstr("invalid regex"));
  EXPECT_THAT(error.message, HasSubstr("missing )"));
}

TEST(Config, DuplicateServiceNames) {
  const ConfigError error = OnlyError(
      "services:\n  - name: api\n    process: {comm: a}\n  - name: api\n    process: {comm: b}\n");
  EXPECT_EQ(error.key, "services[1].name");
  EXPECT_EQ(error.position.line, 4);
  EXPECT_THAT(error.message, HasSubstr("duplicate service name 'api'"));
}

TEST(Config, ServiceWithoutSelector) {
  ConfigError error = OnlyError("services:\n  - name: api\n    process:\n      children: true\n");
  EXPECT_EQ(error.key, "services[0].process");
  EXPECT_EQ(error.position.line, 3);
  EXPECT_THAT(error.message, HasSubstr("at least one selector"));

  error = OnlyError("services:\n  - name: api\n");
  EXPECT_EQ(error.key, "services[0].process");
  EXPECT_EQ(error.position.line, 2);
}

TEST(Config, MissingNameAndRepeatedKey) {
  EXPECT_EQ(OnlyError("services:\n  - process: {comm: a}\n").key, "services[0].name");
  const ConfigError error = OnlyError("web:\n  telemetry_path: /a\n  telemetry_path: /b\n");
  EXPECT_EQ(error.key, "web.telemetry_path");
  EXPECT_EQ(error.position.line, 3);
  EXPECT_THAT(error.message, HasSubstr("more than once"));
}

TEST(Config, EveryProblemIsReportedNotJustTheFirst) {
  const LoadResult result = ParseConfig(R"(web:
  listen_address: "nonsense"
  telemetry_path: metrics
services:
  - name: a
    process: {pid: -3}
  - name: b
    process: {comm: this-name-is-far-too-long}
  - name: c
    process: {systemd_unit: ../../etc}
)");
  ASSERT_EQ(result.errors.size(), 5u);
  EXPECT_EQ(result.errors[0].key, "web.listen_address");
  EXPECT_EQ(result.errors[1].key, "web.telemetry_path");
  EXPECT_EQ(result.errors[2].key, "services[0].process.pid");
  EXPECT_EQ(result.errors[3].key, "services[1].process.comm");
  EXPECT_THAT(result.errors[3].message, HasSubstr("15 characters"));
  EXPECT_EQ(result.errors[4].key, "services[2].process.systemd_unit");
  EXPECT_EQ(result.errors[4].position.line, 10);
}

TEST(Config, InvalidYamlNamesTheLine) {
  const ConfigError error = OnlyError("services:\n  - name: a\n    process: {comm: [x\n");
  EXPECT_THAT(error.message, HasSubstr("invalid YAML"));
  EXPECT_GE(error.position.line, 3);
  EXPECT_EQ(FormatError("c.yaml", {"services[0].name", {3, 5}, "boom"}),
            "c.yaml:3:5: services[0].name: boom");
}

TEST(Config, MisindentedYamlSaysSoWithTheLine) {
  // A key indented one space short of its siblings, as a hand edit leaves it.
  const ConfigError sequence = OnlyError(
      "services:\n  - name: api\n    access_logs:\n     - path: /x.log\n       format: json\n"
      "   routes: []\n");
  EXPECT_EQ(sequence.position.line, 6);
  EXPECT_THAT(sequence.message, HasSubstr("indented by 3 space(s)"));
  const ConfigError map = OnlyError("web:\n  listen_address: ':9869'\n   telemetry_path: /m\n");
  EXPECT_EQ(map.position.line, 3);
  EXPECT_THAT(map.message, HasSubstr("indented by 3 space(s)"));
  const ConfigError tab = OnlyError("services:\n  - name: api\n\taccess_logs: []\n");
  EXPECT_EQ(tab.position.line, 3);
  EXPECT_THAT(tab.message, HasSubstr("tab"));
}

TEST(Config, AnUnquotedRouteInAFlowListSaysToQuoteItOnOneLineOrSeveral) {
  const char* const kUnquoted[] = {
      "services:\n  - name: api\n    routes: [/api/users/{user_id}]\n",
      "services:\n  - name: api\n    routes: ['/a', /api/users/{user_id}, /b]\n",
      "services:\n  - name: api\n    routes: [\n      '/api/items',\n"
      "      /api/users/{user_id},\n    ]\n",
  };
  for (const char* text : kUnquoted) {
    EXPECT_THAT(OnlyError(text).message, HasSubstr("quote each one in a [...] list")) << text;
  }
  // Quoted templates (one containing a quote-like "it's" before them) and braces outside a
  // list are not this mistake.
  EXPECT_FALSE(UnquotedRouteInFlowList("name: it's\nroutes: ['/a/{x}', \"/b/{y}\"]\n"));
  EXPECT_FALSE(UnquotedRouteInFlowList("routes: ['/a'] # [/b/{x}\nx: /c/{y}\n"));
  EXPECT_TRUE(UnquotedRouteInFlowList("name: it's\nroutes: ['/a', /b/{y}"));
}

TEST(Config, UnreadableFile) {
  const LoadResult result = LoadConfigFile("/nonexistent/config.yaml");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_THAT(result.errors[0].message, HasSubstr("No such file"));
  const LoadResult directory = LoadConfigFile("/tmp");
  ASSERT_EQ(directory.errors.size(), 1u);
  EXPECT_THAT(directory.errors[0].message, HasSubstr("Is a directory"));
}

TEST(ListenAddress, Forms) {
  EXPECT_EQ(ParseListenAddress(":9869")->port, 9869);
  EXPECT_EQ(ParseListenAddress(":9869")->host, "");
  EXPECT_EQ(ParseListenAddress("127.0.0.1:80")->host, "127.0.0.1");
  EXPECT_EQ(ParseListenAddress("[::1]:9869")->host, "::1");
  EXPECT_EQ(ParseListenAddress("localhost:1")->host, "localhost");
  std::string problem;
  EXPECT_FALSE(ParseListenAddress("9869", &problem));
  EXPECT_THAT(problem, HasSubstr("missing ':port'"));
  EXPECT_FALSE(ParseListenAddress(":99999"));
  EXPECT_FALSE(ParseListenAddress(":http"));
  EXPECT_FALSE(ParseListenAddress("::1:9869", &problem));
  EXPECT_THAT(problem, HasSubstr("brackets"));
}

TEST(Config, ReadsJournalSources) {
  const LoadResult result = ParseConfig(R"(
services:
  - name: api
    process: {systemd_unit: fastapi.service}
    access_logs:
      - journal: {unit: fastapi}
        format: uvicorn
      - journal:
          syslog_identifier: gunicorn
          match: [_SYSTEMD_UNIT=a.service, _TRANSPORT=stdout]
          path: [/var/log/journal/x/system.journal, /tmp/y.journal]
        start_at: beginning
      - journal: {unit: web.socket, path: /var/log/journal}
)");
  ASSERT_TRUE(result.ok()) << FormatError("test", result.errors.front());
  const auto& logs = result.config.services[0].access_logs;
  ASSERT_EQ(logs.size(), 3u);
  ASSERT_TRUE(logs[0].journal);
  EXPECT_EQ(logs[0].path, "");
  EXPECT_EQ(logs[0].journal->matches, std::vector<std::string>{"_SYSTEMD_UNIT=fastapi.service"});
  EXPECT_TRUE(logs[0].journal->paths.empty());
  EXPECT_EQ(SourceName(logs[0]), "journal:_SYSTEMD_UNIT=fastapi.service");
  EXPECT_EQ(logs[1].journal->matches,
            (std::vector<std::string>{"SYSLOG_IDENTIFIER=gunicorn", "_SYSTEMD_UNIT=a.service",
                                      "_TRANSPORT=stdout"}));
  EXPECT_EQ(logs[1].journal->paths.size(), 2u);
  EXPECT_EQ(logs[1].start_at, StartAt::kBeginning);
  EXPECT_EQ(logs[2].journal->paths, std::vector<std::string>{"/var/log/journal"});
  EXPECT_EQ(SourceName(logs[2]), "journal:_SYSTEMD_UNIT=web.socket /var/log/journal");
}

TEST(Config, RejectsBrokenJournalSources) {
  const std::string head = "services:\n  - name: api\n    process: {comm: x}\n    access_logs:\n";
  struct Case {
    std::string entry;
    std::string key;
    int line;
    std::string says;
  } cases[] = {
      {"      - journal: {}\n", "services[0].access_logs[0].journal", 5, "give unit"},
      {"      - journal: {match: [lower=x]}\n", "services[0].access_logs[0].journal.match[0]", 5,
       "FIELD=value"},
      {"      - journal: {unit: a/b}\n", "services[0].access_logs[0].journal.unit", 5,
       "not a path"},
      {"      - journal: {unit: a, path: relative}\n", "services[0].access_logs[0].journal.path", 5,
       "absolute"},
      {"      - journal: {unit: a, units: b}\n", "services[0].access_logs[0].journal.units", 5,
       "unknown key"},
      {"      - path: /x.log\n        journal: {unit: a}\n", "services[0].access_logs[0].journal",
       6, "not both"},
      {"      - journal: {unit: a}\n        envelope: docker\n",
       "services[0].access_logs[0].envelope", 6, "does not apply"},
  };
  for (const auto& c : cases) {
    const ConfigError error = OnlyError(head + c.entry);
    EXPECT_EQ(error.key, c.key) << c.entry;
    EXPECT_EQ(error.position.line, c.line) << c.entry;
    EXPECT_THAT(error.message, HasSubstr(c.says)) << c.entry;
  }
}

}  // namespace
}  // namespace fastapi_exporter::config
