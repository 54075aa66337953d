#include "config/log_format.hpp"

#include <cctype>
#include <map>

namespace fastapi_exporter::config {
namespace {

void AppendLiteral(CompiledLogFormat& format, std::string_view text) {
  if (text.empty()) return;
  if (!format.tokens.empty() && format.tokens.back().is_literal) {
    format.tokens.back().literal += text;
  } else {
    format.tokens.push_back({true, std::string(text), LogField::kIgnore});
  }
}

void AppendField(CompiledLogFormat& format, LogField field) {
  format.tokens.push_back({false, {}, field});
}

// The checks both languages share.
std::optional<CompiledLogFormat> Validate(CompiledLogFormat format, std::string* problem) {
  bool request_line = false, method = false, path = false, status = false;
  for (std::size_t i = 0; i < format.tokens.size(); ++i) {
    const LogFormatToken& token = format.tokens[i];
    if (token.is_literal) continue;
    request_line |= token.field == LogField::kRequestLine;
    method |= token.field == LogField::kMethod;
    path |= token.field == LogField::kPath || token.field == LogField::kTarget;
    status |= token.field == LogField::kStatus;
    if (i > 0 && !format.tokens[i - 1].is_literal) {
      if (problem) *problem = "two fields follow each other with nothing between them";
      return std::nullopt;
    }
  }
  if (!status) {
    if (problem) *problem = "the format has no status field";
    return std::nullopt;
  }
  if (!request_line && !(method && path)) {
    if (problem) *problem = "the format has neither the request line nor a method and a path";
    return std::nullopt;
  }
  return format;
}

}  // namespace

std::optional<CompiledLogFormat> CompileGunicornFormat(const std::string& text,
                                                       std::string* problem) {
  static const std::map<std::string, LogField, std::less<>> kAtoms = {
      {"r", LogField::kRequestLine},  {"m", LogField::kMethod},       {"U", LogField::kPath},
      {"s", LogField::kStatus},       {"L", LogField::kSeconds},      {"T", LogField::kSeconds},
      {"M", LogField::kMilliseconds}, {"D", LogField::kMicroseconds}, {"t", LogField::kBracketed}};
  CompiledLogFormat format;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t atom = text.find("%(", pos);
    if (atom == std::string::npos) {
      AppendLiteral(format, std::string_view(text).substr(pos));
      break;
    }
    AppendLiteral(format, std::string_view(text).substr(pos, atom - pos));
    const std::size_t close = text.find(")s", atom + 2);
    if (close == std::string::npos) {
      if (problem) *problem = "unterminated atom at offset " + std::to_string(atom);
      return std::nullopt;
    }
    const std::string name = text.substr(atom + 2, close - atom - 2);
    if (name.empty() || name.find_first_of("() %") != std::string::npos) {
      if (problem) *problem = "malformed atom '%(" + name + ")s'; atoms look like %(s)s";
      return std::nullopt;
    }
    const auto known = kAtoms.find(name);
    // Headers ({name}i, {name}o), environment ({name}e) and the other atoms are ignored.
    AppendField(format, known != kAtoms.end() ? known->second : LogField::kIgnore);
    pos = close + 2;
  }
  return Validate(std::move(format), problem);
}

std::optional<CompiledLogFormat> CompileNginxFormat(const std::string& text, std::string* problem) {
  if (text == "combined") return CompileNginxFormat(kNginxCombinedFormat, problem);
  static const std::map<std::string, LogField, std::less<>> kVariables = {
      {"request", LogField::kRequestLine},  {"request_method", LogField::kMethod},
      {"request_uri", LogField::kTarget},   {"uri", LogField::kPath},
      {"document_uri", LogField::kPath},    {"status", LogField::kStatus},
      {"request_time", LogField::kSeconds}, {"upstream_response_time", LogField::kUpstreamSeconds}};
  CompiledLogFormat format;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t dollar = text.find('$', pos);
    if (dollar == std::string::npos) {
      AppendLiteral(format, std::string_view(text).substr(pos));
      break;
    }
    AppendLiteral(format, std::string_view(text).substr(pos, dollar - pos));
    std::string name;
    if (dollar + 1 < text.size() && text[dollar + 1] == '{') {
      const std::size_t close = text.find('}', dollar + 2);
      if (close == std::string::npos) {
        if (problem) *problem = "unterminated ${ at offset " + std::to_string(dollar);
        return std::nullopt;
      }
      name = text.substr(dollar + 2, close - dollar - 2);
      pos = close + 1;
    } else {
      std::size_t end = dollar + 1;
      while (end < text.size() &&
             (std::isalnum(static_cast<unsigned char>(text[end])) || text[end] == '_')) {
        ++end;
      }
      name = text.substr(dollar + 1, end - dollar - 1);
      pos = end;
    }
    if (name.empty()) {
      if (problem) *problem = "'$' without a variable name at offset " + std::to_string(dollar);
      return std::nullopt;
    }
    const auto known = kVariables.find(name);
    AppendField(format, known != kVariables.end() ? known->second : LogField::kIgnore);
  }
  return Validate(std::move(format), problem);
}

}  // namespace fastapi_exporter::config
