#include "collectors/access_log/tailer.hpp"

#include "collectors/access_log/line_framer.hpp"

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

// Whether a process has the file open for writing, as far as /proc lets us see (all of it as
// root, the processes of our own user otherwise). Only asked when a rotated file is closed.
bool OpenForWriting(const Identity& identity) {
  std::error_code ec;
  for (std::filesystem::directory_iterator proc("/proc", ec), end; !ec && proc != end;
       proc.increment(ec)) {
    const std::string pid = proc->path().filename().string();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code fd_ec;
    for (std::filesystem::directory_iterator fd(proc->path() / "fd", fd_ec); !fd_ec && fd != end;
         fd.increment(fd_ec)) {
      struct stat st;
      if (::stat(fd->path().c_str(), &st) != 0 || IdentityOf(st) != identity) continue;
      const std::string info = "/proc/" + pid + "/fdinfo/" + fd->path().filename().string();
      const int info_fd = ::open(info.c_str(), O_RDONLY | O_CLOEXEC);
      if (info_fd < 0) continue;
      char text[256];
      const ssize_t n = ::read(info_fd, text, sizeof text - 1);
      ::close(info_fd);
      if (n <= 0) continue;
      text[n] = '\0';
      const char* flags = std::strstr(text, "flags:");
      if (!flags) continue;
      if ((std::strtoul(flags + 6, nullptr, 8) & O_ACCMODE) != O_RDONLY) return true;
    }
  }
  return false;
}

}  // namespace

uint64_t FirstNonNul(int fd) {
  char chunk[4096];
  uint64_t offset = 0;
  for (;;) {
    // A hole (what a write past the end leaves) is skipped without reading it.
    const off_t data = ::lseek(fd, off_t(offset), SEEK_DATA);
    if (data < 0 && errno == ENXIO) {
      struct stat st;
      return ::fstat(fd, &st) == 0 ? uint64_t(st.st_size) : offset;
    }
    if (data > 0) offset = uint64_t(data);
    const ssize_t n = ::pread(fd, chunk, sizeof chunk, off_t(offset));
    if (n <= 0) return offset;
    for (ssize_t i = 0; i < n; ++i) {
      if (chunk[i] != '\0') return offset + uint64_t(i);
    }
    offset += uint64_t(n);
  }
}

uint64_t FingerprintAt(int fd, uint64_t offset, uint32_t& bytes) {
  char head[kFingerprintBytes];
  const ssize_t n = ::pread(fd, head, std::min<std::size_t>(bytes, sizeof head), off_t(offset));
  bytes = n > 0 ? uint32_t(n) : 0;
  uint64_t hash = 14695981039346656037ull;
  for (uint32_t i = 0; i < bytes; ++i) {
    hash ^= static_cast<unsigned char>(head[i]);
    hash *= 1099511628211ull;
  }
  return hash;
}

uint64_t FingerprintFile(int fd, uint32_t& bytes, uint64_t* data_start) {
  const uint64_t start = FirstNonNul(fd);
  if (data_start) *data_start = start;
  return FingerprintAt(fd, start, bytes);
}

struct Tailer::File {
  std::string path;
  int fd = -1;
  Identity identity;
  uint64_t read_offset = 0;  // bytes read from the file
  LineFramer framer;
  uint64_t fingerprint = 0;
  uint32_t fingerprint_bytes = 0;
  uint64_t data_start = 0;  // where the fingerprinted bytes start (after leading NULs)
  // The byte before read_offset as it was read: if it reads otherwise now, the file was
  // truncated and written again past where we were.
  char last_byte = 0;
  bool has_last_byte = false;
  bool rotated = false;      // its path names another file now: drain it, then close
  std::string rotated_from;  // the path whose writers it had: done when they moved on
  int watch = -1;            // inotify watch of its writes
  Clock::time_point last_data = Clock::now();
  std::unique_ptr<LineSink> sink;

