// Follows the files that match each configured glob and hands over complete lines.
//
// - inotify on the files' folders wakes it when something changes; a periodic rescan (and a
//   polling mode where inotify is not available) catches the rest.
// - rename-and-create rotation: the old file stays open and is read to its end, including
//   lines written to it after the rename, until it has been quiet for `rotate_wait` and the
//   writers have moved on (the new file has data, or the old one is deleted).
// - copytruncate and any truncation: reading restarts at offset 0; a writer without O_APPEND
//   leaves a run of NULs before its next line, which is no part of any line.
// - a byte-order mark at offset 0 is not part of the first line.
// - deletion and re-creation, files that appear later (read from their start), symlinks
//   (the target is followed; a re-pointed link is a rotation).
// - an incomplete last line waits for its newline, until the file is finished (closed after a
//   rotation, or the end of a one-shot read); a line longer than the limit is skipped with
//   bounded memory.
// Files are identified by device and inode, and a fingerprint of their first bytes guards a
// saved position against inode reuse.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "collectors/access_log/positions.hpp"
#include "config/config.hpp"

namespace fastapi_exporter::access_log {

// Receives the lines of one file, in order.
class FileFollower;

class LineSink {
 public:
  virtual ~LineSink() = default;
  virtual void OnLine(std::string_view line) = 0;
  virtual void OnLineTooLong() = 0;
  // True while the sink holds part of a line (joined container records): the saved position
  // then stays at the start of that line.
  virtual bool HoldsPartial() const { return false; }
};

// What happened to a source's files, for self-metrics and the log.
class SourceObserver {
 public:
  virtual ~SourceObserver() = default;
  virtual void OnBytesRead(uint64_t bytes) = 0;
  virtual void OnRotation(const std::string& path) = 0;
  virtual void OnTruncation(const std::string& path) = 0;
  // Called once per path while the problem lasts, not on every retry.
  virtual void OnOpenError(const std::string& path, const std::string& error) = 0;
  virtual void OnState(uint64_t open_files, uint64_t unread_bytes) = 0;
  // The glob matches no file, and why ("folder /x: No such file or directory"); called when
  // the reason changes, and with an empty reason once a file matches again.
  virtual void OnNoFile(const std::string& /*glob*/, const std::string& /*reason*/) {}
  // A rotated file was closed while a process still had it open for writing: what it writes
  // there from now on is not read.
  virtual void OnAbandoned(const std::string& /*path*/) {}
};

// The state of the tailer as a whole.
class TailerObserver {
 public:
  virtual ~TailerObserver() = default;
  // True when changes are found by polling only, because inotify (or one of its watches) is
  // not available; called when that changes.
  virtual void OnPolling(bool /*polling*/) {}
  // inotify's queue overflowed (more than fs.inotify.max_queued_events changes came before
  // they were read) and its events were dropped: every log is rescanned, so nothing is
  // missed, but a machine where this repeats needs a larger queue.
  virtual void OnInotifyOverflow() {}
};

// Another input read on the tailer's thread (the journal), so that its lines go through the
// same single-threaded chain as the files' lines.
class PolledInput {
 public:
  virtual ~PolledInput() = default;
  // Readable when there may be something new; -1 when there is nothing to wait on (yet).
  virtual int WaitFd() = 0;
  // The longest the wait may last, in milliseconds (-1: no limit of its own).
  virtual int WaitTimeoutMs() = 0;
  // Reads what is available, a bounded amount; true when more is left.
  virtual bool Read() = 0;
  // Takes the starting position now, without reading (see Tailer::MarkStart).
  virtual void MarkStart() {}
};

struct TailSource {
  std::string id;  // unique and stable across restarts: the key of its saved positions
  std::string glob;
  config::StartAt start_at = config::StartAt::kEnd;
  std::function<std::unique_ptr<LineSink>()> make_sink;  // one per file
  SourceObserver* observer = nullptr;                    // may be null
  // The service the source counts for: a file open in two sources of one service has its
  // requests counted twice (globs that overlap), which is logged once per file.
  std::string group;
};

struct TailerOptions {
  std::size_t max_line_bytes = 64 * 1024;
  std::size_t read_chunk_bytes = 1 << 20;
  // How often to look for new files when inotify watches every folder (a safety net), and
  // when it does not (no inotify, or a folder that does not exist yet).
  std::chrono::milliseconds rescan_interval{10000};
  std::chrono::milliseconds poll_interval{1000};
  // After inotify reports a write, wait this long for more before reading.
  std::chrono::milliseconds batch_delay{100};
  std::chrono::milliseconds rotate_wait{5000};
  // Read at most this much of one file per pass, then let the others (and a stop) have a turn.
  uint64_t max_bytes_per_poll = 4 << 20;
  bool use_inotify = true;
  // Read every file from its start and ignore start_at (one-shot mode).
  bool from_beginning = false;
  TailerObserver* observer = nullptr;  // may be null
};

class InotifyWatcher;

// The coordinator: discovery.hpp finds the files, a FileFollower (file_follower.hpp) reads
// each through a LineFramer (line_framer.hpp), an InotifyWatcher (inotify_watcher.hpp) says
// when to look; the Tailer decides which files are new, old, rotated or done.
class Tailer {
 public:
  Tailer(std::vector<TailSource> sources, TailerOptions options);
  ~Tailer();
  Tailer(const Tailer&) = delete;
  Tailer& operator=(const Tailer&) = delete;

