// Parsers of plain-text access logs: uvicorn's default line, gunicorn and nginx formats
// (compiled from their format strings), and user regexes.
#include <re2/re2.h>

#include <cctype>
#include <charconv>
#include <vector>

#include "collectors/access_log/parsers.hpp"

namespace fastapi_exporter::access_log {
namespace {

using config::LogField;

// '"...." 200': a quoted field, then a space and three digits.
bool QuotedThenStatus(std::string_view line) {
  const std::size_t open = line.find('"');
  if (open == std::string_view::npos) return false;
  const std::size_t close = line.find('"', open + 1);
  if (close == std::string_view::npos) return false;
  const std::string_view after = line.substr(close + 1, 4);
  return after.size() == 4 && after[0] == ' ' &&
         std::isdigit(static_cast<unsigned char>(after[1])) &&
         std::isdigit(static_cast<unsigned char>(after[2])) &&
         std::isdigit(static_cast<unsigned char>(after[3]));
}

// INFO:     127.0.0.1:54321 - "GET /items/5?q=x HTTP/1.1" 200 OK
// Whatever precedes the quoted request line (level prefix, client address, colours) is
// skipped, so custom uvicorn log configs that keep the access message work too.
class UvicornLineParser final : public LineParser {
 public:
  ParseError Parse(std::string_view line, ParsedRequest& out) override {
    const ParseError error = ParseAccessLine(line, out);
    // uvicorn writes its error log to the same stream by default: startup lines, tracebacks,
    // WebSocket lines. They are not broken access lines: nothing in them looks like a
    // request, nor like a quoted request line followed by a status.
    if (error != ParseError::kNone && !LooksLikeAccessLine(line) && !QuotedThenStatus(line)) {
      return ParseError::kNotAccessLine;
    }
    return error;
  }