  explicit File(std::size_t max_line_bytes) : framer(max_line_bytes) {}
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
    for (auto& file : source->files) {
      // A file that was empty (or short) when opened gets its full fingerprint later.
      if (file->fingerprint_bytes < kFingerprintBytes &&
          file->read_offset > file->data_start + file->fingerprint_bytes) {
        file->fingerprint_bytes = kFingerprintBytes;
        file->fingerprint = FingerprintFile(file->fd, file->fingerprint_bytes, &file->data_start);
      }
      positions.files.push_back({source->config.id, file->path, file->identity.device,
                                 file->identity.inode, file->framer.committed(), file->fingerprint,
                                 file->fingerprint_bytes});
    }
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

int FindTruncatedCopy(const std::string& path, uint64_t fingerprint, uint32_t fingerprint_bytes,
                      uint64_t read_offset, uint64_t own_inode, Identity& copy_identity);

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
  auto file = std::make_unique<File>(options_.max_line_bytes);
  file->path = path;
  file->fd = fd;
  file->identity = IdentityOf(st);
  file->fingerprint_bytes = kFingerprintBytes;
  file->fingerprint = FingerprintFile(fd, file->fingerprint_bytes, &file->data_start);
  file->rotated_from = path;
  file->sink = source.config.make_sink();

  uint64_t start = 0;
  bool mid_line = false;
  const auto restored = source.restored.find(file->identity);
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
    } else {
      RecoverTruncatedWhileStopped(source, *file, restored->second);
    }
    source.restored.erase(restored);
  } else if (first_scan && !source.known_paths.contains(path) &&
             source.config.start_at == config::StartAt::kEnd) {
    start = uint64_t(st.st_size);
    // Starting mid-line would count half a line: skip to the next newline.
    char last = '\n';
    mid_line = start > 0 && ::pread(fd, &last, 1, off_t(start - 1)) == 1 && last != '\n';
  }
  file->read_offset = start;
  if (mid_line) {
    file->framer.SkipToNextLine(start);
  } else {
    file->framer.Reset(start);
  }
  if (start > 0 && ::pread(fd, &file->last_byte, 1, off_t(start - 1)) == 1) {
    file->has_last_byte = true;
  }
  spdlog::debug("tailing {} (inode {}) from offset {}", path, file->identity.inode, start);
  WatchFolder(std::filesystem::path(path).parent_path().string());
  std::error_code ec;
  const auto target = std::filesystem::canonical(path, ec);
  if (!ec) WatchFolder(target.parent_path().string());
  file->watch = WatchFile(path);
  source.files.push_back(std::move(file));
}

