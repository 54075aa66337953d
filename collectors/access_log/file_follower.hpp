// Follows one open file: reads what is new through a LineFramer into its source's sink, and
// notices when the file starts over.
//
// - Identity: device and inode; a fingerprint (FNV-1a) of the first KiB after any leading
//   NULs guards a saved position against inode reuse and finds copytruncate's copy.
// - Truncation (to 0 or to a smaller size, and truncated then written again past where we
//   were) is told by the size, the fingerprint, or the last byte read reading otherwise now.
//   Reading then restarts at the first byte that is not NUL, after reading from the copy
//   (a sibling with the same first bytes, at least as long as what was read) what was
//   written between the last read and the copy.
// - Rotated: its path names another file, or none. It is read to its end, including what is
//   written to it after the rename, until the coordinator closes it (Superseded says when the
//   writers have moved on).
// The follower never looks for files: the Tailer (and discovery) hands them over.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "collectors/access_log/line_framer.hpp"
#include "collectors/access_log/positions.hpp"
#include "collectors/access_log/tailer.hpp"

namespace fastapi_exporter::access_log {

struct FileIdentity {
  uint64_t device = 0;
  uint64_t inode = 0;
  bool operator==(const FileIdentity&) const = default;
  auto operator<=>(const FileIdentity&) const = default;
};

FileIdentity IdentityOf(const struct stat& st);

// How many first bytes the fingerprint covers.
inline constexpr uint32_t kFingerprintBytes = 1024;

// FNV-1a of a file's first `bytes` bytes (fewer if it is shorter); `bytes` is updated to
// what was hashed. A leading run of NULs is skipped: it is the hole a writer without O_APPEND
// leaves after copytruncate, the same in every such file. `data_start`, when given, receives
// where the hashed bytes start.
uint64_t FingerprintFile(int fd, uint32_t& bytes, uint64_t* data_start = nullptr);
// The same, from `offset` on.
uint64_t FingerprintAt(int fd, uint64_t offset, uint32_t& bytes);
// Where the first byte that is not NUL is (the file's size if there is none).
uint64_t FirstNonNul(int fd);

// copytruncate's copy of a file next to `path` (same first bytes as `fingerprint`, at least
// `read_offset` long, another inode than `own_inode`): an open descriptor (the caller closes
// it) and its identity, or -1.
int FindTruncatedCopy(const std::string& path, uint64_t fingerprint, uint32_t fingerprint_bytes,
                      uint64_t read_offset, uint64_t own_inode, FileIdentity& copy_identity);

// Whether a process has the file open for writing, as far as /proc lets us see (all of it as
// root, the processes of our own user otherwise).
bool OpenForWriting(const FileIdentity& identity);

class FileFollower {
 public:
  using Clock = std::chrono::steady_clock;

  // Takes `fd` (open for reading, `st` its fstat or stat). `source` gives the sink (a new one
  // after each truncation) and the observer; it must outlive the follower.
  FileFollower(std::string path, int fd, const struct stat& st, const TailSource& source,
               std::size_t max_line_bytes);
  ~FileFollower();
  FileFollower(const FileFollower&) = delete;
  FileFollower& operator=(const FileFollower&) = delete;

  // Where reading starts: `offset`, a line boundary unless `mid_line` (start_at: end in the
  // middle of a line: the rest of that line is no line).
  void StartAt(uint64_t offset, bool mid_line = false);

  // The file of a saved position turned out truncated while we were stopped: reads from its
  // copy (if any) what was written after `saved.offset`, finishes that, and starts this file
  // over at 0. Returns the copy's identity, which is done with. `mid_line`: the saved offset
  // is inside a line (a start mark), whose rest is no line.
  std::optional<FileIdentity> RecoverCopyAfter(const FilePosition& saved, std::vector<char>& buffer,
                                               uint64_t max_bytes, bool mid_line = false);

  struct ReadResult {
    uint64_t bytes = 0;                // read from the file (and its copy)
    bool backlog = false;              // stopped at max_bytes: more is waiting
    bool truncated = false;            // the file had started over
    std::optional<FileIdentity> copy;  // copytruncate's copy, read and done with
  };
  // Reads what is new, at most `max_bytes` (and at most that much of a copy), in reads of
  // `buffer`'s size.
  ReadResult Read(std::vector<char>& buffer, uint64_t max_bytes);

  // Nothing more comes: the bytes after the last newline are the last line.
  void Finish();

  // For a rotated file: the writers have moved on (its path names another file that has
  // data, or it was deleted).
  bool Superseded() const;

  // Where the last line handed over ended, with the fingerprint to check it by (completed
  // if the file was short when opened).
  FilePosition Position(const std::string& source_id);

  uint64_t UnreadBytes() const;
  // Whether the file at `path` starts with the bytes this one started with (a copy of it).
  bool SameFirstBytes(int fd) const;

  const std::string& path() const { return path_; }
  const FileIdentity& identity() const { return identity_; }
  uint64_t read_offset() const { return read_offset_; }
  uint64_t committed() const { return framer_.committed(); }
  Clock::time_point last_data() const { return last_data_; }

  // A file renamed within the glob keeps its reading; it is still the live file of its path.
  void Renamed(const std::string& path) { path_ = rotated_from_ = path; }
  // Its path names another file now, or none: drain it. `live_path` is where its writers
  // were (Superseded looks there).
  void MarkRotated(const std::string& live_path) {
    rotated_ = true;
    rotated_from_ = live_path;
  }
  void MarkRotated() { rotated_ = true; }
  bool rotated() const { return rotated_; }

  int watch = -1;  // the coordinator's inotify watch of its writes

 private:
  uint64_t ReadAvailable(std::vector<char>& buffer, uint64_t max_bytes, bool& backlog);
  bool Truncated(const struct stat& st) const;
  void StartOver();

  std::string path_;
  int fd_ = -1;
  FileIdentity identity_;
  const TailSource& source_;
  std::unique_ptr<LineSink> sink_;
  LineFramer framer_;
  uint64_t read_offset_ = 0;  // bytes read from the file
  uint64_t fingerprint_ = 0;
  uint32_t fingerprint_bytes_ = 0;
  uint64_t data_start_ = 0;  // where the fingerprinted bytes start (after leading NULs)
  // The byte before read_offset as it was read: if it reads otherwise now, the file was
  // truncated and written again past where we were.
  char last_byte_ = 0;
  bool has_last_byte_ = false;
  bool rotated_ = false;      // its path names another file now: drain it, then close
  std::string rotated_from_;  // the path whose writers it had: done when they moved on
  Clock::time_point last_data_ = Clock::now();
};

}  // namespace fastapi_exporter::access_log