 private:
  static ParseError ParseAccessLine(std::string_view line, ParsedRequest& out) {
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

// gunicorn and nginx: literals and fields in the order the format string gives them.
//
// A field's value runs up to an occurrence of the next literal; when a value may itself hold
// that literal (an unquoted "text/html; charset=utf-8" before a space), the first occurrence
// is not always right. The matcher tries the occurrences in order, checking each typed field
// (request line, method, status, durations) as it goes, and backtracks: the split it returns
// is the first one in which every field is valid. A line no split fits is then classified by
// the plain first-occurrence split: a line of the format's shape with one bad field says
// which (invalid_status, ...), anything else is no_match (or not_access_line).
class FieldFormatLineParser final : public LineParser {
 public:
  explicit FieldFormatLineParser(const config::CompiledLogFormat& format) : tokens_(format.tokens) {
    for (const auto& token : tokens_) {
      if (token.is_literal) continue;
      best_duration_rank_ = std::max(best_duration_rank_, DurationRank(token.field));
      has_request_line_ |= token.field == LogField::kRequestLine;
    }
  }

  ParseError Parse(std::string_view line, ParsedRequest& out) override {
    out = ParsedRequest{};
    steps_ = 0;
    if (Match(line, 0, 0, out)) return ParseError::kNone;
    const ParseError error = Classify(line, out);
    if (error == ParseError::kNoMatch && !LooksLikeAccessLine(line)) {
      return ParseError::kNotAccessLine;
    }
    return error;
  }

 private:
  // Bounds backtracking on hostile lines (many occurrences of every literal): past it the
  // line is no_match, never a CPU sink.
  static constexpr int kMaxSteps = 4096;

  // Whether tokens_[i...] match line[pos...] with every typed field valid; fills `out`.
  bool Match(std::string_view line, std::size_t i, std::size_t pos, ParsedRequest& out) {
    if (++steps_ > kMaxSteps) return false;
    if (i == tokens_.size()) return pos == line.size();
    const config::LogFormatToken& token = tokens_[i];
    if (token.is_literal) {
      if (line.compare(pos, token.literal.size(), token.literal) != 0) return false;
      return Match(line, i + 1, pos + token.literal.size(), out);
    }
    if (token.field == LogField::kBracketed && pos < line.size() && line[pos] == '[') {
      const std::size_t close = line.find(']', pos);
      return close != std::string_view::npos && Match(line, i + 1, close + 1, out);
    }
    if (i + 1 == tokens_.size()) {
      return AcceptField(token.field, line.substr(pos), out) &&
             Match(line, i + 1, line.size(), out);
    }
    const std::string& next = tokens_[i + 1].literal;
    for (std::size_t end = line.find(next, pos); end != std::string_view::npos;
         end = line.find(next, end + 1)) {
      if (AcceptField(token.field, line.substr(pos, end - pos), out) &&
          Match(line, i + 1, end, out)) {
        return true;
      }
      if (steps_ > kMaxSteps) return false;
    }
    return false;
  }

  // Checks a field's value and stores what the request needs from it.
  bool AcceptField(LogField field, std::string_view value, ParsedRequest& out) const {
    switch (field) {
      case LogField::kRequestLine:
        return SplitRequestLine(value, out);
      case LogField::kMethod:
        out.method = value;
        return IsMethodToken(value);
      case LogField::kTarget:
      case LogField::kPath:
        // With a request line in the format, the target comes from it.
        if (!has_request_line_) out.target = value;
        return !value.empty();
      case LogField::kStatus:
        out.status = ParseStatusCode(value);
        return out.status != 0;
      case LogField::kIgnore:
      case LogField::kBracketed:
        return true;
      default: {
        ParsedRequest duration;
        ReadDurationField(value, DurationUnit(field), duration);
        if (duration.duration_invalid) return false;
        if (DurationRank(field) == best_duration_rank_) {
          out.has_duration = duration.has_duration;
          out.duration_seconds = duration.duration_seconds;
        }
        return true;
      }
    }
  }

  // The first-occurrence split, to say what is wrong with a line no split fits.
  ParseError Classify(std::string_view line, ParsedRequest& out) const {
    out = ParsedRequest{};
    std::size_t pos = 0;
    std::string_view status_text;
    bool request_line_ok = true;
    for (std::size_t i = 0; i < tokens_.size(); ++i) {
      const config::LogFormatToken& token = tokens_[i];
      if (token.is_literal) {
        if (line.compare(pos, token.literal.size(), token.literal) != 0) {
          return ParseError::kNoMatch;
        }
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
      if (token.field == LogField::kStatus) {
        status_text = value;
      } else if (token.field == LogField::kRequestLine || token.field == LogField::kMethod ||
                 token.field == LogField::kTarget || token.field == LogField::kPath) {
        request_line_ok &= AcceptField(token.field, value, out);
      } else if (DurationRank(token.field) == best_duration_rank_ && best_duration_rank_ > 0) {
        ReadDurationField(value, DurationUnit(token.field), out);
      }
    }
    if (pos != line.size()) return ParseError::kNoMatch;
    if (!request_line_ok) return ParseError::kInvalidRequestLine;
    out.status = ParseStatusCode(status_text);
    if (!out.status) return ParseError::kInvalidStatus;
    // The shape fits and method, target and status are valid: only a duration was not one.
    // The request counts, without a duration.
    return ParseError::kNone;
  }

  static double DurationUnit(LogField field) {
    switch (field) {
      case LogField::kMicroseconds:
        return 1e-6;
      case LogField::kMilliseconds:
        return 1e-3;
      default:
        return 1.0;
    }
  }

  std::vector<config::LogFormatToken> tokens_;
  int best_duration_rank_ = 0;
  bool has_request_line_ = false;
  int steps_ = 0;
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
      return LooksLikeAccessLine(line) ? ParseError::kNoMatch : ParseError::kNotAccessLine;
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
    ReadDurationField(group(duration_), duration_unit_, out);
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
