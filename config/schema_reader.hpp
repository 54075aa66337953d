// Reading YAML against an expected schema, collecting every problem with its key path and
// position instead of stopping at the first. Shared by the main and the web config files.
#pragma once

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.hpp"

namespace fastapi_exporter::config {

inline SourcePosition PositionOf(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return {};
  return {mark.line + 1, mark.column + 1};
}

inline std::string TypeName(const YAML::Node& node) {
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

  // One of a fixed set of words, mapped to its value.
  template <typename T>
  std::optional<T> OneOf(const Entry& entry, const std::string& path,
                         const std::vector<std::pair<std::string_view, T>>& choices) {
    if (auto word = String(entry, path)) {
      std::string names;
      for (const auto& [name, value] : choices) {
        if (name == *word) return value;
        names += names.empty() ? "" : ", ";
        names += name;
      }
      Error(entry.key, path, "must be one of " + names + ", got '" + *word + "'");
    }
    return std::nullopt;
  }

  std::optional<std::vector<std::string>> StringList(const Entry& entry, const std::string& path) {
    if (!entry.value.IsSequence()) {
      Error(entry.key, path, "must be a list of strings, got " + TypeName(entry.value));
      return std::nullopt;
    }
    std::vector<std::string> values;
    for (std::size_t i = 0; i < entry.value.size(); ++i) {
      const YAML::Node item = entry.value[i];
      if (!item.IsScalar()) {
        Error(item, path + "[" + std::to_string(i) + "]", "must be a string");
        return std::nullopt;
      }
      values.push_back(item.Scalar());
    }
    return values;
  }

  std::optional<std::vector<double>> NumberList(const Entry& entry, const std::string& path) {
    if (!entry.value.IsSequence()) {
      Error(entry.key, path, "must be a list of numbers, got " + TypeName(entry.value));
      return std::nullopt;
    }
    std::vector<double> values;
    for (std::size_t i = 0; i < entry.value.size(); ++i) {
      double value = 0;
      if (!entry.value[i].IsScalar() || !YAML::convert<double>::decode(entry.value[i], value)) {
        Error(entry.value[i], path + "[" + std::to_string(i) + "]", "must be a number");
        return std::nullopt;
      }
      values.push_back(value);
    }
    return values;
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

// Whether `text` (up to where YAML failed) ends inside a [...] list, written on one line or
// several, that holds "/{" outside quotes: an unquoted route template, whose braces YAML
// reads as a mapping. Quotes and comments are skipped so that quoted templates do not count.
inline bool UnquotedRouteInFlowList(std::string_view text) {
  std::vector<std::size_t> open;  // offsets of the [ not yet closed
  char quote = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quote) {
      if (c == quote) quote = 0;
      continue;
    }
    if (c == '#' && (i == 0 || text[i - 1] == ' ' || text[i - 1] == '\n')) {
      i = std::min(text.find('\n', i), text.size()) - 1;
    } else if ((c == '\'' || c == '"') && (i == 0 || std::string_view(" \n[,:{").find(
                                                         text[i - 1]) != std::string_view::npos)) {
      quote = c;  // a quote opens a scalar only where a scalar starts (not in "it's")
    } else if (c == '[') {
      open.push_back(i);
    } else if (c == ']' && !open.empty()) {
      open.pop_back();
    } else if (c == '{' && !open.empty() && i > 0 && text[i - 1] == '/') {
      return true;
    }
  }
  return false;
}

// Parses YAML text into a node; a syntax error becomes one error with its position.
inline std::optional<YAML::Node> ParseYaml(const std::string& text,
                                           std::vector<ConfigError>& errors) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    ConfigError error{"", {}, "invalid YAML: " + e.msg};
    if (!e.mark.is_null()) {
      error.position = {e.mark.line + 1, e.mark.column + 1};
      // The commonest cause: an unquoted route template in a [...] list, where YAML reads
      // its braces as a mapping. Say so rather than leave the user with the parser's words.
      std::size_t start = 0;
      for (int line = 0; line < e.mark.line && start != std::string::npos; ++line) {
        start = text.find('\n', start);
        if (start != std::string::npos) ++start;
      }
      if (start != std::string::npos) {
        const std::size_t end = text.find('\n', start);
        const std::string_view line = std::string_view(text).substr(start, end - start);
        if (UnquotedRouteInFlowList(std::string_view(text).substr(0, end))) {
          error.message +=
              "; route templates hold braces, so quote each one in a [...] list, "
              "as in ['/api/users/{user_id}']";
        } else if (e.msg.find("end of map") != std::string::npos ||
                   e.msg.find("end of sequence") != std::string::npos ||
                   e.msg.find("illegal map value") != std::string::npos ||
                   e.msg.find("block entry") != std::string::npos) {
          // yaml-cpp names what it was reading, not what is wrong: nearly always a line
          // indented to no level of the blocks above it.
          const std::size_t indent = line.find_first_not_of(' ');
          error.message += fmt::format(
              "; this line is indented by {} space(s), which lines up with no enclosing "
              "block: the keys of one mapping start in the same column, and the items of a "
              "list ('- ') one level under their key",
              indent == std::string_view::npos ? line.size() : indent);
        }
      }
    }
    errors.push_back(std::move(error));
    return std::nullopt;
  }
}

// The whole content of a file, or nullopt with `problem` set (strerror).
std::optional<std::string> ReadWholeFile(const std::string& path, std::string& problem);

}  // namespace fastapi_exporter::config
