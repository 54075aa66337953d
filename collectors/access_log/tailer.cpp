#include "collectors/access_log/tailer.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "collectors/access_log/discovery.hpp"
#include "collectors/access_log/file_follower.hpp"
#include "collectors/access_log/inotify_watcher.hpp"

namespace fastapi_exporter::access_log {
namespace {

using Clock = std::chrono::steady_clock;

// Whether the file starts with the first bytes a saved position recorded (the same file).
bool StartsAsSaved(int fd, const FilePosition& saved) {
  uint32_t bytes = saved.fingerprint_bytes;
  const uint64_t fingerprint = FingerprintFile(fd, bytes);
  return bytes == saved.fingerprint_bytes && fingerprint == saved.fingerprint;
}

}  // namespace

struct Tailer::Source {
  TailSource config;
  std::vector<std::unique_ptr<FileFollower>> files;
  std::map<FileIdentity, FilePosition> restored;  // saved positions, until their file is opened
  std::set<std::string> known_paths;              // paths read by an earlier run
  std::set<std::string> open_errors;              // paths whose open failed (reported once)
  std::string no_file_reason;                     // why the glob matched nothing, last reported
  // Rotated siblings (access.log.1, access.log-20261127) by identity: those that were there
  // before we started (never read), and those we read to their end and closed.
  std::set<FileIdentity> preexisting;
  std::set<FileIdentity> finished;
  // MarkStart fixed where start_at end starts: then every file it did not see is new.
  bool start_marked = false;
  std::set<FileIdentity> marked_mid_line;  // marked inside a line: that line is not counted
  int64_t positions_saved_at = 0;          // unix time of the positions we resumed from
};

Tailer::Tailer(std::vector<TailSource> sources, TailerOptions options)
    : options_(options),
      buffer_(options.read_chunk_bytes),
      watcher_(std::make_unique<InotifyWatcher>(options.use_inotify, options.poll_interval,
                                                options.observer)) {
  // The clock file timestamps come from: the precise one runs ahead of it by up to a tick.
  ::clock_gettime(CLOCK_REALTIME_COARSE, &started_at_);
  for (auto& config : sources) {
    auto source = std::make_unique<Source>();
    source->config = std::move(config);
    sources_.push_back(std::move(source));
  }
}

Tailer::~Tailer() = default;

void Tailer::Restore(const Positions& positions) {
  for (auto& source : sources_) {
    source->positions_saved_at = positions.saved_at_unix;
    for (const auto& position : positions.files) {
      if (position.source != source->config.id) continue;
      source->restored[{position.device, position.inode}] = position;
      source->known_paths.insert(position.path);
    }
  }
}

Positions Tailer::Snapshot() {
  Positions positions;
  for (auto& source : sources_) {
    for (auto& file : source->files) positions.files.push_back(file->Position(source->config.id));
    // Saved positions of files not opened (yet) in this run are kept.
    for (const auto& [identity, position] : source->restored) positions.files.push_back(position);
  }
  return positions;
}

void Tailer::OpenFile(Source& source, const std::string& path, const struct stat& st,
                      bool first_scan) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (source.open_errors.insert(path).second && source.config.observer) {
      source.config.observer->OnOpenError(path, std::strerror(errno));
    }
    return;
  }
  source.open_errors.erase(path);
  auto file = std::make_unique<FileFollower>(path, fd, st, source.config, options_.max_line_bytes);
  WarnIfOpenInAnotherSource(source, *file);

  uint64_t start = 0;
  bool mid_line = false;
  const auto restored = source.restored.find(file->identity());
  if (options_.from_beginning) {
    start = 0;
  } else if (restored != source.restored.end()) {
    // Resume where the last run stopped, if this is still the same file.
    const bool same = StartsAsSaved(fd, restored->second);
    mid_line = source.marked_mid_line.contains(file->identity());
    if (same && restored->second.offset <= uint64_t(st.st_size)) {
      start = restored->second.offset;
    } else if (auto copy = file->RecoverCopyAfter(restored->second, buffer_,
                                                  options_.max_bytes_per_poll, mid_line)) {
      // The file of the last run, truncated while the daemon was stopped: its copy is done
      // with, so the sibling scan does not read it again from its start.
      source.finished.insert(*copy);
    }
    source.restored.erase(restored);
  } else if (first_scan && !source.start_marked && !source.known_paths.contains(path) &&
             source.config.start_at == config::StartAt::kEnd) {
    start = uint64_t(st.st_size);
    // Starting mid-line would count half a line: skip to the next newline.
    char last = '\n';
    mid_line = start > 0 && ::pread(fd, &last, 1, off_t(start - 1)) == 1 && last != '\n';
  }
  if (start > 0) file->StartAt(start, mid_line);
  spdlog::debug("tailing {} (inode {}) from offset {}", path, file->identity().inode, start);
  watcher_->WatchFolder(std::filesystem::path(path).parent_path().string());
  std::error_code ec;
  const auto target = std::filesystem::canonical(path, ec);
  if (!ec) watcher_->WatchFolder(target.parent_path().string());
  file->watch = watcher_->WatchFile(path);
  source.files.push_back(std::move(file));
}

