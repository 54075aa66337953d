// Where each tailed file was read up to, saved so that a restart resumes there: lines
// written while the daemon was stopped are counted, and none is counted twice.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fastapi_exporter::access_log {

struct FilePosition {
  std::string source;  // which configured log (service and glob) read it
  std::string path;    // where the file was last seen
  uint64_t device = 0;
  uint64_t inode = 0;
  uint64_t offset = 0;       // bytes fully handled
  uint64_t fingerprint = 0;  // hash of the first fingerprint_bytes bytes
  uint32_t fingerprint_bytes = 0;
  bool operator==(const FilePosition&) const = default;
};

// Where a journal source was read up to: the cursor of the last entry handled
// (sd_journal_get_cursor(3), an opaque string).
struct JournalPosition {
  std::string source;
  std::string cursor;
  bool operator==(const JournalPosition&) const = default;
};

struct Positions {
  std::vector<FilePosition> files;
  std::vector<JournalPosition> journals;
  int64_t saved_at_unix = 0;  // when they were saved (the file's mtime), 0 if unknown
};

// Atomically replaces `path` (temp file, fsync, rename, fsync of the folder).
bool SavePositions(const std::string& path, const Positions& positions, std::string& error);

// A missing file is an empty result; an unreadable or corrupt one too, with `warning` set.
Positions LoadPositions(const std::string& path, std::string& warning);

// Whether SavePositions can write there (its folder created, a temporary file created and
// removed), without touching the positions file itself; false with the reason otherwise.
bool PositionsWritable(const std::string& path, std::string& error);

}  // namespace fastapi_exporter::access_log
