// How many times a text holds a needle (overlapping matches too), for tests that check what
// was logged or rendered once and only once.
#pragma once

#include <cstddef>
#include <string>

namespace fastapi_exporter {

inline std::size_t Count(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

}  // namespace fastapi_exporter
