// Frames the bytes of one file into lines, for a LineSink.
//
// - A line ends at '\n'; a '\r' just before it (CRLF) is no part of the line.
// - A UTF-8 byte-order mark (EF BB BF) at file offset 0 starts the file, not the first line.
// - NUL bytes are no part of any line: runs of them are the hole a writer without O_APPEND
//   leaves after copytruncate, or the zeros a crash leaves behind.
// - A line longer than `max_line_bytes` (without its CR and the file's BOM) is reported with
//   LineSink::OnLineTooLong once and skipped; memory stays bounded by the limit plus one read.
// - The bytes after the last newline wait for it across any number of reads, until Finish.
// Offsets are file offsets: `committed()` is where the last line fully handed over ended
// (the position to save), held back while the sink holds part of a joined record.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "collectors/access_log/tailer.hpp"

namespace fastapi_exporter::access_log {

class LineFramer {
 public:
  explicit LineFramer(std::size_t max_line_bytes);

  // The bytes at file offsets [start_offset, start_offset + size), right after the ones fed
  // last (or after Reset/SkipToNextLine). Does not allocate once a line split across reads
  // fits the reserved room.
  void Feed(const char* data, std::size_t size, uint64_t start_offset, LineSink& sink);

  // Nothing more comes (a rotated file closed, the end of a one-shot read): the bytes held
  // after the last newline, which ended at `end_offset`, are a line of their own.
  void Finish(uint64_t end_offset, LineSink& sink);

  // Starts over at `offset`, a line boundary (a new start, after a truncation).
  void Reset(uint64_t offset);
  // Starts at `offset` inside a line (start_at: end): the bytes up to the next newline are
  // no line.
  void SkipToNextLine(uint64_t offset);

  uint64_t committed() const { return committed_; }
  // True while bytes after the last newline wait for theirs.
  bool holding() const { return skipping_ || !partial_.empty(); }

 private:
  void FeedRun(const char* data, std::size_t size, uint64_t start_offset, LineSink& sink);
  void Emit(std::string_view line, uint64_t begin_offset, uint64_t end_offset, LineSink& sink);

  std::size_t max_line_bytes_;
  std::string partial_;         // the incomplete last line
  uint64_t partial_start_ = 0;  // file offset of its first byte
  bool skipping_ = false;       // inside a line longer than the limit (or before the first)
  uint64_t committed_ = 0;
};

}  // namespace fastapi_exporter::access_log
