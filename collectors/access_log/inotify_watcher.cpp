#include "collectors/access_log/inotify_watcher.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "collectors/access_log/discovery.hpp"

namespace fastapi_exporter::access_log {
namespace {

// The first word of a /proc/sys file ("16384"), or "unknown".
std::string ReadSysctl(const char* path) {
  std::string value;
  if (!(std::ifstream(path) >> value)) return "unknown";
  return value;
}

}  // namespace

InotifyWatcher::InotifyWatcher(bool use_inotify, std::chrono::milliseconds poll_interval,
                               TailerObserver* observer)
    : poll_interval_(poll_interval), observer_(observer) {
  if (use_inotify) {
    fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd_ < 0) Failed("log folders (inotify_init1)", errno);
  }
}

InotifyWatcher::~InotifyWatcher() {
  if (fd_ >= 0) ::close(fd_);
}

void InotifyWatcher::Failed(const std::string& what, int error) {
  // Nothing is missed (changes are then found by polling), only found later: say so once.
  if (!failed_) {
    spdlog::warn("cannot watch {} with inotify ({}); polling every {} ms instead", what,
                 std::strerror(error), poll_interval_.count());
  }
  failed_ = true;
  SetPolling(true);
}

void InotifyWatcher::SetPolling(bool polling) {
  if (polling == polling_) return;
  polling_ = polling;
  if (observer_) observer_->OnPolling(polling);
}

void InotifyWatcher::Abandon(bool already_closed) {
  if (fd_ >= 0 && !already_closed) ::close(fd_);
  fd_ = -1;
  watches_.clear();
  interest_.clear();
  file_watch_users_.clear();
  failed_ = true;
  SetPolling(true);
}

void InotifyWatcher::DropFolderWatch(int watch) {
  std::erase_if(watches_, [&](const auto& entry) { return entry.second.watch == watch; });
  interest_.erase(watch);
  ::inotify_rm_watch(fd_, watch);
}

void InotifyWatcher::WatchFolder(const std::string& folder, const std::string& child) {
  if (fd_ < 0) return;
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
    watch = ::inotify_add_watch(fd_, folder.c_str(),
                                IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                    IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
    if (watch < 0) {
      if (!child.empty()) {
        // A folder above the logs (one we may not read, such as a 0711 home): only a moved or
        // re-created folder is then found later, by the periodic rescan.
        spdlog::debug("cannot watch {}: {}", folder, std::strerror(errno));
      } else if (errno != ENOENT && errno != ENOTDIR) {
        Failed("folder " + folder, errno);
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

void InotifyWatcher::WatchFolderChain(const std::string& folder) {
  // The folder a glob names, and each folder above it for the one name below that matters:
  // when one of them is moved, deleted or created, the glob is resolved again at once.
  const std::filesystem::path literal = LiteralFolder(folder);
  if (literal.empty()) return;
  WatchFolder(literal.string());
  for (std::filesystem::path below = literal; below.has_relative_path();) {
    const std::filesystem::path above = below.parent_path();
    if (above == below) break;
    WatchFolder(above.string(), below.filename().string());
    below = above;
  }
}

bool InotifyWatcher::Matters(int watch, uint32_t mask, std::string_view name) const {
  if (mask & (IN_IGNORED | IN_MOVE_SELF | IN_DELETE_SELF | IN_Q_OVERFLOW | IN_UNMOUNT)) return true;
  if (!(mask & ~(IN_MODIFY | IN_CLOSE_WRITE))) return false;
  const auto interest = interest_.find(watch);
  if (interest == interest_.end() || interest->second.all) return true;
  return interest->second.children.contains(std::string(name.substr(0, name.find('\0'))));
}

int InotifyWatcher::WatchFile(const std::string& path) {
  if (fd_ < 0) return -1;
  // inotify gives one watch per inode: files open in several sources share it.
  const int watch = ::inotify_add_watch(fd_, path.c_str(), IN_MODIFY);
  if (watch >= 0) {
    ++file_watch_users_[watch];
  } else if (errno != ENOENT) {
    Failed("file " + path, errno);
  }
  return watch;
}

void InotifyWatcher::UnwatchFile(int watch) {
  const auto users = file_watch_users_.find(watch);
  if (users == file_watch_users_.end()) return;
  if (--users->second == 0) {
    ::inotify_rm_watch(fd_, watch);
    file_watch_users_.erase(users);
  }
}

void InotifyWatcher::Drain(Wakeup& wakeup) {
  for (;;) {
    const ssize_t n = ::read(fd_, events_, sizeof events_);
    if (n <= 0) break;
    for (char* p = events_; p < events_ + n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(p);
      if (Matters(event->wd, event->mask,
                  event->len > 0 ? std::string_view(event->name, event->len) : "")) {
        wakeup.structural = wakeup.relevant = true;
      } else if (file_watch_users_.contains(event->wd)) {
        wakeup.relevant = true;  // a followed file was written
      }
      if (event->mask & IN_Q_OVERFLOW) Overflowed();
      if (event->mask & IN_IGNORED) {
        std::erase_if(watches_, [&](const auto& watch) { return watch.second.watch == event->wd; });
        interest_.erase(event->wd);
        file_watch_users_.erase(event->wd);
      }
      p += sizeof(inotify_event) + event->len;
    }
  }
}

void InotifyWatcher::Overflowed() {
  // Matters() has already asked for the rescan that finds whatever the lost events were.
  if (!overflow_logged_) {
    overflow_logged_ = true;
    spdlog::warn(
        "the inotify queue overflowed: changes came faster than they were read and every log "
        "was rescanned; if this repeats, raise fs.inotify.max_queued_events (now {})",
        ReadSysctl("/proc/sys/fs/inotify/max_queued_events"));
  }
  if (observer_) observer_->OnInotifyOverflow();
}

}  // namespace fastapi_exporter::access_log
