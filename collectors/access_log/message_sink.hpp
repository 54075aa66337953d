// Where a source that yields whole messages (the journal) hands them over: the line
// pipeline (line_pipeline.hpp). Apart from journal_source.hpp so that the pipeline does not
// depend on sd-journal or the configuration.
#pragma once

#include <string_view>

#include "collectors/access_log/request.hpp"

namespace fastapi_exporter::access_log {

// Receives the MESSAGE of each matching entry, in journal order.
class MessageSink {
 public:
  virtual ~MessageSink() = default;
  virtual void OnMessage(std::string_view message) = 0;
  // An entry that gives no line: binary_message, line_too_long, missing_field (no MESSAGE).
  virtual void OnSkipped(ParseError reason, std::string_view message) = 0;
};

}  // namespace fastapi_exporter::access_log
