// The json format: one JSON object per line, keys in any order, extra keys ignored.
//
// simdjson's DOM parser rather than On Demand: On Demand reads only the keys it is asked for,
// so a line broken in a key nobody reads was counted, and its answer for a broken line
// depended on the padding bytes left by the line before. The DOM parser validates the whole
// line (structure and UTF-8) before anything is read, and stays well under a microsecond
// per line (docs/BENCHMARKS.md).
#include <simdjson.h>

#include "collectors/access_log/json_line.hpp"
#include "collectors/access_log/line_parser.hpp"
#include "collectors/access_log/parsers.hpp"

namespace fastapi_exporter::access_log {
namespace {

namespace dom = simdjson::dom;

class JsonLineParser final : public LineParser {
 public:
  explicit JsonLineParser(const JsonFields& fields)
      : fields_(fields), duration_unit_(fields.duration_unit_seconds) {}

  ParseError Parse(std::string_view line, ParsedRequest& out) override {
    out = ParsedRequest{};
    dom::object object;
    if (!json_.ParseObject(line, object)) {
      // A line that does not even start an object is another writer's line in the stream.
      const std::size_t first = line.find_first_not_of(" \t");
      return first != std::string_view::npos && line[first] == '{' ? ParseError::kInvalidJson
                                                                   : ParseError::kNotAccessLine;
    }
    bool has_method = false, has_path = false, has_status = false;
    for (const dom::key_value_pair field : object) {
      const std::string_view key = field.key;
      if (key == fields_.method) {
        if (field.value.get_string().get(out.method)) return ParseError::kMissingField;
        has_method = true;
      } else if (key == fields_.path) {
        if (field.value.get_string().get(out.target)) return ParseError::kMissingField;
        has_path = true;
      } else if (key == fields_.status) {
        if (!ReadStatus(field.value, out.status)) return ParseError::kInvalidStatus;
        has_status = true;
      } else if (!fields_.duration.empty() && key == fields_.duration) {
        ReadDuration(field.value, out);
      }
    }
    // Another kind of record (an application log line): not a request at all.
    if (!has_method && !has_path) return ParseError::kNotAccessLine;
    // Present but empty says as little as absent.
    if (!has_method || !has_path || !has_status || out.method.empty() || out.target.empty()) {
      return ParseError::kMissingField;
    }
    if (!IsMethodToken(out.method)) return ParseError::kInvalidRequestLine;
    return ParseError::kNone;
  }

 private:
  // A number, or a number given as a string: 200 and "200".
  static bool ReadStatus(dom::element value, int& status) {
    switch (value.type()) {
      case dom::element_type::INT64:
      case dom::element_type::UINT64: {
        int64_t number = 0;
        if (value.get_int64().get(number) || number < 100 || number > 599) return false;
        status = int(number);
        return true;
      }
      case dom::element_type::STRING: {
        std::string_view text;
        if (value.get_string().get(text)) return false;
        status = ParseStatusCode(text);
        return status != 0;
      }
      default:
        return false;
    }
  }

  // Numbers in the configured unit; strings as the text formats write them ("12.5", "", "-",
  // nginx's "0.010, 0.020"); null is no duration.
  void ReadDuration(dom::element value, ParsedRequest& out) const {
    switch (value.type()) {
      case dom::element_type::NULL_VALUE:
        return;
      case dom::element_type::INT64:
      case dom::element_type::UINT64:
      case dom::element_type::DOUBLE: {
        double number = 0;
        if (value.get_double().get(number) ||
            !CheckDuration(number, duration_unit_, out.duration_seconds)) {
          out.duration_invalid = true;
          return;
        }
        out.has_duration = true;
        return;
      }
      case dom::element_type::STRING: {
        std::string_view text;
        if (value.get_string().get(text)) {
          out.duration_invalid = true;
          return;
        }
        return ReadDurationField(text, duration_unit_, out);
      }
      default:
        out.duration_invalid = true;
    }
  }

  JsonFields fields_;
  double duration_unit_;
  JsonLine json_;
};

}  // namespace

std::unique_ptr<LineParser> MakeJsonParser(const JsonFields& fields) {
  return std::make_unique<JsonLineParser>(fields);
}

}  // namespace fastapi_exporter::access_log
