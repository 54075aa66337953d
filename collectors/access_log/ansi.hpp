// Terminal escape sequences in log lines. uvicorn colours its log whenever stdout is a
// terminal (docker run -t, compose tty: true), and the colours land in the log file or the
// container's record. They carry no meaning for a request: every line loses them before any
// format parser sees it.
#pragma once

#include <string>
#include <string_view>

namespace fastapi_exporter::access_log {

// `line` without its escape sequences (ECMA-48: CSI "ESC [ params intermediates final", which
// includes SGR colours, and two-byte "ESC Fe"). Returns `line` itself when it holds no ESC;
// otherwise a view into `scratch`, valid until the next call with the same scratch (which
// allocates only when a line is longer than any before).
inline std::string_view StripAnsiEscapes(std::string_view line, std::string& scratch) {
  std::size_t esc = line.find('\x1b');
  if (esc == std::string_view::npos) return line;
  scratch.clear();
  std::size_t pos = 0;
  while (esc != std::string_view::npos) {
    scratch.append(line.substr(pos, esc - pos));
    std::size_t i = esc + 1;
    auto in = [&](unsigned char low, unsigned char high) {
      return i < line.size() && static_cast<unsigned char>(line[i]) >= low &&
             static_cast<unsigned char>(line[i]) <= high;
    };
    if (i < line.size() && line[i] == '[') {
      ++i;
      while (in(0x30, 0x3f)) ++i;  // parameter bytes
      while (in(0x20, 0x2f)) ++i;  // intermediate bytes
      if (in(0x40, 0x7e)) ++i;     // the final byte
    } else if (in(0x40, 0x5f)) {
      ++i;
    }
    pos = i;
    esc = line.find('\x1b', pos);
  }
  scratch.append(line.substr(pos));
  return scratch;
}

}  // namespace fastapi_exporter::access_log