namespace {

// Whether `path`, found by the inode number of a saved position, is that file renamed: it
// starts with the bytes it started with then. File systems reuse the number of a deleted file
// (logrotate's compress deletes the renamed log), and the next file of the folder to get it
// is another log, or logrotate's state file. A file that was empty then has no first bytes to
// compare: its name must then still begin with the name it had (access.log.1, not
// admin-access.log).
bool IsRenamedFrom(const std::string& path, const FilePosition& saved) {
  if (saved.fingerprint_bytes == 0) {
    const std::filesystem::path was(saved.path), now(path);
    return now.filename().string().starts_with(was.stem().string());
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool same = StartsAsSaved(fd, saved);
  ::close(fd);
  return same;
}

}  // namespace

void Tailer::WarnIfOpenInAnotherSource(const Source& source, const FileFollower& file) {
  if (source.config.group.empty()) return;
  for (const auto& other : sources_) {
    if (other.get() == &source || other->config.group != source.config.group) continue;
    for (const auto& open : other->files) {
      const FileIdentity identity = file.identity();
      if (open->identity() != identity ||
          !overlap_warned_.emplace(identity.device, identity.inode).second) {
        continue;
      }
      spdlog::warn(
          "{} is matched by two access_logs of service {} ({} and {}): each of its "
          "requests is counted twice; give the service paths that do not overlap",
          file.path(), source.config.group, other->config.glob, source.config.glob);
    }
  }
}

void Tailer::RecoverRotatedAway(Source& source) {
  // Files of the last run that were renamed while the daemon was stopped (access.log ->
  // access.log.1) no longer match the glob; find them by inode next to where they were, and
  // read what was written to them after the saved offset.
  std::vector<FilePosition> pending;
  for (const auto& [identity, position] : source.restored) pending.push_back(position);
  for (const auto& position : pending) {
    const auto found = FindByIdentity(std::filesystem::path(position.path).parent_path().string(),
                                      {position.device, position.inode});
    if (!found) continue;
    if (!IsRenamedFrom(found->path, position)) {
      spdlog::info(
          "{} has the inode number {} of {} of the last run, but not its first bytes: "
          "another file (the inode was reused), not read",
          found->path, position.inode, position.path);
      continue;
    }
    OpenFile(source, found->path, found->st, true);
    if (!source.files.empty() && source.files.back()->identity() == IdentityOf(found->st)) {
      source.files.back()->MarkRotated(position.path);
    }
  }
}

void Tailer::Rescan(Source& source) {
  const bool first_scan = !first_scan_done_;
  // Watched before the glob is resolved: a file created in between is reported, not missed.
  const std::string folder = GlobFolder(source.config.glob);
  watcher_->WatchFolderChain(folder);
  std::set<std::string> seen_paths;
  for (const auto& [path, st] : MatchGlob(source.config.glob)) {
    seen_paths.insert(path);
    const FileIdentity identity = IdentityOf(st);
    bool already_open = false;
    for (auto& file : source.files) {
      if (file->identity() == identity) {
        already_open = true;
        if (file->path() != path && !file->rotated()) file->Renamed(path);  // within the glob
      } else if (file->path() == path && !file->rotated()) {
        // The path names another file now: rename-and-create rotation or a re-pointed link.
        file->MarkRotated();
        if (source.config.observer) source.config.observer->OnRotation(path);
      }
    }
    if (!already_open) OpenFile(source, path, st, first_scan);
  }
  // Open files whose path is gone (renamed out of the glob, deleted) are drained.
  for (auto& file : source.files) {
    if (!file->rotated() && !seen_paths.contains(file->path())) {
      file->MarkRotated();
      if (source.config.observer) source.config.observer->OnRotation(file->path());
    }
  }
  if (first_scan) {
    RecoverRotatedAway(source);
    source.restored.clear();  // files of the last run that are gone for good
  }
  ScanRotatedSiblings(source, seen_paths, first_scan);
  ReportNoFile(source, folder, seen_paths.empty());
}

void Tailer::ReportNoFile(Source& source, const std::string& folder, bool none) {
  const std::string reason = none ? NoFileReason(folder) : "";
  if (reason == source.no_file_reason) return;
  source.no_file_reason = reason;
  if (source.config.observer) source.config.observer->OnNoFile(source.config.glob, reason);
}

bool Tailer::IsCopyOfOpenFile(const Source& source, const std::string& path) const {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool copy = false;
  for (const auto& file : source.files) {
    if (file->SameFirstBytes(fd)) {
      copy = true;
      break;
    }
  }
  ::close(fd);
  return copy;
}

void Tailer::ScanRotatedSiblings(Source& source, const std::set<std::string>& live_paths,
                                 bool first_scan) {
  // Several rotations between two rescans (a burst of traffic, a slow machine) would hide
  // the files in between: created and renamed to access.log.N before we ever saw them. Any
  // rotated sibling of a live file that appeared after we started was written after we
  // started: read it from its start.
  std::set<FileIdentity> present;
  for (const auto& [sibling, live_path] : FindRotatedSiblings(live_paths)) {
    const struct stat& st = sibling.st;
    const FileIdentity identity = IdentityOf(st);
    present.insert(identity);
    if (source.finished.contains(identity) || source.preexisting.contains(identity)) continue;
    if (std::any_of(source.files.begin(), source.files.end(),
                    [&](const auto& file) { return file->identity() == identity; })) {
      continue;
    }
    // Rotated files last written before we started are old (unless written after the
    // positions we resume from were saved: rotated while the daemon was stopped).
    const bool written_since_saved =
        source.positions_saved_at > 0 && int64_t(st.st_mtime) >= source.positions_saved_at;
    const bool written_before_start =
        (first_scan && !source.start_marked) || st.st_mtim.tv_sec < started_at_.tv_sec ||
        (st.st_mtim.tv_sec == started_at_.tv_sec && st.st_mtim.tv_nsec < started_at_.tv_nsec);
    if (written_before_start && !written_since_saved) {
      source.preexisting.insert(identity);
      continue;
    }
    if (IsCopyOfOpenFile(source, sibling.path)) {
      spdlog::debug("{} is a copy of a file being read; not read again", sibling.path);
      // copytruncate's copy of what we read (or are reading): its tail, if any, is read
      // when the truncation is noticed; the rest was counted already.
      source.finished.insert(identity);
      continue;
    }
    OpenFile(source, sibling.path, st, false);
    if (!source.files.empty() && source.files.back()->identity() == identity) {
      source.files.back()->MarkRotated(live_path);
    }
  }
  // Forget files that are gone, so these sets stay small. Only now and then, and only after a
  // scan that saw siblings: while the live file is briefly missing (between a rename and the
  // new file), nothing is scanned and everything would look gone.
  constexpr std::size_t kPruneAbove = 1024;
  if (!present.empty() && source.finished.size() + source.preexisting.size() > kPruneAbove) {
    std::erase_if(source.finished, [&](const FileIdentity& id) { return !present.contains(id); });
    std::erase_if(source.preexisting,
                  [&](const FileIdentity& id) { return !present.contains(id); });
  }
}

void Tailer::MarkStart() {
  if (first_scan_done_ || options_.from_beginning) return;
  // From here on, a rotated sibling written since is new (see ScanRotatedSiblings).
  ::clock_gettime(CLOCK_REALTIME_COARSE, &started_at_);
  for (auto& source : sources_) {
    if (source->config.start_at != config::StartAt::kEnd) continue;
    source->start_marked = true;
    for (const auto& [path, st] : MatchGlob(source->config.glob)) {
      // A path of the last run is resumed, or read from its start, as its positions say.
      const FileIdentity identity = IdentityOf(st);
      if (source->known_paths.contains(path) || source->restored.contains(identity)) continue;
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;  // reported when the first scan fails to open it
      struct stat now;
      if (::fstat(fd, &now) == 0 && IdentityOf(now) == identity) {
        // Taken as a position saved now: the first scan then follows the file through a
        // rename (RecoverRotatedAway) or a copytruncate (RecoverCopyAfter) that happens
        // before it, as it does for a rotation while the exporter was stopped.
        FilePosition position;
        position.source = source->config.id;
        position.path = path;
        position.device = identity.device;
        position.inode = identity.inode;
        position.offset = uint64_t(now.st_size);
        position.fingerprint_bytes = kFingerprintBytes;
        position.fingerprint = FingerprintFile(fd, position.fingerprint_bytes);
        char last = '\n';
        if (now.st_size > 0 && ::pread(fd, &last, 1, now.st_size - 1) == 1 && last != '\n') {
          source->marked_mid_line.insert(identity);
        }
        source->restored.emplace(identity, position);
        source->known_paths.insert(path);
      }
      ::close(fd);
    }
  }
}

uint64_t Tailer::Poll(bool rescan) {
  backlog_ = false;
  if (rescan || !watcher_->active()) {
    for (auto& source : sources_) Rescan(*source);
    if (!first_scan_done_) {
      for (auto& source : sources_) source->marked_mid_line.clear();
    }
    first_scan_done_ = true;
  }
  uint64_t total = 0;
  const auto now = Clock::now();
  for (auto& source : sources_) {
    uint64_t unread = 0;
    for (auto& file : source->files) {
      const FileFollower::ReadResult read = file->Read(buffer_, options_.max_bytes_per_poll);
      total += read.bytes;
      // A writer faster than us must not keep us here: other files, stopping and saving
      // positions get their turn, and Run comes straight back.
      backlog_ |= read.backlog;
      // Read here and only here: the sibling scan must not take the copy for a new file.
      if (read.copy) source->finished.insert(*read.copy);
      unread += file->UnreadBytes();
    }
    // Rotated files that have been quiet for rotate_wait, and whose writers moved on, are done.
    std::erase_if(source->files, [&](const std::unique_ptr<FileFollower>& file) {
      const bool done =
          file->rotated() && now - file->last_data() >= options_.rotate_wait && file->Superseded();
      if (done) {
        file->Finish();
        source->finished.insert(file->identity());
        watcher_->UnwatchFile(file->watch);
        if (OpenForWriting(file->identity())) {
          spdlog::warn(
              "{} (inode {}): stopped reading this rotated file while a process still has it "
              "open for writing; what it writes there is not counted (make the service reopen "
              "its log after rotation, or use copytruncate)",
              file->path(), file->identity().inode);
          if (source->config.observer) source->config.observer->OnAbandoned(file->path());
        }
      }
      return done;
    });
    if (source->config.observer) source->config.observer->OnState(source->files.size(), unread);
  }
  return total;
}

void Tailer::Finish() {
  for (auto& source : sources_) {
    for (auto& file : source->files) file->Finish();
  }
}

bool Tailer::AllFoldersWatched() const {
  if (!watcher_->active()) return false;
  for (const auto& source : sources_) {
    // A folder that is a pattern, or that does not exist (yet): only polling finds its files.
    if (!watcher_->Watches(GlobFolder(source->config.glob))) return false;
  }
  return true;
}

namespace {

// Whether the stop event fired. Its failure is thrown: the one way to be told to stop is
// gone, and reading on would be a thread nobody can stop (polling a descriptor that answers
// at once, forever). The owner reports why the thread ended.
bool StopRequested(const pollfd& stop) {
  if (stop.revents & (POLLERR | POLLNVAL)) {
    throw std::runtime_error("its stop event file descriptor failed");
  }
  return stop.revents & POLLIN;
}

}  // namespace

void Tailer::Run(int stop_fd, const std::function<void()>& after_pass,
                 const std::vector<PolledInput*>& inputs) {
  Poll(true);
  bool input_backlog = false;
  for (PolledInput* input : inputs) input_backlog |= input->Read();
  if (after_pass) after_pass();
  auto last_rescan = Clock::now();
  bool poll_failed = false;
  std::vector<pollfd> fds;
  for (;;) {
    // With every folder watched, inotify reports what matters and the periodic rescan is only
    // a safety net; otherwise (no inotify, a folder that does not exist yet) poll.
    const auto interval = AllFoldersWatched() && !watcher_->failed() ? options_.rescan_interval
                                                                     : options_.poll_interval;
    int timeout_ms = backlog_ || input_backlog ? 0 : int(interval.count());
    // The stop request first, then inotify (always present: -1 is ignored by poll), then
    // the inputs.
    fds.assign({{stop_fd, POLLIN, 0}, {watcher_->fd(), POLLIN, 0}});
    for (PolledInput* input : inputs) {
      fds.push_back({input->WaitFd(), POLLIN, 0});
      const int input_timeout = input->WaitTimeoutMs();
      if (input_timeout >= 0 && input_timeout < timeout_ms) timeout_ms = input_timeout;
    }
    const int ready = ::poll(fds.data(), fds.size(), timeout_ms);
    if (ready > 0 && StopRequested(fds[0])) break;
    // The inotify descriptor itself failed (closed under us, or an error): like a failed
    // poll, go on by polling. A closed one is not closed again: its number may be reused.
    const bool inotify_lost =
        ready > 0 && watcher_->active() && (fds[1].revents & (POLLERR | POLLNVAL));
    if ((ready < 0 && errno != EINTR) || inotify_lost) {
      // Waiting failed: the files must still be read. Without inotify, and if even that
      // fails, by sleeping between passes and checking for the stop request directly.
      const int error = inotify_lost ? EBADF : errno;
      if (!poll_failed) {
        spdlog::error("waiting for log changes failed ({}); polling every {} ms instead",
                      inotify_lost ? "the inotify descriptor failed" : std::strerror(error),
                      options_.poll_interval.count());
      }
      poll_failed = true;
      if (watcher_->active()) {
        watcher_->Abandon(/*already_closed=*/inotify_lost && (fds[1].revents & POLLNVAL));
        for (auto& source : sources_) {
          for (auto& file : source->files) file->watch = -1;
        }
      } else {
        // Polling already, and even waiting between passes fails.
        watcher_->SetPolling(true);
        uint64_t value = 0;
        if (::read(stop_fd, &value, sizeof value) == ssize_t(sizeof value)) break;
        const timespec pause = {time_t(options_.poll_interval.count() / 1000),
                                long(options_.poll_interval.count() % 1000) * 1000000};
        ::nanosleep(&pause, nullptr);
      }
    }
    InotifyWatcher::Wakeup wakeup;
    bool input_woke = false;
    for (std::size_t i = 2; ready > 0 && i < fds.size(); ++i) input_woke |= fds[i].revents != 0;
    // A timeout, a failed wait, more to read, or news from an input (the journal).
    wakeup.relevant = ready <= 0 || backlog_ || input_backlog || input_woke;
    const bool inotify_ready = ready > 0 && watcher_->active() && (fds[1].revents & POLLIN);
    if (inotify_ready) watcher_->Drain(wakeup);
    if (ready > 0 && wakeup.relevant && (inotify_ready || input_woke)) {
      // Let a burst of small writes gather: one pass for many writes costs far less CPU than
      // a pass per write, and a few tens of milliseconds do not matter to a 15 s scrape.
      pollfd stop = {stop_fd, POLLIN, 0};
      if (!backlog_ && !input_backlog && ::poll(&stop, 1, int(options_.batch_delay.count())) > 0 &&
          StopRequested(stop)) {
        break;
      }
      if (inotify_ready && watcher_->active()) watcher_->Drain(wakeup);
    }
    const bool due = Clock::now() - last_rescan >= interval;
    if (wakeup.relevant || due) {
      Poll(wakeup.structural || due);
      if (wakeup.structural || due) last_rescan = Clock::now();
      input_backlog = false;
      for (PolledInput* input : inputs) input_backlog |= input->Read();
    }
    if (after_pass) after_pass();
  }
}

}  // namespace fastapi_exporter::access_log