  // Positions from an earlier run; call before the first Poll.
  void Restore(const Positions& positions);
  // Where every open file is, for saving.
  Positions Snapshot();

  // Fixes where `start_at: end` starts: at the size each matching file has now. The reading
  // thread may first wait (for the service's routes); a line written after this call (made
  // before the exporter reports ready) is read even if the file is rotated meanwhile, and a
  // file created after it is read from its start. Reads nothing; call before the first Poll.
  void MarkStart();

  // Finds new, rotated and truncated files (when `rescan`, or always in polling mode) and
  // reads what is available, up to max_bytes_per_poll per file. Returns the bytes read.
  uint64_t Poll(bool rescan = true);

  // The files will not grow any more (the end of a one-shot read): the bytes held after the
  // last newline of each are its last line.
  void Finish();

  // Calls Poll whenever inotify reports a change or the rescan interval passes, and
  // `on_idle` after each pass, until `stop_fd` becomes readable. Each of `inputs` is read
  // after each pass, and its descriptor and timeout wake the loop too.
  void Run(int stop_fd, const std::function<void()>& after_pass,
           const std::vector<PolledInput*>& inputs = {});

 private:
  struct Source;

  void Rescan(Source& source);
  void ReportNoFile(Source& source, const std::string& folder, bool none);
  void OpenFile(Source& source, const std::string& path, const struct stat& st, bool first_scan);
  void WarnIfOpenInAnotherSource(const Source& source, const FileFollower& file);
  void RecoverRotatedAway(Source& source);
  void ScanRotatedSiblings(Source& source, const std::set<std::string>& live_paths,
                           bool first_scan);
  bool IsCopyOfOpenFile(const Source& source, const std::string& path) const;
  bool AllFoldersWatched() const;

  TailerOptions options_;
  std::vector<std::unique_ptr<Source>> sources_;
  // Files found open in two sources of one service, by (device, inode): warned about once.
  std::set<std::pair<uint64_t, uint64_t>> overlap_warned_;
  std::vector<char> buffer_;
  std::unique_ptr<InotifyWatcher> watcher_;
  bool first_scan_done_ = false;
  bool backlog_ = false;   // the last pass stopped at max_bytes_per_poll somewhere
  timespec started_at_{};  // rotated files last written before this are old
};

}  // namespace fastapi_exporter::access_log
