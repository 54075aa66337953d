// Parsers of plain-text access logs: uvicorn's default line, gunicorn and nginx formats
// (compiled from their format strings), and user regexes.
#include <re2/re2.h>

#include <charconv>
#include <vector>

#include "collectors/access_log/parsers.hpp"

namespace fastapi_exporter::access_log {
namespace {

using config::LogField;

// INFO:     127.0.0.1:54321 - "GET /items/5?q=x HTTP/1.1" 200 OK
// Whatever precedes the quoted request line (level prefix, client address, colours) is
// skipped, so custom uvicorn log configs that keep the access message work too.
class UvicornLineParser final : public LineParser {
 public:
  ParseError Parse(std::string_view line, ParsedRequest& out) override {
    out = ParsedRequest{};
    const std::size_t open = line.find('"');
    if (open == std::string_view::npos) return ParseError::kNoMatch;
    const std::size_t close = line.find('"', open + 1);
    if (close == std::string_view::npos) return ParseError::kNoMatch;
    if (!SplitRequestLine(line.substr(open + 1, close - open - 1), out)) {
      return ParseError::kInvalidRequestLine;
    }
    std::string_view rest = line.substr(close + 1);
    if (rest.empty() || rest[0] != ' ') return ParseError::kNoMatch;
    rest.remove_prefix(1);
    const std::string_view status = rest.substr(0, rest.find(' '));
    out.status = ParseStatusCode(status);
    return out.status ? ParseError::kNone : ParseError::kInvalidStatus;
  }
};

// How precise a duration field is; the most precise one in a format wins.
int DurationRank(LogField field) {
  switch (field) {
    case LogField::kMicroseconds:
      return 4;
    case LogField::kMilliseconds:
      return 3;
    case LogField::kSeconds:
      return 2;
    case LogField::kUpstreamSeconds:
      return 1;
    default:
      return 0;
  }
}

// nginx's $upstream_response_time: "-", "0.012", or one value per upstream tried,
// "0.010, 0.020 : 0.005". The request's time upstream is their sum.
bool ParseUpstreamTimes(std::string_view text, double& seconds, bool& present) {
  present = false;
  seconds = 0;
  while (!text.empty()) {
    const std::size_t end = text.find_first_of(",:");
    std::string_view item = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item == "-" || item.empty()) continue;
    double value = 0;
    if (!ParseDuration(item, 1.0, value)) return false;
    seconds += value;
    present = true;
  }
  return true;
}

// gunicorn and nginx: literals and fields in the order the format string gives them.
// A field's value runs up to the next literal of the format.
class FieldFormatLineParser final : public LineParser {
 public:
  explicit FieldFormatLineParser(const config::CompiledLogFormat& format) : tokens_(format.tokens) {
    for (const auto& token : tokens_) {
      if (!token.is_literal)
        best_duration_rank_ = std::max(best_duration_rank_, DurationRank(token.field));
    }
  }

  ParseError Parse(std::string_view line, ParsedRequest& out) override {
    out = ParsedRequest{};
    std::size_t pos = 0;
    bool has_request = false;
    std::string_view status_text;
    for (std::size_t i = 0; i < tokens_.size(); ++i) {
      const config::LogFormatToken& token = tokens_[i];
      if (token.is_literal) {
        if (line.compare(pos, token.literal.size(), token.literal) != 0)
          return ParseError::kNoMatch;
        pos += token.literal.size();
        continue;
      }
      std::size_t end;
      if (token.field == LogField::kBracketed && pos < line.size() && line[pos] == '[') {
        end = line.find(']', pos);
        if (end == std::string_view::npos) return ParseError::kNoMatch;
        ++end;
      } else if (i + 1 < tokens_.size()) {
        end = line.find(tokens_[i + 1].literal, pos);
        if (end == std::string_view::npos) return ParseError::kNoMatch;
      } else {
        end = line.size();
      }
      const std::string_view value = line.substr(pos, end - pos);
      pos = end;
      switch (token.field) {
        case LogField::kRequestLine:
          if (!SplitRequestLine(value, out)) return ParseError::kInvalidRequestLine;
          has_request = true;
          break;
        case LogField::kMethod:
          out.method = value;
          break;
        case LogField::kTarget:
        case LogField::kPath:
          if (!has_request) out.target = value;
          break;
        case LogField::kStatus:
          status_text = value;
          break;
        default: {
          const ParseError error = ReadDuration(token.field, value, out);
          if (error != ParseError::kNone) return error;
        }
      }
    }
    if (pos != line.size()) return ParseError::kNoMatch;
    if (!IsMethodToken(out.method) || out.target.empty()) return ParseError::kInvalidRequestLine;
    out.status = ParseStatusCode(status_text);
    return out.status ? ParseError::kNone : ParseError::kInvalidStatus;
  }

