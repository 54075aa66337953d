// The Logger Stream's memory: per service, the most recent access lines read, in a ring of
// fixed-size slots allocated once, so that recording a line from the access-log thread's
// per-line path allocates nothing (tests/unit/no_allocation_test.cpp).
//
// A slot keeps the time the line was read (not the time the log wrote: formats differ
// in whether and how they say it), the method, the request path (up to kPathBytes bytes;
// longer ones are cut and marked), the status and the duration. The query string is not
// kept unless asked (keep_query): URLs may carry secrets there. A service whose paths
// themselves carry secrets turns the ring off (`recent_lines: false`).
//
// Thread-safe: one writer (the access-log thread) and readers (HTTP threads), under a mutex
// held for a slot copy.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace fastapi_exporter::history {

struct RecentLine {
  static constexpr std::size_t kPathBytes = 62;
  double time = 0;              // seconds since the Unix epoch, when it was read
  float duration_seconds = -1;  // -1: the line had no duration
  uint16_t status = 0;          // 100..599
  char method[8] = {};          // NUL-padded; "OTHER" for methods beyond 7 bytes
  uint8_t path_length = 0;      // bytes of path used
  bool path_cut = false;        // the path was longer than kPathBytes
  char path[kPathBytes] = {};   // raw bytes of the request path, as logged
  std::string_view Path() const { return {path, path_length}; }
  std::string_view Method() const;
};

class RecentLines {
 public:
  explicit RecentLines(std::size_t capacity, bool keep_query = false);

  // Called on the per-line path: copies into the oldest slot; never allocates.
  void Add(double time, std::string_view method, std::string_view target, int status,
           bool has_duration, double duration_seconds) noexcept;

  // Up to `max` lines, newest first.
  std::vector<RecentLine> Newest(std::size_t max) const;

  std::size_t capacity() const { return slots_.size(); }
  uint64_t added() const;
  bool keep_query() const { return keep_query_; }
  std::size_t memory_bytes() const { return sizeof *this + slots_.size() * sizeof(RecentLine); }

 private:
  const bool keep_query_;
  mutable std::mutex mutex_;
  std::vector<RecentLine> slots_;
  std::size_t next_ = 0;
  uint64_t added_ = 0;
};

// The rings of every service by name, shared between the access-log collector (which
// fills them) and the live view (which reads them). A ring outlives reloads that keep its
// service and settings.
class RecentLinesRegistry {
 public:
  // The ring of `service`, created if needed (or replaced when its settings changed).
  std::shared_ptr<RecentLines> Get(const std::string& service, std::size_t capacity,
                                   bool keep_query);
  // Forgets every ring whose service is not in `services`.
  void Keep(const std::vector<std::string>& services);
  // Drops the ring of one service (its recent lines were turned off).
  void Drop(const std::string& service);
  std::shared_ptr<const RecentLines> Find(const std::string& service) const;
  std::vector<std::string> Names() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<RecentLines>> rings_;
};

}  // namespace fastapi_exporter::history
