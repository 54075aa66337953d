// Tells the Tailer when to look, through inotify(7): watches on the logs' folders (files
// appearing, moving, going), on each folder above them (for the one name below that
// matters: a deploy moving or re-creating a folder), and on the open files (writes).
//
// Where inotify or a watch cannot be had (inotify_init1 failing, ENOSPC out of watches,
// EACCES), or the descriptor itself fails, nothing is missed, only found later by polling:
// that is logged once and reported through TailerObserver::OnPolling. A folder above the
// logs that cannot be watched (a 0711 home) is left to the periodic rescan, at debug level.
#pragma once

#include <sys/inotify.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "collectors/access_log/tailer.hpp"

namespace fastapi_exporter::access_log {

class InotifyWatcher {
 public:
  // Without `use_inotify` there is nothing to watch with, by choice: not reported as polling.
  InotifyWatcher(bool use_inotify, std::chrono::milliseconds poll_interval,
                 TailerObserver* observer);
  ~InotifyWatcher();
  InotifyWatcher(const InotifyWatcher&) = delete;
  InotifyWatcher& operator=(const InotifyWatcher&) = delete;

  // The descriptor to wait on; -1 without inotify.
  int fd() const { return fd_; }
  bool active() const { return fd_ >= 0; }
  // Some folder or file could not be watched: changes must be polled for.
  bool failed() const { return failed_; }
  // Whether `folder` (as the glob names it) has a watch of its own.
  bool Watches(const std::string& folder) const { return watches_.contains(folder); }

  // Watches a folder holding (or meant to hold) the logs; with `child`, a folder above them,
  // for that entry only. A folder that does not exist is not watched (its parent's watch
  // reports its creation); a folder replaced by another gets a new watch.
  void WatchFolder(const std::string& folder, const std::string& child = {});
  // The glob's folder (up to its first pattern) and every folder above it.
  void WatchFolderChain(const std::string& folder);
  // Watches an open file's writes; files open in several sources share the inotify watch.
  // Returns the watch, or -1.
  int WatchFile(const std::string& path);
  void UnwatchFile(int watch);

  struct Wakeup {
    bool structural = false;  // the set of files may have changed: rescan
    bool relevant = false;    // something followed changed: read
  };
  // Reads every queued event into `wakeup`. Events about other entries of a watched folder
  // above the logs (/tmp, /var) cost this read and nothing more.
  void Drain(Wakeup& wakeup);

  // inotify failed as a whole (the descriptor in error, or closed under us when
  // `already_closed`: its number may be reused, so it is not closed again): every watch is
  // gone and changes are polled for from now on.
  void Abandon(bool already_closed);
  // Reports polling (to the observer, when it changes).
  void SetPolling(bool polling);

 private:
  struct FolderWatch {
    int watch = -1;
    uint64_t device = 0;
    uint64_t inode = 0;
  };
  // Which events of a folder watch call for a rescan: all of them for a folder holding (or
  // meant to hold) the files, those naming the next folder down for its parents.
  struct WatchInterest {
    bool all = false;
    std::set<std::string> children;
  };

  bool Matters(int watch, uint32_t mask, std::string_view name) const;
  void DropFolderWatch(int watch);
  void Failed(const std::string& what, int error);
  void Overflowed();

  std::chrono::milliseconds poll_interval_;
  TailerObserver* observer_;
  int fd_ = -1;
  std::map<std::string, FolderWatch> watches_;  // folder -> watch of the folder it named
  std::map<int, WatchInterest> interest_;       // folder watch -> what matters
  std::map<int, int> file_watch_users_;         // file watch -> open files using it
  bool failed_ = false;                         // some folder or file is not watched
  bool polling_ = false;                        // last reported to the observer
  bool overflow_logged_ = false;
  alignas(inotify_event) char events_[16 * 1024];
};

}  // namespace fastapi_exporter::access_log