 private:
  ParseError ReadDuration(LogField field, std::string_view value, ParsedRequest& out) const {
    const int rank = DurationRank(field);
    if (rank == 0 || rank != best_duration_rank_) return ParseError::kNone;
    if (value == "-") return ParseError::kNone;  // no duration for this line
    bool present = true;
    bool ok;
    switch (field) {
      case LogField::kMicroseconds:
        ok = ParseDuration(value, 1e-6, out.duration_seconds);
        break;
      case LogField::kMilliseconds:
        ok = ParseDuration(value, 1e-3, out.duration_seconds);
        break;
      case LogField::kUpstreamSeconds:
        ok = ParseUpstreamTimes(value, out.duration_seconds, present);
        break;
      default:
        ok = ParseDuration(value, 1.0, out.duration_seconds);
    }
    if (!ok) return ParseError::kInvalidDuration;
    out.has_duration = present;
    return ParseError::kNone;
  }

  std::vector<config::LogFormatToken> tokens_;
  int best_duration_rank_ = 0;
};

// A user's RE2 with named groups method, path, status and optionally duration.
class RegexLineParser final : public LineParser {
 public:
  RegexLineParser(const std::string& pattern, double duration_unit)
      : regex_(pattern, RE2::Quiet), duration_unit_(duration_unit) {
    const int groups = regex_.NumberOfCapturingGroups();
    pieces_.resize(std::size_t(groups));
    args_.resize(std::size_t(groups));
    arg_pointers_.resize(std::size_t(groups));
    for (int i = 0; i < groups; ++i) {
      args_[std::size_t(i)] = &pieces_[std::size_t(i)];
      arg_pointers_[std::size_t(i)] = &args_[std::size_t(i)];
    }
    const auto& names = regex_.NamedCapturingGroups();
    auto index = [&](const char* name) {
      const auto it = names.find(name);
      return it == names.end() ? -1 : it->second - 1;
    };
    method_ = index("method");
    path_ = index("path");
    status_ = index("status");
    duration_ = index("duration");
  }

  ParseError Parse(std::string_view line, ParsedRequest& out) override {
    out = ParsedRequest{};
    if (!RE2::PartialMatchN(re2::StringPiece(line.data(), line.size()), regex_,
                            arg_pointers_.data(), int(arg_pointers_.size()))) {
      return ParseError::kNoMatch;
    }
    auto group = [&](int i) {
      return i < 0
                 ? std::string_view()
                 : std::string_view(pieces_[std::size_t(i)].data(), pieces_[std::size_t(i)].size());
    };
    out.method = group(method_);
    out.target = group(path_);
    out.status = ParseStatusCode(group(status_));
    if (!out.status) return ParseError::kInvalidStatus;
    const std::string_view duration = group(duration_);
    if (!duration.empty() && duration != "-") {
      if (!ParseDuration(duration, duration_unit_, out.duration_seconds)) {
        return ParseError::kInvalidDuration;
      }
      out.has_duration = true;
    }
    if (out.method.empty() || out.target.empty()) return ParseError::kMissingField;
    if (!IsMethodToken(out.method)) return ParseError::kInvalidRequestLine;
    return ParseError::kNone;
  }

 private:
  RE2 regex_;
  double duration_unit_;
  int method_ = -1, path_ = -1, status_ = -1, duration_ = -1;
  std::vector<re2::StringPiece> pieces_;
  std::vector<RE2::Arg> args_;
  std::vector<const RE2::Arg*> arg_pointers_;
};

}  // namespace

std::unique_ptr<LineParser> MakeUvicornParser() {
  return std::make_unique<UvicornLineParser>();
}

std::unique_ptr<LineParser> MakeFieldFormatParser(const config::CompiledLogFormat& format) {
  return std::make_unique<FieldFormatLineParser>(format);
}

std::unique_ptr<LineParser> MakeRegexParser(const std::string& pattern, double duration_unit) {
  return std::make_unique<RegexLineParser>(pattern, duration_unit);
}

}  // namespace fastapi_exporter::access_log
