#include "collectors/access_log/line_framer.hpp"

#include <algorithm>
#include <cstring>

namespace fastapi_exporter::access_log {
namespace {

constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";

}  // namespace

LineFramer::LineFramer(std::size_t max_line_bytes) : max_line_bytes_(max_line_bytes) {
  // A line split across two reads is assembled here; typical lines then never allocate.
  partial_.reserve(std::min<std::size_t>(max_line_bytes_, 4096));
}

void LineFramer::Reset(uint64_t offset) {
  partial_.clear();
  skipping_ = false;
  committed_ = offset;
}

void LineFramer::SkipToNextLine(uint64_t offset) {
  Reset(offset);
  skipping_ = true;
}

void LineFramer::Feed(const char* data, std::size_t size, uint64_t start_offset, LineSink& sink) {
  // NULs are dropped wherever they are; the runs between them are framed as one stream.
  std::size_t pos = 0;
  while (pos < size) {
    if (data[pos] == '\0') {
      ++pos;
      continue;
    }
    const char* nul = static_cast<const char*>(std::memchr(data + pos, '\0', size - pos));
    const std::size_t end = nul ? std::size_t(nul - data) : size;
    FeedRun(data + pos, end - pos, start_offset + pos, sink);
    pos = end;
  }
}

void LineFramer::FeedRun(const char* data, std::size_t size, uint64_t start_offset,
                         LineSink& sink) {
  std::size_t pos = 0;
  while (pos < size) {
    const char* newline = static_cast<const char*>(std::memchr(data + pos, '\n', size - pos));
    if (!newline) {
      // An incomplete line: keep it (bounded) until its newline arrives. The room for a CR
      // (and, at offset 0, a byte-order mark) that Emit strips keeps the verdict on a line of
      // exactly the limit the same wherever the reads split it.
      if (!skipping_) {
        const uint64_t begin = partial_.empty() ? start_offset + pos : partial_start_;
        const std::size_t room = max_line_bytes_ + 1 + (begin == 0 ? kByteOrderMark.size() : 0);
        if (partial_.size() + (size - pos) > room) {
          partial_.clear();
          skipping_ = true;
          sink.OnLineTooLong();
        } else {
          if (partial_.empty()) partial_start_ = begin;
          partial_.append(data + pos, size - pos);
        }
      }
      return;
    }
    const std::size_t end = std::size_t(newline - data);
    const uint64_t end_offset = start_offset + end + 1;
    if (skipping_) {
      skipping_ = false;  // the over-long line ends here; it was already counted
      if (!sink.HoldsPartial()) committed_ = end_offset;
    } else if (!partial_.empty()) {
      partial_.append(data + pos, end - pos);
      Emit(partial_, partial_start_, end_offset, sink);
      partial_.clear();
    } else {
      Emit(std::string_view(data + pos, end - pos), start_offset + pos, end_offset, sink);
    }
    pos = end + 1;
  }
}

void LineFramer::Emit(std::string_view line, uint64_t begin_offset, uint64_t end_offset,
                      LineSink& sink) {
  // A byte-order mark (Windows tools, Python's utf-8-sig) starts the file, not the line.
  if (begin_offset == 0 && line.starts_with(kByteOrderMark)) {
    line.remove_prefix(kByteOrderMark.size());
  }
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() > max_line_bytes_) {
    sink.OnLineTooLong();
  } else {
    sink.OnLine(line);
  }
  if (!sink.HoldsPartial()) committed_ = end_offset;
}

void LineFramer::Finish(uint64_t end_offset, LineSink& sink) {
  if (!skipping_ && !partial_.empty()) Emit(partial_, partial_start_, end_offset, sink);
  partial_.clear();
  skipping_ = false;
}

}  // namespace fastapi_exporter::access_log
