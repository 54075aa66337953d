#include "config/config.hpp"

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>
#include <string_view>

#include "config/listen_address.hpp"

namespace fastapi_exporter::config {
namespace {

SourcePosition PositionOf(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return {};
  return {mark.line + 1, mark.column + 1};
}

std::string TypeName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "an undefined value";
  }
}

// Walks a YAML tree against the expected schema, collecting every problem instead of
// stopping at the first. Each accessor reports its own errors and returns nullopt.
class SchemaReader {
 public:
  explicit SchemaReader(std::vector<ConfigError>& errors) : errors_(errors) {}

  void Error(const YAML::Node& at, const std::string& key, std::string message) {
    errors_.push_back({key, PositionOf(at), std::move(message)});
  }

  // Reports a non-mapping, and every unknown or repeated key of a mapping. Returns the
  // mapping's entries that are known, keyed by name, so callers look values up by name.
  struct Entry {
    YAML::Node key;
    YAML::Node value;
  };
  std::optional<std::vector<std::pair<std::string, Entry>>> Mapping(
      const YAML::Node& node, const YAML::Node& at, const std::string& path,
      std::initializer_list<std::string_view> known_keys) {
    if (!node.IsMap()) {
      Error(at, path, "must be a mapping, got " + TypeName(node));
      return std::nullopt;
    }
    std::vector<std::pair<std::string, Entry>> entries;
    std::set<std::string> seen;
    for (const auto& item : node) {
      const std::string key_path = Join(path, item.first.Scalar());
      if (!item.first.IsScalar()) {
        Error(item.first, path, "keys must be plain strings");
        continue;
      }
      const std::string name = item.first.Scalar();
      bool is_known = false;
      for (std::string_view known : known_keys) is_known |= (known == name);
      if (!is_known) {
        Error(item.first, key_path, "unknown key (expected one of: " + List(known_keys) + ")");
        continue;
      }
      if (!seen.insert(name).second) {
        Error(item.first, key_path, "key given more than once");
        continue;
      }
      entries.push_back({name, Entry{item.first, item.second}});
    }
    return entries;
  }

  std::optional<std::string> String(const Entry& entry, const std::string& path) {
    if (!entry.value.IsScalar()) {
      Error(entry.key, path, "must be a string, got " + TypeName(entry.value));
      return std::nullopt;
    }
    return entry.value.Scalar();
  }

  std::optional<std::string> NonEmptyString(const Entry& entry, const std::string& path) {
    auto value = String(entry, path);
    if (value && value->empty()) {
      Error(entry.key, path, "must not be empty");
      return std::nullopt;
    }
    return value;
  }

  std::optional<long long> Integer(const Entry& entry, const std::string& path, long long min,
                                   long long max) {
    long long value = 0;
    if (!entry.value.IsScalar() || !YAML::convert<long long>::decode(entry.value, value)) {
      Error(entry.key, path, "must be an integer, got " + Describe(entry.value));
      return std::nullopt;
    }
    if (value < min || value > max) {
      Error(entry.key, path,
            "must be between " + std::to_string(min) + " and " + std::to_string(max));
      return std::nullopt;
    }
    return value;
  }

  std::optional<bool> Bool(const Entry& entry, const std::string& path) {
    bool value = false;
    if (!entry.value.IsScalar() || !YAML::convert<bool>::decode(entry.value, value)) {
      Error(entry.key, path, "must be true or false, got " + Describe(entry.value));
      return std::nullopt;
    }
    return value;
  }

  static std::string Join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

 private:
  static std::string Describe(const YAML::Node& node) {
    return node.IsScalar() ? "'" + node.Scalar() + "'" : TypeName(node);
  }
  static std::string List(std::initializer_list<std::string_view> keys) {
    std::string out;
    for (std::string_view key : keys) {
      if (!out.empty()) out += ", ";
      out += key;
    }
    return out;
  }

  std::vector<ConfigError>& errors_;
};

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
      if (auto pid = reader.Integer(entry, key_path, 1, 4194304)) selector.pid = int(*pid);
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

void ReadServices(SchemaReader& reader, const SchemaReader::Entry& services_entry,
                  std::vector<ServiceConfig>& services) {
  if (!services_entry.value.IsSequence()) {
    if (!services_entry.value.IsNull()) {
      reader.Error(services_entry.key, "services",
                   "must be a list, got " + TypeName(services_entry.value));
    }
    return;
  }
  std::set<std::string> names;
  for (std::size_t i = 0; i < services_entry.value.size(); ++i) {
    const YAML::Node item = services_entry.value[i];
    const std::string path = "services[" + std::to_string(i) + "]";
    auto entries = reader.Mapping(item, item, path, {"name", "process"});
    if (!entries) continue;
    ServiceConfig service;
    service.position = PositionOf(item);
    bool has_process = false;
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
      }
    }
    bool has_name = false;
    for (const auto& entry : *entries) has_name |= (entry.first == "name");
    if (!has_name) reader.Error(item, path + ".name", "missing: every service needs a name");
    if (!has_process) {
      reader.Error(item, path + ".process",
                   "missing: every service needs a process selector "
                   "(pidfile, pid, systemd_unit, cmdline or comm)");
    }
    services.push_back(std::move(service));
  }
}

}  // namespace

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
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    ConfigError error{"", {}, "invalid YAML: " + e.msg};
    if (!e.mark.is_null()) error.position = {e.mark.line + 1, e.mark.column + 1};
    result.errors.push_back(std::move(error));
    return result;
  }
  if (root.IsNull()) return result;  // an empty file is all defaults

  SchemaReader reader(result.errors);
  auto entries = reader.Mapping(root, root, "", {"web", "services"});
  if (!entries) return result;
  for (const auto& [name, entry] : *entries) {
    if (name == "web") {
      ReadWeb(reader, entry, result.config.web);
    } else if (name == "services") {
      ReadServices(reader, entry, result.config.services);
    }
  }
  return result;
}

LoadResult LoadConfigFile(const std::string& path) {
  std::string text;
  std::string problem;
  if (std::FILE* file = std::fopen(path.c_str(), "rb")) {
    char buffer[8192];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) text.append(buffer, n);
    if (std::ferror(file)) problem = std::strerror(errno);
    std::fclose(file);
  } else {
    problem = std::strerror(errno);
  }
  if (!problem.empty()) {
    LoadResult result;
    result.errors.push_back({"", {}, "cannot read config file: " + problem});
    return result;
  }
  return ParseConfig(text);
}

}  // namespace fastapi_exporter::config
