// The json format: one JSON object per line, keys in any order, extra keys ignored.
#include <simdjson.h>

#include <cstring>
#include <string>

#include "collectors/access_log/line_parser.hpp"
#include "collectors/access_log/parsers.hpp"

namespace fastapi_exporter::access_log {
namespace {

namespace od = simdjson::ondemand;

class JsonLineParser final : public LineParser {
 public:
  explicit JsonLineParser(const config::JsonFields& fields)
      : fields_(fields), duration_unit_(SecondsPer(fields.duration_unit)) {}

  ParseError Parse(std::string_view line, ParsedRequest& out) override {
    // simdjson reads a few bytes past the end of its input: parse a padded copy.
    if (padded_.size() < line.size() + simdjson::SIMDJSON_PADDING) {
      padded_.resize(line.size() + simdjson::SIMDJSON_PADDING);
    }
    std::memcpy(padded_.data(), line.data(), line.size());
    od::document document;
    if (parser_.iterate(padded_.data(), line.size(), padded_.size()).get(document)) {
      return ParseError::kInvalidJson;
    }
    od::object object;
    if (document.get_object().get(object)) return ParseError::kInvalidJson;
    out = ParsedRequest{};
    bool has_method = false, has_path = false, has_status = false;
    for (auto field : object) {
      std::string_view key;
      if (field.unescaped_key().get(key)) return ParseError::kInvalidJson;
      od::value value;
      if (field.value().get(value)) return ParseError::kInvalidJson;
      if (key == fields_.method) {
        if (value.get_string().get(out.method)) return ParseError::kMissingField;
        has_method = true;
      } else if (key == fields_.path) {
        if (value.get_string().get(out.target)) return ParseError::kMissingField;
        has_path = true;
      } else if (key == fields_.status) {
        if (!ReadStatus(value, out.status)) return ParseError::kInvalidStatus;
        has_status = true;
      } else if (!fields_.duration.empty() && key == fields_.duration) {
        const ParseError error = ReadDuration(value, out);
        if (error != ParseError::kNone) return error;
      }
    }
    // Trailing garbage after the object, or a truncated object, is not a valid line.
    if (document.current_location().error() != simdjson::OUT_OF_BOUNDS) {
      return ParseError::kInvalidJson;
    }
    if (!has_method || !has_path || !has_status) return ParseError::kMissingField;
    return ParseError::kNone;
  }

 private:
  // A number, or a number given as a string: 200 and "200".
  static bool ReadStatus(od::value& value, int& status) {
    od::json_type type;
    if (value.type().get(type)) return false;
    if (type == od::json_type::number) {
      int64_t number = 0;
      if (value.get_int64().get(number) || number < 100 || number > 599) return false;
      status = int(number);
      return true;
    }
    std::string_view text;
    if (type != od::json_type::string || value.get_string().get(text)) return false;
    status = ParseStatusCode(text);
    return status != 0;
  }

  ParseError ReadDuration(od::value& value, ParsedRequest& out) const {
    od::json_type type;
    if (value.type().get(type)) return ParseError::kInvalidJson;
    if (type == od::json_type::null) return ParseError::kNone;  // no duration for this line
    if (type == od::json_type::number) {
      double number = 0;
      if (value.get_double().get(number) ||
          !CheckDuration(number, duration_unit_, out.duration_seconds)) {
        return ParseError::kInvalidDuration;
      }
    } else {
      std::string_view text;
      if (type != od::json_type::string || value.get_string().get(text) ||
          !ParseDuration(text, duration_unit_, out.duration_seconds)) {
        return ParseError::kInvalidDuration;
      }
    }
    out.has_duration = true;
    return ParseError::kNone;
  }

  config::JsonFields fields_;
  double duration_unit_;
  od::parser parser_;
  std::string padded_;
};

}  // namespace

std::unique_ptr<LineParser> MakeJsonParser(const config::JsonFields& fields) {
  return std::make_unique<JsonLineParser>(fields);
}

}  // namespace fastapi_exporter::access_log
