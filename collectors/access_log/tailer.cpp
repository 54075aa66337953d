#include "collectors/access_log/tailer.hpp"

#include "collectors/access_log/file_follower.hpp"

#include <fcntl.h>
#include <glob.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <spdlog/spdlog.h>

namespace fastapi_exporter::access_log {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> Glob(const std::string& pattern) {
  std::vector<std::string> paths;
  glob_t result{};
  if (::glob(pattern.c_str(), GLOB_NOSORT, nullptr, &result) == 0) {
    for (std::size_t i = 0; i < result.gl_pathc; ++i) paths.emplace_back(result.gl_pathv[i]);
  }
  ::globfree(&result);
  return paths;
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
  int64_t positions_saved_at = 0;  // unix time of the positions we resumed from
};

Tailer::Tailer(std::vector<TailSource> sources, TailerOptions options)
    : options_(options), buffer_(options.read_chunk_bytes) {
  // The clock file timestamps come from: the precise one runs ahead of it by up to a tick.
  ::clock_gettime(CLOCK_REALTIME_COARSE, &started_at_);
  for (auto& config : sources) {
    auto source = std::make_unique<Source>();
    source->config = std::move(config);
    sources_.push_back(std::move(source));
  }
  if (options_.use_inotify) {
    inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (inotify_fd_ < 0) WatchFailed("log folders (inotify_init1)", errno);
  }
}

Tailer::~Tailer() {
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
}

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

void Tailer::WatchFailed(const std::string& what, int error) {
  // Nothing is missed (changes are then found by polling), only found later: say so once.
  if (!watch_failed_) {
    spdlog::warn("cannot watch {} with inotify ({}); polling every {} ms instead", what,
                 std::strerror(error), options_.poll_interval.count());
  }
  watch_failed_ = true;
  SetPolling(true);
}

void Tailer::SetPolling(bool polling) {
  if (polling == polling_) return;
  polling_ = polling;
  if (options_.observer) options_.observer->OnPolling(polling);
}

void Tailer::DropFolderWatch(int watch) {
  std::erase_if(watches_, [&](const auto& entry) { return entry.second.watch == watch; });
  interest_.erase(watch);
  ::inotify_rm_watch(inotify_fd_, watch);
}

void Tailer::WatchFolder(const std::string& folder, const std::string& child) {
  if (inotify_fd_ < 0) return;
  struct stat st;
  auto known = watches_.find(folder);
  if (::stat(folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    // Gone: its watch follows the folder that moved, and must not pass for this one.
    if (known != watches_.end()) DropFolderWatch(known->second.watch);
    return;
  }
  if (known != watches_.end() &&
      (known->second.device != uint64_t(st.st_dev) || known->second.inode != uint64_t(st.st_ino))) {
    // The path names another folder now (moved away and created again, as a deploy does): the
    // old watch followed the folder that moved.
    spdlog::debug("folder {} was replaced; watching the new one", folder);
    DropFolderWatch(known->second.watch);
    known = watches_.end();
  }
  int watch = known != watches_.end() ? known->second.watch : -1;
  if (watch < 0) {
    // Only files appearing, moving and going: writes are watched on the files themselves, so
    // the other files of a busy folder such as /var/log do not wake us.
    watch = ::inotify_add_watch(inotify_fd_, folder.c_str(),
                                IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                    IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
    if (watch < 0) {
      if (!child.empty()) {
        // A folder above the logs (one we may not read, such as a 0711 home): only a moved or
        // re-created folder is then found later, by the periodic rescan.
        spdlog::debug("cannot watch {}: {}", folder, std::strerror(errno));
      } else if (errno != ENOENT && errno != ENOTDIR) {
        WatchFailed("folder " + folder, errno);
      }
      return;
    }
    watches_[folder] = {watch, uint64_t(st.st_dev), uint64_t(st.st_ino)};
  }
  WatchInterest& interest = interest_[watch];
  if (child.empty()) {
    interest.all = true;
  } else {
    interest.children.insert(child);
  }
}

void Tailer::WatchFolderChain(const std::string& folder) {
  // The folder a glob names, and each folder above it for the one name below that matters:
  // when one of them is moved, deleted or created, the glob is resolved again at once.
  std::filesystem::path literal;
  for (const auto& part : std::filesystem::path(folder)) {
    if (part.string().find_first_of("*?[") != std::string::npos) break;
    literal /= part;
  }
  if (literal.empty()) return;
  WatchFolder(literal.string());
  for (std::filesystem::path below = literal; below.has_relative_path();) {
    const std::filesystem::path above = below.parent_path();
    if (above == below) break;
    WatchFolder(above.string(), below.filename().string());
    below = above;
  }
}

bool Tailer::Matters(int watch, uint32_t mask, std::string_view name) const {
  if (mask & (IN_IGNORED | IN_MOVE_SELF | IN_DELETE_SELF | IN_Q_OVERFLOW | IN_UNMOUNT)) return true;
  if (!(mask & ~(IN_MODIFY | IN_CLOSE_WRITE))) return false;
  const auto interest = interest_.find(watch);
  if (interest == interest_.end() || interest->second.all) return true;
  return interest->second.children.contains(std::string(name.substr(0, name.find('\0'))));
}

int Tailer::WatchFile(const std::string& path) {
  if (inotify_fd_ < 0) return -1;
  // inotify gives one watch per inode: files open in several sources share it.
  const int watch = ::inotify_add_watch(inotify_fd_, path.c_str(), IN_MODIFY);
  if (watch >= 0) {
    ++file_watch_users_[watch];
  } else if (errno != ENOENT) {
    WatchFailed("file " + path, errno);
  }
  return watch;
}

void Tailer::UnwatchFile(int watch) {
  const auto users = file_watch_users_.find(watch);
  if (users == file_watch_users_.end()) return;
  if (--users->second == 0) {
    ::inotify_rm_watch(inotify_fd_, watch);
    file_watch_users_.erase(users);
  }
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

  uint64_t start = 0;
  bool mid_line = false;
  const auto restored = source.restored.find(file->identity());
  if (options_.from_beginning) {
    start = 0;
  } else if (restored != source.restored.end()) {
    // Resume where the last run stopped, if this is still the same file.
    uint32_t bytes = restored->second.fingerprint_bytes;
    const uint64_t fingerprint = FingerprintFile(fd, bytes);
    const bool same =
        bytes == restored->second.fingerprint_bytes && fingerprint == restored->second.fingerprint;
    if (same && restored->second.offset <= uint64_t(st.st_size)) {
      start = restored->second.offset;
    } else if (auto copy =
                   file->RecoverCopyAfter(restored->second, buffer_, options_.max_bytes_per_poll)) {
      // The file of the last run, truncated while the daemon was stopped: its copy is done
      // with, so the sibling scan does not read it again from its start.
      source.finished.insert(*copy);
    }
    source.restored.erase(restored);
  } else if (first_scan && !source.known_paths.contains(path) &&
             source.config.start_at == config::StartAt::kEnd) {
    start = uint64_t(st.st_size);
    // Starting mid-line would count half a line: skip to the next newline.
    char last = '\n';
    mid_line = start > 0 && ::pread(fd, &last, 1, off_t(start - 1)) == 1 && last != '\n';
  }
  if (start > 0) file->StartAt(start, mid_line);
  spdlog::debug("tailing {} (inode {}) from offset {}", path, file->identity().inode, start);
  WatchFolder(std::filesystem::path(path).parent_path().string());
  std::error_code ec;
  const auto target = std::filesystem::canonical(path, ec);
  if (!ec) WatchFolder(target.parent_path().string());
  file->watch = WatchFile(path);
  source.files.push_back(std::move(file));
}

void Tailer::RecoverRotatedAway(Source& source) {
  // Files of the last run that were renamed while the daemon was stopped (access.log ->
  // access.log.1) no longer match the glob; find them by inode next to where they were, and
  // read what was written to them after the saved offset.
  std::vector<FilePosition> pending;
  for (const auto& [identity, position] : source.restored) pending.push_back(position);
  for (const auto& position : pending) {
    const std::filesystem::path folder = std::filesystem::path(position.path).parent_path();
    std::error_code ec;
    for (std::filesystem::directory_iterator it(folder, ec), end; !ec && it != end;
         it.increment(ec)) {
      struct stat st;
      if (::stat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      if (IdentityOf(st) != FileIdentity{position.device, position.inode}) continue;
      OpenFile(source, it->path().string(), st, true);
      if (!source.files.empty() && source.files.back()->identity() == IdentityOf(st)) {
        source.files.back()->MarkRotated(position.path);
      }
      break;
    }
  }
}

void Tailer::Rescan(Source& source) {
  const bool first_scan = !first_scan_done_;
  // Watched before the glob is resolved: a file created in between is reported, not missed.
  const std::string folder = std::filesystem::path(source.config.glob).parent_path().string();
  WatchFolderChain(folder);
  std::set<std::string> seen_paths;
  for (const std::string& path : Glob(source.config.glob)) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
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
  std::string reason;
  if (none) {
    const bool folder_is_pattern = folder.find_first_of("*?[") != std::string::npos;
    if (!folder_is_pattern && ::access(folder.c_str(), R_OK | X_OK) != 0) {
      reason = "folder " + folder + ": " + std::strerror(errno);
    } else {
      reason = "no file matches yet";
    }
  }
  if (reason == source.no_file_reason) return;
  source.no_file_reason = reason;
  if (source.config.observer) source.config.observer->OnNoFile(source.config.glob, reason);
}

namespace {

bool IsCompressed(std::string_view name) {
  for (std::string_view suffix : {".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4", ".Z"}) {
    if (name.ends_with(suffix)) return true;
  }
  return false;
}

}  // namespace

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
  // folder -> (name prefix, the live file it is a rotation of)
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> prefixes_by_folder;
  for (const std::string& path : live_paths) {
    const std::filesystem::path p(path);
    auto& prefixes = prefixes_by_folder[p.parent_path().string()];
    prefixes.emplace_back(p.filename().string() + ".", path);
    prefixes.emplace_back(p.filename().string() + "-", path);
  }
  std::set<FileIdentity> present;
  for (const auto& [folder, prefixes] : prefixes_by_folder) {
    std::error_code ec;
    for (std::filesystem::directory_iterator it(folder, ec), end; !ec && it != end;
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (IsCompressed(name) || live_paths.contains(it->path().string())) continue;
      const auto prefix = std::find_if(prefixes.begin(), prefixes.end(), [&](const auto& entry) {
        return name.starts_with(entry.first);
      });
      if (prefix == prefixes.end()) continue;
      struct stat st;
      if (::stat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
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
          first_scan || st.st_mtim.tv_sec < started_at_.tv_sec ||
          (st.st_mtim.tv_sec == started_at_.tv_sec && st.st_mtim.tv_nsec < started_at_.tv_nsec);
      if (written_before_start && !written_since_saved) {
        source.preexisting.insert(identity);
        continue;
      }
      if (IsCopyOfOpenFile(source, it->path().string())) {
        spdlog::debug("{} is a copy of a file being read; not read again", it->path().string());
        // copytruncate's copy of what we read (or are reading): its tail, if any, is read
        // when the truncation is noticed; the rest was counted already.
        source.finished.insert(identity);
        continue;
      }
      OpenFile(source, it->path().string(), st, false);
      if (!source.files.empty() && source.files.back()->identity() == identity) {
        source.files.back()->MarkRotated(prefix->second);
      }
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

uint64_t Tailer::Poll(bool rescan) {
  backlog_ = false;
  if (rescan || inotify_fd_ < 0) {
    for (auto& source : sources_) Rescan(*source);
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
        UnwatchFile(file->watch);
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
  if (inotify_fd_ < 0) return false;
  for (const auto& source : sources_) {
    // A folder that is a pattern, or that does not exist (yet): only polling finds its files.
    if (!watches_.contains(std::filesystem::path(source->config.glob).parent_path().string())) {
      return false;
    }
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
  alignas(inotify_event) char events[16 * 1024];
  bool poll_failed = false;
  std::vector<pollfd> fds;
  for (;;) {
    // With every folder watched, inotify reports what matters and the periodic rescan is only
    // a safety net; otherwise (no inotify, a folder that does not exist yet) poll.
    const auto interval =
        AllFoldersWatched() && !watch_failed_ ? options_.rescan_interval : options_.poll_interval;
    int timeout_ms = backlog_ || input_backlog ? 0 : int(interval.count());
    // The stop request first, then inotify (always present: -1 is ignored by poll), then
    // the inputs.
    fds.assign({{stop_fd, POLLIN, 0}, {inotify_fd_, POLLIN, 0}});
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
        ready > 0 && inotify_fd_ >= 0 && (fds[1].revents & (POLLERR | POLLNVAL));
    if (inotify_lost && (fds[1].revents & POLLNVAL)) inotify_fd_ = -1;
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
      if (inotify_fd_ >= 0 || inotify_lost) {
        if (inotify_fd_ >= 0) ::close(inotify_fd_);
        inotify_fd_ = -1;
        watches_.clear();
        interest_.clear();
        file_watch_users_.clear();
        for (auto& source : sources_) {
          for (auto& file : source->files) file->watch = -1;
        }
        watch_failed_ = true;
        SetPolling(true);
      } else {
        uint64_t value = 0;
        if (::read(stop_fd, &value, sizeof value) == ssize_t(sizeof value)) break;
        const timespec pause = {time_t(options_.poll_interval.count() / 1000),
                                long(options_.poll_interval.count() % 1000) * 1000000};
        ::nanosleep(&pause, nullptr);
      }
    }
    bool structural = false;
    bool input_woke = false;
    for (std::size_t i = 2; ready > 0 && i < fds.size(); ++i) input_woke |= fds[i].revents != 0;
    // A timeout, a failed wait, more to read, or news from an input (the journal).
    bool relevant = ready <= 0 || backlog_ || input_backlog || input_woke;
    // Reads every queued event: which ones change the set of files, and whether any is about
    // the files or folders followed at all. Watching the folders above the logs (/tmp, /var)
    // brings events about their other entries, such as a compiler's temporary files: those
    // cost this read and nothing more, no pass over the files.
    auto drain = [&] {
      for (;;) {
        const ssize_t n = ::read(inotify_fd_, events, sizeof events);
        if (n <= 0) break;
        for (char* p = events; p < events + n;) {
          const auto* event = reinterpret_cast<const inotify_event*>(p);
          if (Matters(event->wd, event->mask,
                      event->len > 0 ? std::string_view(event->name, event->len) : "")) {
            structural = relevant = true;
          } else if (file_watch_users_.contains(event->wd)) {
            relevant = true;  // a followed file was written
          }
          if (event->mask & IN_IGNORED) {
            std::erase_if(watches_,
                          [&](const auto& watch) { return watch.second.watch == event->wd; });
            interest_.erase(event->wd);
            file_watch_users_.erase(event->wd);
          }
          p += sizeof(inotify_event) + event->len;
        }
      }
    };
    const bool inotify_ready = ready > 0 && inotify_fd_ >= 0 && (fds[1].revents & POLLIN);
    if (inotify_ready) drain();
    if (ready > 0 && relevant && (inotify_ready || input_woke)) {
      // Let a burst of small writes gather: one pass for many writes costs far less CPU than
      // a pass per write, and a few tens of milliseconds do not matter to a 15 s scrape.
      pollfd stop = {stop_fd, POLLIN, 0};
      if (!backlog_ && !input_backlog && ::poll(&stop, 1, int(options_.batch_delay.count())) > 0 &&
          StopRequested(stop)) {
        break;
      }
      if (inotify_ready && inotify_fd_ >= 0) drain();
    }
    const bool due = Clock::now() - last_rescan >= interval;
    if (relevant || due) {
      Poll(structural || due);
      if (structural || due) last_rescan = Clock::now();
      input_backlog = false;
      for (PolledInput* input : inputs) input_backlog |= input->Read();
    }
    if (after_pass) after_pass();
  }
}

}  // namespace fastapi_exporter::access_log
