#include "config/config.hpp"

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>
#include <string_view>

#include "config/listen_address.hpp"
#include "config/schema_reader.hpp"

namespace fastapi_exporter::config {
namespace {

void ReadWeb(SchemaReader& reader, const SchemaReader::Entry& web_entry, WebConfig& web) {
  auto entries =
      reader.Mapping(web_entry.value, web_entry.key, "web", {"listen_address", "telemetry_path"});
  if (!entries) return;
  for (const auto& [name, entry] : *entries) {
    const std::string path = "web." + name;
    if (name == "listen_address") {
      if (auto value = reader.NonEmptyString(entry, path)) {
        std::string problem;
        if (!ParseListenAddress(*value, &problem)) {
          reader.Error(entry.key, path, problem);
        } else {
          web.listen_address = *value;
        }
      }
    } else if (name == "telemetry_path") {
      if (auto value = reader.NonEmptyString(entry, path)) {
        if ((*value)[0] != '/') {
          reader.Error(entry.key, path, "must start with '/'");
        } else {
          web.telemetry_path = *value;
        }
      }
    }
  }
}

// Returns false when the mapping names no selector at all (an invalid one still counts as
// named: its own error is enough).
bool ReadProcessSelector(SchemaReader& reader, const SchemaReader::Entry& process_entry,
                         const std::string& path, ProcessSelector& selector) {
  auto entries = reader.Mapping(process_entry.value, process_entry.key, path,
                                {"pidfile", "pid", "systemd_unit", "cmdline", "comm", "children"});
  if (!entries) return true;  // not a mapping: already reported
  bool names_a_selector = false;
  for (const auto& [name, entry] : *entries) {
    names_a_selector |= name != "children";
    const std::string key_path = path + "." + name;
    if (name == "pidfile") {
      selector.pidfile = reader.NonEmptyString(entry, key_path);
    } else if (name == "pid") {
      // "self" names the exporter's own process, so that it can watch itself without a
      // cmdline pattern that also matches every other exporter on the machine.
      long long number = 0;
      if (entry.value.IsScalar() && entry.value.Scalar() == "self") {
        selector.pid_self = true;
      } else if (entry.value.IsScalar() && !YAML::convert<long long>::decode(entry.value, number)) {
        reader.Error(entry.key, key_path,
                     "must be a PID or self, got '" + entry.value.Scalar() + "'");
      } else if (auto pid = reader.Integer(entry, key_path, 1, 4194304)) {
        selector.pid = int(*pid);
      }
    } else if (name == "systemd_unit") {
      auto unit = reader.NonEmptyString(entry, key_path);
      if (unit && unit->find("..") != std::string::npos) {
        reader.Error(entry.key, key_path, "must not contain '..'");
      } else {
        selector.systemd_unit = unit;
      }
    } else if (name == "cmdline") {
      auto pattern = reader.NonEmptyString(entry, key_path);
      if (pattern) {
        RE2 regex(*pattern, RE2::Quiet);
        if (!regex.ok()) {
          reader.Error(entry.key, key_path, "invalid regex: " + regex.error());
          pattern.reset();
        }
      }
      selector.cmdline = pattern;
    } else if (name == "comm") {
      auto comm = reader.NonEmptyString(entry, key_path);
      // The kernel truncates comm to 15 bytes, so a longer value could never match.
      if (comm && comm->size() > 15) {
        reader.Error(entry.key, key_path,
                     "is at most 15 characters (the kernel truncates /proc/PID/comm); "
                     "use cmdline for longer names");
      } else {
        selector.comm = comm;
      }
    } else if (name == "children") {
      if (auto children = reader.Bool(entry, key_path)) selector.children = *children;
    }
  }
  return names_a_selector;
}

const std::vector<std::pair<std::string_view, DurationUnit>> kDurationUnits = {
    {"s", DurationUnit::kSeconds},
    {"ms", DurationUnit::kMilliseconds},
    {"us", DurationUnit::kMicroseconds}};

void ReadJsonFields(SchemaReader& reader, const SchemaReader::Entry& json_entry,
                    const std::string& path, JsonFields& fields) {
  auto entries = reader.Mapping(json_entry.value, json_entry.key, path,
                                {"method", "path", "status", "duration", "duration_unit"});
  if (!entries) return;
  for (const auto& [name, entry] : *entries) {
    const std::string key_path = path + "." + name;
    if (name == "duration_unit") {
      if (auto unit = reader.OneOf(entry, key_path, kDurationUnits)) fields.duration_unit = *unit;
      continue;
    }
    // An empty duration field name means the log carries no duration.
    auto value = name == "duration" ? reader.String(entry, key_path)
                                    : reader.NonEmptyString(entry, key_path);
    if (!value) continue;
    if (name == "method") fields.method = *value;
    if (name == "path") fields.path = *value;
    if (name == "status") fields.status = *value;
    if (name == "duration") fields.duration = *value;
  }
}

// The options of the gunicorn, nginx and regex formats: {log_format: ...} or
// {pattern: ..., duration_unit: ...}. Returns whether the format's own key (log_format or
// pattern) is there, valid or not.
bool ReadFormatOptions(SchemaReader& reader, const SchemaReader::Entry& options_entry,
                       const std::string& path, const std::string& format_name,
                       AccessLogConfig& log) {
  const bool is_regex = format_name == "regex";
  auto entries = is_regex
                     ? reader.Mapping(options_entry.value, options_entry.key, path,
                                      {"pattern", "duration_unit"})
                     : reader.Mapping(options_entry.value, options_entry.key, path, {"log_format"});
  if (!entries) return true;  // not a mapping: already reported
  bool has_key = false;
  for (const auto& [name, entry] : *entries) {
    const std::string key_path = path + "." + name;
    has_key |= name != "duration_unit";
    if (name == "duration_unit") {
      if (auto unit = reader.OneOf(entry, key_path, kDurationUnits))
        log.regex_duration_unit = *unit;
    } else if (auto text = reader.NonEmptyString(entry, key_path)) {
      std::string problem;
      if (name == "pattern") {
        RE2 regex(*text, RE2::Quiet);
        if (!regex.ok()) {
          reader.Error(entry.key, key_path, "invalid regex: " + regex.error());
          continue;
        }
        const auto& groups = regex.NamedCapturingGroups();
        for (const char* needed : {"method", "path", "status"}) {
          if (!groups.contains(needed)) {
            reader.Error(entry.key, key_path,
                         std::string("the pattern needs a named group (?P<") + needed + ">...)");
          }
        }
        log.regex = *text;
      } else {
        auto compiled = format_name == "gunicorn" ? CompileGunicornFormat(*text, &problem)
                                                  : CompileNginxFormat(*text, &problem);
        if (!compiled) {
          reader.Error(entry.key, key_path, problem);
        } else {
          log.field_format = std::move(*compiled);
        }
      }
    }
  }
  return has_key;
}

// journalctl's rule for field names: upper-case letters, digits and '_', not starting with a
// digit, at most 64 bytes (a leading '_' marks the fields the journal itself adds).
bool IsJournalFieldName(std::string_view name) {
  if (name.empty() || name.size() > 64 || (name[0] >= '0' && name[0] <= '9')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::optional<JournalSelector> ReadJournal(SchemaReader& reader, const SchemaReader::Entry& entry,
                                           const std::string& path) {
  auto entries =
      reader.Mapping(entry.value, entry.key, path, {"unit", "syslog_identifier", "match", "path"});
  if (!entries) return std::nullopt;
  JournalSelector journal;
  bool ok = true;
  for (const auto& [name, item] : *entries) {
    const std::string key_path = path + "." + name;
    if (name == "unit") {
      auto unit = reader.NonEmptyString(item, key_path);
      if (unit && unit->find('/') != std::string::npos) {
        reader.Error(item.key, key_path, "must be a unit name, not a path");
        ok = false;
      } else if (unit) {
        // As journalctl -u: a name without a type is a service.
        if (unit->find('.') == std::string::npos) *unit += ".service";
        journal.matches.push_back("_SYSTEMD_UNIT=" + *unit);
      } else {
        ok = false;
      }
    } else if (name == "syslog_identifier") {
      auto identifier = reader.NonEmptyString(item, key_path);
      if (identifier) journal.matches.push_back("SYSLOG_IDENTIFIER=" + *identifier);
      ok = ok && identifier;
    } else if (name == "match") {
      auto matches = reader.StringList(item, key_path);
      if (!matches) {
        ok = false;
        continue;
      }
      for (std::size_t i = 0; i < matches->size(); ++i) {
        const std::string& match = (*matches)[i];
        const std::size_t equals = match.find('=');
        if (equals == std::string::npos || !IsJournalFieldName(match.substr(0, equals))) {
          reader.Error(item.value[i], key_path + "[" + std::to_string(i) + "]",
                       "must be FIELD=value, FIELD in upper-case letters, digits and '_'");
          ok = false;
          continue;
        }
        journal.matches.push_back(match);
      }
    } else if (name == "path") {
      std::optional<std::vector<std::string>> paths;
      if (item.value.IsScalar()) {
        if (auto one = reader.NonEmptyString(item, key_path)) paths.emplace({*one});
      } else {
        paths = reader.StringList(item, key_path);
      }
      if (!paths) {
        ok = false;
        continue;
      }
      for (const auto& one : *paths) {
        if (one.empty() || one[0] != '/') {
          reader.Error(item.key, key_path, "must be absolute paths of journal files or folders");
          ok = false;
          break;
        }
      }
      journal.paths = std::move(*paths);
    }
  }
  if (ok && journal.matches.empty()) {
    // Without a match every entry of the journal would be read as an access line.
    reader.Error(entry.key, path, "give unit, syslog_identifier or match");
    ok = false;
  }
  if (!ok) return std::nullopt;
  return journal;
}

void ReadAccessLogs(SchemaReader& reader, const SchemaReader::Entry& logs_entry,
                    const std::string& path, std::vector<AccessLogConfig>& logs) {
  if (!logs_entry.value.IsSequence()) {
    reader.Error(logs_entry.key, path, "must be a list, got " + TypeName(logs_entry.value));
    return;
  }
  for (std::size_t i = 0; i < logs_entry.value.size(); ++i) {
    const YAML::Node item = logs_entry.value[i];
    const std::string item_path = path + "[" + std::to_string(i) + "]";
    auto entries = reader.Mapping(item, item, item_path,
                                  {"path", "journal", "format", "envelope", "start_at", "json",
                                   "gunicorn", "nginx", "regex"});
    if (!entries) continue;
    AccessLogConfig log;
    log.position = PositionOf(item);
    std::string format_name = "json";
    for (const auto& [name, entry] : *entries) {
      if (name == "format") {
        format_name = entry.value.IsScalar() ? entry.value.Scalar() : "";
        if (auto format = reader.OneOf<LogFormatKind>(entry, item_path + ".format",
                                                      {{"json", LogFormatKind::kJson},
                                                       {"uvicorn", LogFormatKind::kUvicorn},
                                                       {"gunicorn", LogFormatKind::kGunicorn},
                                                       {"nginx", LogFormatKind::kNginx},
                                                       {"regex", LogFormatKind::kRegex}})) {
          log.format = *format;
        }
      }
    }
    bool has_path = false, has_format_key = false;
    for (const auto& [name, entry] : *entries) {
      const std::string key_path = item_path + "." + name;
      if (name == "journal") {
        log.journal = ReadJournal(reader, entry, key_path);
        if (!log.journal) log.journal = JournalSelector{};  // reported; not "missing" too
        if (has_path) reader.Error(entry.key, key_path, "give path or journal, not both");
        has_path = true;
      } else if (name == "path") {
        if (log.journal) reader.Error(entry.key, key_path, "give path or journal, not both");
        has_path = true;
        auto glob = reader.NonEmptyString(entry, key_path);
        if (glob && (*glob)[0] != '/') {
          reader.Error(entry.key, key_path, "must be an absolute path (a glob is allowed)");
        } else if (glob) {
          log.path = *glob;
        }
      } else if (name == "envelope") {
        if (auto envelope = reader.OneOf<Envelope>(entry, key_path,
                                                   {{"none", Envelope::kNone},
                                                    {"docker", Envelope::kDocker},
                                                    {"cri", Envelope::kCri}})) {
          log.envelope = *envelope;
        }
      } else if (name == "start_at") {
        if (auto start = reader.OneOf<StartAt>(
                entry, key_path, {{"end", StartAt::kEnd}, {"beginning", StartAt::kBeginning}})) {
          log.start_at = *start;
        }
      } else if (name == "json" || name == "gunicorn" || name == "nginx" || name == "regex") {
        if (name != format_name) {
          reader.Error(
              entry.key, key_path,
              "options for format '" + name + "', but the format is '" + format_name + "'");
          continue;
        }
        if (name == "json") {
          ReadJsonFields(reader, entry, key_path, log.json);
        } else {
          has_format_key = ReadFormatOptions(reader, entry, key_path, name, log);
        }
      }
    }
    if (!has_path) {
      reader.Error(item, item_path + ".path", "missing: the log file (a glob), or journal");
    }
    if (log.journal && log.envelope != Envelope::kNone) {
      for (const auto& [name, entry] : *entries) {
        if (name == "envelope") {
          reader.Error(entry.key, item_path + ".envelope",
                       "does not apply to journal entries (their MESSAGE is the line)");
        }
      }
    }
    if (format_name == "regex" && !has_format_key) {
      reader.Error(item, item_path + ".regex.pattern",
                   "missing: format regex needs a pattern with the named groups method, path "
                   "and status");
    }
    // Without a log_format, the format's documented default (gunicorn's default
    // access_log_format, nginx's combined).
    if (!has_format_key && (format_name == "gunicorn" || format_name == "nginx")) {
      std::string problem;
      log.field_format =
          *(format_name == "gunicorn" ? CompileGunicornFormat(kGunicornDefaultFormat, &problem)
                                      : CompileNginxFormat(kNginxCombinedFormat, &problem));
    }
    logs.push_back(std::move(log));
  }
}

void ReadRoutes(SchemaReader& reader, const SchemaReader::Entry& entry, const std::string& path,
                std::vector<RouteTemplate>& routes) {
  auto texts = reader.StringList(entry, path);
  if (!texts) return;
  for (std::size_t i = 0; i < texts->size(); ++i) {
    std::string problem;
    if (auto route = ParseRouteTemplate((*texts)[i], &problem)) {
      routes.push_back(std::move(*route));
    } else {
      reader.Error(entry.value[i], path + "[" + std::to_string(i) + "]", problem);
    }
  }
}

// Prometheus' duration syntax, one unit: "30s", "5m", "1h", "500ms".
std::optional<std::chrono::milliseconds> ParseDurationText(const std::string& text) {
  static const RE2 kDuration("([0-9]+)(ms|s|m|h)");
  long long value = 0;
  std::string unit;
  if (!RE2::FullMatch(text, kDuration, &value, &unit) || value > 1000000000) return std::nullopt;
  const long long per = unit == "ms" ? 1 : unit == "s" ? 1000 : unit == "m" ? 60000 : 3600000;
  return std::chrono::milliseconds(value * per);
}

void ReadRoutesFrom(SchemaReader& reader, const SchemaReader::Entry& entry, const std::string& path,
                    std::optional<RoutesFrom>& routes_from) {
  auto entries =
      reader.Mapping(entry.value, entry.key, path, {"openapi_url", "openapi_file", "refresh"});
  if (!entries) return;
  RoutesFrom from;
  from.position = PositionOf(entry.key);
  bool has_source = false;
  for (const auto& [name, item] : *entries) {
    const std::string key_path = path + "." + name;
    if (name == "openapi_url") {
      auto url = reader.NonEmptyString(item, key_path);
      if (url && !(url->starts_with("http://") || url->starts_with("https://"))) {
        reader.Error(item.key, key_path, "must be an http:// or https:// URL");
      } else if (url) {
        from.openapi_url = *url;
      }
      has_source = true;
    } else if (name == "openapi_file") {
      auto file = reader.NonEmptyString(item, key_path);
      if (file && (*file)[0] != '/') {
        reader.Error(item.key, key_path, "must be an absolute path");
      } else if (file) {
        from.openapi_file = *file;
      }
      has_source = true;
    } else if (name == "refresh") {
      auto text = reader.NonEmptyString(item, key_path);
      if (!text) continue;
      const auto refresh = ParseDurationText(*text);
      if (!refresh || *refresh < std::chrono::seconds(1) || *refresh > std::chrono::hours(24)) {
        reader.Error(
            item.key, key_path,
            "must be a duration from 1s to 24h such as 30s, 5m or 1h, got '" + *text + "'");
      } else {
        from.refresh = *refresh;
      }
    }
  }
  bool has_url = false, has_file = false;
  for (const auto& named : *entries) {
    has_url |= named.first == "openapi_url";
    has_file |= named.first == "openapi_file";
  }
  if (has_url && has_file) {
    reader.Error(entry.key, path, "give openapi_url or openapi_file, not both");
  } else if (!has_source) {
    reader.Error(entry.key, path + ".openapi_url",
                 "missing: the service's OpenAPI document (openapi_url or openapi_file)");
  }
  routes_from = from;
}

void ReadWire(SchemaReader& reader, const SchemaReader::Entry& entry, const std::string& path,
              std::optional<WireConfig>& wire) {
  WireConfig config;
  config.position = PositionOf(entry.key);
  if (entry.value.IsNull()) {  // `wire:` alone: every default
    wire = config;
    return;
  }
  auto entries =
      reader.Mapping(entry.value, entry.key, path,
                     {"ports", "interface", "snap_length", "request_timeout", "max_connections"});
  if (!entries) return;
  for (const auto& [name, item] : *entries) {
    const std::string key_path = path + "." + name;
    if (name == "ports") {
      if (item.value.IsScalar() && item.value.Scalar() == "auto") continue;
      auto ports = reader.NumberList(item, key_path);
      if (!ports) continue;
      config.auto_ports = false;
      if (ports->empty()) reader.Error(item.key, key_path, "needs at least one port, or auto");
      for (std::size_t i = 0; i < ports->size(); ++i) {
        const double port = (*ports)[i];
        if (port < 1 || port > 65535 || port != double(int(port))) {
          reader.Error(item.value[i], key_path + "[" + std::to_string(i) + "]",
                       "must be a TCP port from 1 to 65535");
        } else {
          config.ports.push_back(uint16_t(port));
        }
      }
    } else if (name == "interface") {
      if (auto interface = reader.NonEmptyString(item, key_path)) config.interface = *interface;
    } else if (name == "snap_length") {
      if (auto length = reader.Integer(item, key_path, 256, 65535))
        config.snap_length = int(*length);
    } else if (name == "request_timeout") {
      auto text = reader.NonEmptyString(item, key_path);
      if (!text) continue;
      const auto timeout = ParseDurationText(*text);
      if (!timeout || *timeout < std::chrono::seconds(1) || *timeout > std::chrono::hours(24)) {
        reader.Error(item.key, key_path,
                     "must be a duration from 1s to 24h such as 30s or 5m, got '" + *text + "'");
      } else {
        config.request_timeout = *timeout;
      }
    } else if (name == "max_connections") {
      if (auto max = reader.Integer(item, key_path, 16, 10000000)) {
        config.max_connections = int(*max);
      }
    }
  }
  wire = config;
}

void ReadBuckets(SchemaReader& reader, const SchemaReader::Entry& entry, const std::string& path,
                 std::vector<double>& buckets) {
  auto values = reader.NumberList(entry, path);
  if (!values) return;
  if (values->empty()) {
    reader.Error(entry.key, path, "needs at least one bucket");
    return;
  }
  for (std::size_t i = 0; i < values->size(); ++i) {
    if ((*values)[i] <= 0 || (i > 0 && (*values)[i] <= (*values)[i - 1])) {
      reader.Error(entry.value[i], path + "[" + std::to_string(i) + "]",
                   "bucket bounds must be positive and strictly increasing");
      return;
    }
  }
  buckets = std::move(*values);
}

// YAML aliases let a short file name the same list many times over (services: [*s, *s, ...]
// whose access_logs are *logs, ...): the work of reading grows with the product of the
// lists' lengths, not with the file. Every list that is read per entry is counted first,
// with no per-entry work, and a file over a limit is refused before it is read.
bool WithinLimits(SchemaReader& reader, const SchemaReader::Entry& services_entry) {
  struct Limit {
    const char* key;
    std::size_t max;
    std::size_t count = 0;
  };
  Limit limits[] = {{"access_logs", kMaxAccessLogs},
                    {"routes", kMaxRoutes},
                    {"exclude_paths", kMaxRoutes},
                    {"buckets", kMaxBuckets}};
  const YAML::Node& services = services_entry.value;
  if (services.size() > kMaxServices) {
    reader.Error(services_entry.key, "services",
                 "too many services: " + std::to_string(services.size()) + ", at most " +
                     std::to_string(kMaxServices));
    return false;
  }
  for (std::size_t i = 0; i < services.size(); ++i) {
    const YAML::Node service = services[i];  // const: reading a missing key adds nothing
    if (!service.IsMap()) continue;
    for (Limit& limit : limits) {
      const YAML::Node list = service[limit.key];
      if (list.IsDefined() && list.IsSequence()) limit.count += list.size();
    }
  }
  bool ok = true;
  for (const Limit& limit : limits) {
    if (limit.count > limit.max) {
      reader.Error(services_entry.key, std::string("services[*].") + limit.key,
                   "too many entries: " + std::to_string(limit.count) +
                       " over all services, at most " + std::to_string(limit.max) +
                       " (YAML aliases count every time they are used)");
      ok = false;
    }
  }
  return ok;
}

void ReadServices(SchemaReader& reader, const SchemaReader::Entry& services_entry,
                  std::vector<ServiceConfig>& services) {
  if (!services_entry.value.IsSequence()) {
    if (!services_entry.value.IsNull()) {
      reader.Error(services_entry.key, "services",
                   "must be a list, got " + TypeName(services_entry.value));
    }
    return;
  }
  if (!WithinLimits(reader, services_entry)) return;
  std::set<std::string> names;
  for (std::size_t i = 0; i < services_entry.value.size(); ++i) {
    const YAML::Node item = services_entry.value[i];
    const std::string path = "services[" + std::to_string(i) + "]";
    auto entries =
        reader.Mapping(item, item, path,
                       {"name", "process", "access_logs", "routes", "routes_from", "exclude_paths",
                        "max_paths", "buckets", "wire", "recent_lines", "recent_lines_query"});
    if (!entries) continue;
    ServiceConfig service;
    service.position = PositionOf(item);
    bool has_process = false;
    bool has_access_logs = false;
    for (const auto& [name, entry] : *entries) {
      if (name == "name") {
        if (auto value = reader.NonEmptyString(entry, path + ".name")) {
          if (!names.insert(*value).second) {
            reader.Error(entry.key, path + ".name", "duplicate service name '" + *value + "'");
          }
          service.name = *value;
        }
      } else if (name == "process") {
        has_process = true;
        if (!ReadProcessSelector(reader, entry, path + ".process", service.process)) {
          reader.Error(entry.key, path + ".process",
                       "needs at least one selector: pidfile, pid, systemd_unit, cmdline or comm");
        }
      } else if (name == "access_logs") {
        has_access_logs = true;
        ReadAccessLogs(reader, entry, path + ".access_logs", service.access_logs);
      } else if (name == "routes") {
        ReadRoutes(reader, entry, path + ".routes", service.routes);
      } else if (name == "routes_from") {
        ReadRoutesFrom(reader, entry, path + ".routes_from", service.routes_from);
      } else if (name == "exclude_paths") {
        if (auto paths = reader.StringList(entry, path + ".exclude_paths")) {
          for (std::size_t p = 0; p < paths->size(); ++p) {
            std::string problem;
            if (!CheckComparablePath((*paths)[p], &problem)) {
              reader.Error(entry.value[p], path + ".exclude_paths[" + std::to_string(p) + "]",
                           "'" + (*paths)[p] + "' " + problem);
            }
          }
          service.exclude_paths = std::move(*paths);
        }
      } else if (name == "max_paths") {
        if (auto max = reader.Integer(entry, path + ".max_paths", 1, 100000)) {
          service.max_paths = int(*max);
        }
      } else if (name == "buckets") {
        ReadBuckets(reader, entry, path + ".buckets", service.buckets);
      } else if (name == "wire") {
        ReadWire(reader, entry, path + ".wire", service.wire);
        if (service.wire && service.wire->auto_ports && !item["process"]) {
          reader.Error(entry.key, path + ".wire.ports",
                       "auto needs the service's processes: add a process selector, or list the "
                       "ports");
        }
      } else if (name == "recent_lines") {
        if (auto on = reader.Bool(entry, path + ".recent_lines")) service.recent_lines = *on;
      } else if (name == "recent_lines_query") {
        if (auto on = reader.Bool(entry, path + ".recent_lines_query")) {
          service.recent_lines_query = *on;
        }
      }
    }
    bool has_name = false;
    for (const auto& entry : *entries) has_name |= (entry.first == "name");
    if (!has_name) reader.Error(item, path + ".name", "missing: every service needs a name");
    if (!has_process && !has_access_logs && !service.wire) {
      reader.Error(item, path + ".process",
                   "missing: every service needs a process selector "
                   "(pidfile, pid, systemd_unit, cmdline or comm), access_logs or wire");
    }
    services.push_back(std::move(service));
  }
}

}  // namespace

std::string SourceName(const AccessLogConfig& log) {
  if (!log.journal) return log.path;
  std::string name = "journal:";
  for (std::size_t i = 0; i < log.journal->matches.size(); ++i) {
    name += (i ? "," : "") + log.journal->matches[i];
  }
  for (std::size_t i = 0; i < log.journal->paths.size(); ++i) {
    name += (i ? "," : " ") + log.journal->paths[i];
  }
  return name;
}

std::string FormatError(const std::string& source_name, const ConfigError& error) {
  std::ostringstream out;
  out << source_name;
  if (error.position.line > 0) out << ":" << error.position.line << ":" << error.position.column;
  out << ": ";
  if (!error.key.empty()) out << error.key << ": ";
  out << error.message;
  return out.str();
}

LoadResult ParseConfig(const std::string& yaml_text) {
  LoadResult result;
  const std::optional<YAML::Node> parsed = ParseYaml(yaml_text, result.errors);
  if (!parsed) return result;
  const YAML::Node& root = *parsed;
  if (root.IsNull()) return result;  // an empty file is all defaults

  SchemaReader reader(result.errors);
  auto entries = reader.Mapping(
      root, root, "", {"web", "services", "positions_file", "metric_prefix", "max_line_bytes"});
  if (!entries) return result;
  Config& config = result.config;
  for (const auto& [name, entry] : *entries) {
    if (name == "web") {
      ReadWeb(reader, entry, config.web);
    } else if (name == "services") {
      ReadServices(reader, entry, config.services);
    } else if (name == "positions_file") {
      if (auto file = reader.NonEmptyString(entry, name)) config.positions_file = *file;
    } else if (name == "metric_prefix") {
      auto prefix = reader.NonEmptyString(entry, name);
      if (prefix && !RE2::FullMatch(*prefix, "[a-zA-Z_:][a-zA-Z0-9_:]*")) {
        reader.Error(entry.key, name, "'" + *prefix + "' is not a valid metric name prefix");
      } else if (prefix) {
        config.metric_prefix = *prefix;
      }
    } else if (name == "max_line_bytes") {
      if (auto max = reader.Integer(entry, name, 256, 64 * 1024 * 1024)) {
        config.max_line_bytes = int(*max);
      }
    }
  }
  return result;
}

std::optional<std::string> ReadWholeFile(const std::string& path, std::string& problem) {
  std::string text;
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) {
    problem = std::strerror(errno);
    return std::nullopt;
  }
  char buffer[8192];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, n);
  const bool failed = std::ferror(file);
  if (failed) problem = std::strerror(errno);
  std::fclose(file);
  if (failed) return std::nullopt;
  return text;
}

LoadResult LoadConfigFile(const std::string& path) {
  std::string problem;
  const std::optional<std::string> text = ReadWholeFile(path, problem);
  if (!text) {
    LoadResult result;
    result.errors.push_back({"", {}, "cannot read config file: " + problem});
    return result;
  }
  return ParseConfig(*text);
}

}  // namespace fastapi_exporter::config
