// One JSON document per line, validated whole, for the json format and the docker envelope.
// Internal to collectors/access_log.
#pragma once

#include <simdjson.h>

#include <cstring>
#include <string>
#include <string_view>

namespace fastapi_exporter::access_log {

class JsonLine {
 public:
  // Parses `line` as one JSON object. False for anything that is not exactly one valid JSON
  // object (bad structure or UTF-8 anywhere, trailing bytes, another type at the top). The
  // object's strings stay valid until the next call. Does not allocate once the buffers
  // have grown to the longest line.
  bool ParseObject(std::string_view line, simdjson::dom::object& object) {
    // simdjson reads up to SIMDJSON_PADDING bytes past the end: a copy with that much room,
    // the room filled with the same bytes every time so that the answer is the line's alone.
    if (padded_.size() < line.size() + simdjson::SIMDJSON_PADDING) {
      padded_.resize(line.size() + simdjson::SIMDJSON_PADDING);
    }
    std::memcpy(padded_.data(), line.data(), line.size());
    std::memset(padded_.data() + line.size(), ' ', simdjson::SIMDJSON_PADDING);
    simdjson::dom::element document;
    if (parser_.parse(padded_.data(), line.size(), false).get(document)) return false;
    return !document.get_object().get(object);
  }

 private:
  simdjson::dom::parser parser_;
  std::string padded_;
};

}  // namespace fastapi_exporter::access_log
