#include "collectors/access_log/tailer.hpp"

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

#include <spdlog/spdlog.h>

namespace fastapi_exporter::access_log {
namespace {

constexpr uint32_t kFingerprintBytes = 1024;

using Clock = std::chrono::steady_clock;

struct Identity {
  uint64_t device = 0;
  uint64_t inode = 0;
  bool operator==(const Identity&) const = default;
  auto operator<=>(const Identity&) const = default;
};

Identity IdentityOf(const struct stat& st) {
  return {uint64_t(st.st_dev), uint64_t(st.st_ino)};
}

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

uint64_t FingerprintFile(int fd, uint32_t& bytes) {
  char head[kFingerprintBytes];
  const ssize_t n = ::pread(fd, head, std::min<std::size_t>(bytes, sizeof head), 0);
  bytes = n > 0 ? uint32_t(n) : 0;
  uint64_t hash = 14695981039346656037ull;
  for (uint32_t i = 0; i < bytes; ++i) {
    hash ^= static_cast<unsigned char>(head[i]);
    hash *= 1099511628211ull;
  }
  return hash;
}

struct Tailer::File {
  std::string path;
  int fd = -1;
  Identity identity;
  uint64_t read_offset = 0;  // bytes read from the file
  uint64_t committed = 0;    // offset after the last line fully handed over
  std::string partial;       // the incomplete last line
  bool skipping = false;     // inside a line longer than the limit
  uint64_t fingerprint = 0;
  uint32_t fingerprint_bytes = 0;
  bool rotated = false;  // its path names another file now: drain it, then close
  int watch = -1;        // inotify watch of its writes
  Clock::time_point last_data = Clock::now();
  std::unique_ptr<LineSink> sink;

  ~File() {
    if (fd >= 0) ::close(fd);
  }
};

struct Tailer::Source {
  TailSource config;
  std::vector<std::unique_ptr<File>> files;
  std::map<Identity, FilePosition> restored;  // saved positions, until their file is opened
  std::set<std::string> known_paths;          // paths read by an earlier run
  std::set<std::string> open_errors;          // paths whose open failed (reported once)
  std::string no_file_reason;                 // why the glob matched nothing, last reported
  // Rotated siblings (access.log.1, access.log-20261127) by identity: those that were there
  // before we started (never read), and those we read to their end and closed.
  std::set<Identity> preexisting;
  std::set<Identity> finished;
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
    for (auto& file : source->files) {
      // A file that was empty (or short) when opened gets its full fingerprint later.
      if (file->fingerprint_bytes < kFingerprintBytes &&
          file->read_offset > file->fingerprint_bytes) {
        file->fingerprint_bytes = kFingerprintBytes;
        file->fingerprint = FingerprintFile(file->fd, file->fingerprint_bytes);
      }
      positions.files.push_back({source->config.id, file->path, file->identity.device,
                                 file->identity.inode, file->committed, file->fingerprint,
                                 file->fingerprint_bytes});
    }
    // Saved positions of files not opened (yet) in this run are kept.
    for (const auto& [identity, position] : source->restored) positions.files.push_back(position);
  }
  return positions;
}

void Tailer::WatchFolder(const std::string& folder) {
  if (inotify_fd_ < 0 || watches_.contains(folder)) return;
  // Only files appearing, moving and going: writes are watched on the files themselves, so
  // the other files of a busy folder such as /var/log do not wake us.
  const int watch = ::inotify_add_watch(
      inotify_fd_, folder.c_str(),
      IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF);
  if (watch >= 0) watches_[folder] = watch;
}

int Tailer::WatchFile(const std::string& path) {
  if (inotify_fd_ < 0) return -1;
  // inotify gives one watch per inode: files open in several sources share it.
  const int watch = ::inotify_add_watch(inotify_fd_, path.c_str(), IN_MODIFY);
  if (watch >= 0) ++file_watch_users_[watch];
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
  auto file = std::make_unique<File>();
  file->path = path;
  file->fd = fd;
  file->identity = IdentityOf(st);
  file->fingerprint_bytes = kFingerprintBytes;
  file->fingerprint = FingerprintFile(fd, file->fingerprint_bytes);
  file->sink = source.config.make_sink();
  // A line split across two reads is assembled here; typical lines then never allocate.
  file->partial.reserve(std::min<std::size_t>(options_.max_line_bytes, 4096));

  uint64_t start = 0;
  const auto restored = source.restored.find(file->identity);
  if (options_.from_beginning) {
    start = 0;
  } else if (restored != source.restored.end()) {
    // Resume where the last run stopped, if this is still the same file.
    uint32_t bytes = restored->second.fingerprint_bytes;
    const uint64_t fingerprint = FingerprintFile(fd, bytes);
    const bool same =
        bytes == restored->second.fingerprint_bytes && fingerprint == restored->second.fingerprint;
    if (same && restored->second.offset <= uint64_t(st.st_size)) start = restored->second.offset;
    source.restored.erase(restored);
  } else if (first_scan && !source.known_paths.contains(path) &&
             source.config.start_at == config::StartAt::kEnd) {
    start = uint64_t(st.st_size);
    // Starting mid-line would count half a line: skip to the next newline.
    char last = '\n';
    if (start > 0 && ::pread(fd, &last, 1, off_t(start - 1)) == 1 && last != '\n') {
      file->skipping = true;
    }
  }
  file->read_offset = start;
  file->committed = start;
  spdlog::debug("tailing {} (inode {}) from offset {}", path, file->identity.inode, start);
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
      if (IdentityOf(st) != Identity{position.device, position.inode}) continue;
      OpenFile(source, it->path().string(), st, true);
      if (!source.files.empty() && source.files.back()->identity == IdentityOf(st)) {
        source.files.back()->rotated = true;
      }
      break;
    }
  }
}