void Tailer::RecoverTruncatedWhileStopped(Source& source, File& file, const FilePosition& saved) {
  // The file of the last run, truncated while the daemon was stopped: copytruncate's copy
  // (same first bytes, at least as long as what was read) holds what was written between the
  // saved position and the copy. Read that, and only that, as a running tailer would have;
  // the copy is then done with, so the sibling scan does not read it again from its start.
  Identity copy_identity;
  int copy = FindTruncatedCopy(file.path, saved.fingerprint, saved.fingerprint_bytes, saved.offset,
                               file.identity.inode, copy_identity);
  if (copy < 0) return;
  spdlog::debug("{} was truncated while stopped; reading its copy (inode {}) from offset {}",
                file.path, copy_identity.inode, saved.offset);
  source.finished.insert(copy_identity);
  const uint64_t fingerprint = file.fingerprint;
  const uint32_t fingerprint_bytes = file.fingerprint_bytes;
  const uint64_t data_start = file.data_start;
  std::swap(file.fd, copy);
  file.fingerprint_bytes = saved.fingerprint_bytes;
  file.fingerprint = FingerprintFile(file.fd, file.fingerprint_bytes, &file.data_start);
  file.read_offset = saved.offset;  // a line boundary: bytes fully handled
  file.framer.Reset(saved.offset);
  file.has_last_byte =
      saved.offset > 0 && ::pread(file.fd, &file.last_byte, 1, off_t(saved.offset - 1)) == 1;
  // A read stops after max_bytes_per_poll: go on to the copy's end.
  while (ReadFile(source, file) > 0) {
  }
  FinishFile(file);  // the copy's last line, if it has no newline, is complete
  std::swap(file.fd, copy);
  ::close(copy);
  file.fingerprint = fingerprint;
  file.fingerprint_bytes = fingerprint_bytes;
  file.data_start = data_start;
  file.read_offset = 0;
  file.framer.Reset(0);
  file.has_last_byte = false;
  file.sink = source.config.make_sink();
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
        source.files.back()->rotated_from = position.path;
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
    const Identity identity = IdentityOf(st);
    bool already_open = false;
    for (auto& file : source.files) {
      if (file->identity == identity) {
        already_open = true;
        if (file->path != path && !file->rotated) {
          file->path = path;  // renamed within the glob
          file->rotated_from = path;
        }
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
  // folder -> (name prefix, the live file it is a rotation of)
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> prefixes_by_folder;
  for (const std::string& path : live_paths) {
    const std::filesystem::path p(path);
    auto& prefixes = prefixes_by_folder[p.parent_path().string()];
    prefixes.emplace_back(p.filename().string() + ".", path);
    prefixes.emplace_back(p.filename().string() + "-", path);
  }
  std::set<Identity> present;
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
        source.files.back()->rotated_from = prefix->second;
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
    // Rotated files that have been quiet for rotate_wait, and whose writers moved on, are done.
    std::erase_if(source->files, [&](const std::unique_ptr<File>& file) {
      const bool done =
          file->rotated && now - file->last_data >= options_.rotate_wait && Superseded(*file);
      if (done) {
        FinishFile(*file);
        source->finished.insert(file->identity);
        UnwatchFile(file->watch);
        if (OpenForWriting(file->identity)) {
          spdlog::warn(
              "{} (inode {}): stopped reading this rotated file while a process still has it "
              "open for writing; what it writes there is not counted (make the service reopen "
              "its log after rotation, or use copytruncate)",
              file->path, file->identity.inode);
          if (source->config.observer) source->config.observer->OnAbandoned(file->path);
        }
      }
      return done;
    });
    if (source->config.observer) source->config.observer->OnState(source->files.size(), unread);
  }
  return total;
}

bool Tailer::Superseded(const File& file) const {
  // An app that never reopens its log (stdout redirected to the file) goes on writing to the
  // renamed file, after any pause: it is followed until the writers have clearly moved on to
  // a new file at its path, or it was deleted.
  struct stat st;
  if (::fstat(file.fd, &st) == 0 && st.st_nlink == 0) return true;
  if (::stat(file.rotated_from.c_str(), &st) != 0) return false;
  return IdentityOf(st) != file.identity && st.st_size > 0;
}

void Tailer::FinishFile(File& file) {
  // Nothing more comes: the bytes after the last newline are a line of their own.
  file.framer.Finish(file.read_offset, *file.sink);
}

void Tailer::Finish() {
  for (auto& source : sources_) {
    for (auto& file : source->files) FinishFile(*file);
  }
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
    truncated = FingerprintAt(file.fd, file.data_start, bytes) != file.fingerprint;
  }
  if (!truncated && file.has_last_byte && file.read_offset > 0) {
    // A writer without O_APPEND writes on at its old offset after copytruncate: the file is
    // then NULs up to there, and past where we were before we look again. Bytes already read
    // never change in a log, so a different one (a NUL) at our position is a truncation.
    char now = 0;
    truncated =
        ::pread(file.fd, &now, 1, off_t(file.read_offset - 1)) == 1 && now != file.last_byte;
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
    file.sink = source.config.make_sink();
    file.fingerprint_bytes = 0;
    file.data_start = 0;
    file.has_last_byte = false;
    // The hole a writer without O_APPEND leaves can be gigabytes of NULs: step over it.
    const off_t data = ::lseek(file.fd, 0, SEEK_DATA);
    if (data > 0) file.read_offset = uint64_t(data);
    file.framer.Reset(file.read_offset);
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
    file.last_byte = buffer_[std::size_t(n) - 1];
    file.has_last_byte = true;
    file.framer.Feed(buffer_.data(), std::size_t(n), start, *file.sink);
    if (std::size_t(n) < buffer_.size()) break;
  }
  if (total > 0) {
    if (file.fingerprint_bytes < kFingerprintBytes) {
      // Truncation recovery and saved positions rely on the first bytes' fingerprint.
      file.fingerprint_bytes = kFingerprintBytes;
      file.fingerprint = FingerprintFile(file.fd, file.fingerprint_bytes, &file.data_start);
    }
    file.last_data = Clock::now();
    if (source.config.observer) source.config.observer->OnBytesRead(total);
  }
  return total;
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