void Tailer::Rescan(Source& source) {
  const bool first_scan = !first_scan_done_;
  std::set<std::string> seen_paths;
  for (const std::string& path : Glob(source.config.glob)) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    seen_paths.insert(path);
    const Identity identity = IdentityOf(st);
    bool already_open = false;
    for (auto& file : source.files) {
      if (file->identity == identity) {
        already_open = true;
        if (file->path != path && !file->rotated) file->path = path;  // renamed within the glob
      } else if (file->path == path && !file->rotated) {
        // The path names another file now: rename-and-create rotation or a re-pointed link.
        file->rotated = true;
        if (source.config.observer) source.config.observer->OnRotation(path);
      }
    }
    if (!already_open) OpenFile(source, path, st, first_scan);
  }
  // Open files whose path is gone (renamed out of the glob, deleted) are drained.
  for (auto& file : source.files) {
    if (!file->rotated && !seen_paths.contains(file->path)) {
      file->rotated = true;
      if (source.config.observer) source.config.observer->OnRotation(file->path);
    }
  }
  if (first_scan) {
    RecoverRotatedAway(source);
    source.restored.clear();  // files of the last run that are gone for good
  }
  ScanRotatedSiblings(source, seen_paths, first_scan);
  const std::string folder = std::filesystem::path(source.config.glob).parent_path().string();
  WatchFolder(folder);
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
    if (file->fingerprint_bytes == 0) continue;
    uint32_t bytes = file->fingerprint_bytes;
    if (FingerprintFile(fd, bytes) == file->fingerprint && bytes == file->fingerprint_bytes) {
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
  std::map<std::string, std::vector<std::string>> prefixes_by_folder;
  for (const std::string& path : live_paths) {
    const std::filesystem::path p(path);
    auto& prefixes = prefixes_by_folder[p.parent_path().string()];
    prefixes.push_back(p.filename().string() + ".");
    prefixes.push_back(p.filename().string() + "-");
  }
  std::set<Identity> present;
  for (const auto& [folder, prefixes] : prefixes_by_folder) {
    std::error_code ec;
    for (std::filesystem::directory_iterator it(folder, ec), end; !ec && it != end;
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (IsCompressed(name) || live_paths.contains(it->path().string())) continue;
      if (std::none_of(prefixes.begin(), prefixes.end(),
                       [&](const std::string& prefix) { return name.starts_with(prefix); })) {
        continue;
      }
      struct stat st;
      if (::stat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      const Identity identity = IdentityOf(st);
      present.insert(identity);
      if (source.finished.contains(identity) || source.preexisting.contains(identity)) continue;
      if (std::any_of(source.files.begin(), source.files.end(),
                      [&](const auto& file) { return file->identity == identity; })) {
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
      if (!source.files.empty() && source.files.back()->identity == identity) {
        source.files.back()->rotated = true;
      }
    }
  }
  // Forget files that are gone, so these sets stay small. Only now and then, and only after a
  // scan that saw siblings: while the live file is briefly missing (between a rename and the
  // new file), nothing is scanned and everything would look gone.
  constexpr std::size_t kPruneAbove = 1024;
  if (!present.empty() && source.finished.size() + source.preexisting.size() > kPruneAbove) {
    std::erase_if(source.finished, [&](const Identity& id) { return !present.contains(id); });
    std::erase_if(source.preexisting, [&](const Identity& id) { return !present.contains(id); });
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
      total += ReadFile(*source, *file);
      struct stat st;
      if (::fstat(file->fd, &st) == 0 && uint64_t(st.st_size) > file->read_offset) {
        unread += uint64_t(st.st_size) - file->read_offset;
      }
    }
    // Rotated files that have been quiet for rotate_wait are done.
    std::erase_if(source->files, [&](const std::unique_ptr<File>& file) {
      const bool done = file->rotated && now - file->last_data >= options_.rotate_wait;
      if (done) {
        source->finished.insert(file->identity);
        UnwatchFile(file->watch);
      }
      return done;
    });
    if (source->config.observer) source->config.observer->OnState(source->files.size(), unread);
  }
  return total;
}

// copytruncate copies the file, then truncates it: lines written between our last read and
// the copy are only in the copy. Find it next to the file (same first bytes, at least as
// long as what we read) and return an open descriptor, or -1.
int FindTruncatedCopy(const std::string& path, uint64_t fingerprint, uint32_t fingerprint_bytes,
                      uint64_t read_offset, uint64_t own_inode, Identity& copy_identity) {
  if (fingerprint_bytes == 0) return -1;
  std::error_code ec;
  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  for (std::filesystem::directory_iterator it(folder, ec), end; !ec && it != end;
       it.increment(ec)) {
    struct stat st;
    if (::stat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
        uint64_t(st.st_ino) == own_inode || uint64_t(st.st_size) < read_offset) {
      continue;
    }
    const int fd = ::open(it->path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    uint32_t bytes = fingerprint_bytes;
    if (FingerprintFile(fd, bytes) == fingerprint && bytes == fingerprint_bytes) {
      copy_identity = IdentityOf(st);
      return fd;
    }
    ::close(fd);
  }
  return -1;
}

uint64_t Tailer::ReadFile(Source& source, File& file) {
  struct stat st;
  if (::fstat(file.fd, &st) != 0) return 0;
  bool truncated = uint64_t(st.st_size) < file.read_offset;
  if (!truncated && file.fingerprint_bytes > 0) {
    // Truncated and written again up to (or past) where we were: the size alone cannot tell,
    // the first bytes can.
    uint32_t bytes = file.fingerprint_bytes;
    truncated = FingerprintFile(file.fd, bytes) != file.fingerprint;
  }
  if (truncated) {
    // copytruncate, or any truncation: the file starts over. First read what the copy holds
    // beyond what was read, so no line is lost to the copy.
    if (source.config.observer) source.config.observer->OnTruncation(file.path);
    Identity copy_identity;
    int copy = FindTruncatedCopy(file.path, file.fingerprint, file.fingerprint_bytes,
                                 file.read_offset, file.identity.inode, copy_identity);
    spdlog::debug("{} (inode {}) truncated at offset {}; copy found: {}", file.path,
                  file.identity.inode, file.read_offset, copy >= 0 ? copy_identity.inode : 0);
    if (copy >= 0) {
      // Read here and only here: the sibling scan must not take the copy for a new file.
      source.finished.insert(copy_identity);
      std::swap(file.fd, copy);
      ReadFile(source, file);
      std::swap(file.fd, copy);
      ::close(copy);
    }
    file.read_offset = 0;
    file.committed = 0;
    file.partial.clear();
    file.skipping = false;
    file.sink = source.config.make_sink();
    file.fingerprint_bytes = 0;
  }
  uint64_t total = 0;
  for (;;) {
    if (total >= options_.max_bytes_per_poll) {
      // A writer faster than us must not keep us here: other files, stopping and saving
      // positions get their turn, and Run comes straight back.
      backlog_ = true;
      break;
    }
    const ssize_t n = ::pread(file.fd, buffer_.data(), buffer_.size(), off_t(file.read_offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    const uint64_t start = file.read_offset;
    file.read_offset += uint64_t(n);
    total += uint64_t(n);
    Deliver(file, buffer_.data(), std::size_t(n), start);
    if (std::size_t(n) < buffer_.size()) break;
  }
  if (total > 0) {
    if (file.fingerprint_bytes < kFingerprintBytes) {
      // Truncation recovery and saved positions rely on the first bytes' fingerprint.
      file.fingerprint_bytes = kFingerprintBytes;
      file.fingerprint = FingerprintFile(file.fd, file.fingerprint_bytes);
    }
    file.last_data = Clock::now();
    if (source.config.observer) source.config.observer->OnBytesRead(total);
  }
  return total;
}

void Tailer::DeliverLine(File& file, std::string_view line, uint64_t end_offset) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() > options_.max_line_bytes) {
    file.sink->OnLineTooLong();
  } else {
    file.sink->OnLine(line);
  }
  if (!file.sink->HoldsPartial()) file.committed = end_offset;
}

void Tailer::Deliver(File& file, const char* data, std::size_t size, uint64_t start_offset) {
  std::size_t pos = 0;
  while (pos < size) {
    const char* newline = static_cast<const char*>(std::memchr(data + pos, '\n', size - pos));
    if (!newline) {
      // An incomplete line: keep it (bounded) until its newline arrives.
      if (!file.skipping) {
        if (file.partial.size() + (size - pos) > options_.max_line_bytes) {
          file.partial.clear();
          file.skipping = true;
          file.sink->OnLineTooLong();
        } else {
          file.partial.append(data + pos, size - pos);
        }
      }
      return;
    }
    const std::size_t end = std::size_t(newline - data);
    const uint64_t end_offset = start_offset + end + 1;
    if (file.skipping) {
      file.skipping = false;  // the over-long line ends here; it was already counted
      if (!file.sink->HoldsPartial()) file.committed = end_offset;
    } else if (!file.partial.empty()) {
      file.partial.append(data + pos, end - pos);
      DeliverLine(file, file.partial, end_offset);
      file.partial.clear();
    } else {
      DeliverLine(file, std::string_view(data + pos, end - pos), end_offset);
    }
    pos = end + 1;
  }
}

bool Tailer::AllFoldersWatched() const {
  if (inotify_fd_ < 0) return false;
  for (const auto& source : sources_) {
    if (!watches_.contains(std::filesystem::path(source->config.glob).parent_path().string())) {
      return false;
    }
  }
  return true;
}

void Tailer::Run(int stop_fd, const std::function<void()>& after_pass) {
  Poll(true);
  if (after_pass) after_pass();
  auto last_rescan = Clock::now();
  alignas(inotify_event) char events[16 * 1024];
  for (;;) {
    // With every folder watched, inotify reports what matters and the periodic rescan is only
    // a safety net; otherwise (no inotify, a folder that does not exist yet) poll.
    const auto interval = AllFoldersWatched() ? options_.rescan_interval : options_.poll_interval;
    const int timeout_ms = backlog_ ? 0 : int(interval.count());
    pollfd fds[2] = {{stop_fd, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
    const int ready = ::poll(fds, inotify_fd_ >= 0 ? 2 : 1, timeout_ms);
    if (ready < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) break;
    bool structural = false;
    if (inotify_fd_ >= 0 && (fds[1].revents & POLLIN)) {
      // Let a burst of small writes gather: one pass for many writes costs far less CPU than
      // a pass per write, and a few tens of milliseconds do not matter to a 15 s scrape.
      pollfd stop = {stop_fd, POLLIN, 0};
      if (!backlog_ && ::poll(&stop, 1, int(options_.batch_delay.count())) > 0) break;
      for (;;) {
        const ssize_t n = ::read(inotify_fd_, events, sizeof events);
        if (n <= 0) break;
        for (char* p = events; p < events + n;) {
          const auto* event = reinterpret_cast<const inotify_event*>(p);
          if (event->mask & ~(IN_MODIFY | IN_CLOSE_WRITE)) structural = true;
          if (event->mask & IN_IGNORED) {
            std::erase_if(watches_, [&](const auto& watch) { return watch.second == event->wd; });
            file_watch_users_.erase(event->wd);
          }
          p += sizeof(inotify_event) + event->len;
        }
      }
    }
    const bool due = Clock::now() - last_rescan >= interval;
    Poll(structural || due);
    if (structural || due) last_rescan = Clock::now();
    if (after_pass) after_pass();
  }
}

}  // namespace fastapi_exporter::access_log
