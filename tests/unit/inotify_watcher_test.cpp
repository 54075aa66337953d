#include "collectors/access_log/inotify_watcher.hpp"

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "tests/unit/polling_observer.hpp"

namespace fastapi_exporter::access_log {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class InotifyWatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "watcher-XXXXXX").string();
    ASSERT_TRUE(mkdtemp(pattern.data()));
    dir = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(Path("locked"), fs::perms::owner_all, ec);
    fs::remove_all(dir);
  }

  std::string Path(const std::string& name) { return dir + "/" + name; }
  void Append(const std::string& name, const std::string& text) {
    std::ofstream(Path(name), std::ios::app) << text;
  }
  // Drains what inotify has queued (events are queued when the change is made).
  static InotifyWatcher::Wakeup Drain(InotifyWatcher& watcher) {
    InotifyWatcher::Wakeup wakeup;
    watcher.Drain(wakeup);
    return wakeup;
  }

  std::string dir;
  PollingObserver observer;
};

TEST_F(InotifyWatcherTest, FilesAppearingInAWatchedFolderCallForARescan) {
  InotifyWatcher watcher(true, 1s, &observer);
  ASSERT_TRUE(watcher.active());
  watcher.WatchFolder(dir);
  EXPECT_TRUE(watcher.Watches(dir));
  EXPECT_FALSE(Drain(watcher).relevant);
  Append("a.log", "1\n");
  const auto created = Drain(watcher);
  EXPECT_TRUE(created.structural);
  EXPECT_TRUE(created.relevant);
  // Writes to a file are not watched through its folder.
  Append("a.log", "2\n");
  EXPECT_FALSE(Drain(watcher).relevant);
  fs::rename(Path("a.log"), Path("a.log.1"));
  EXPECT_TRUE(Drain(watcher).structural);
  EXPECT_FALSE(watcher.failed());
  EXPECT_EQ(observer.calls, 0);
}

TEST_F(InotifyWatcherTest, AnOverflowingQueueCallsForARescanAndIsReportedOnce) {
  InotifyWatcher watcher(true, 1s, &observer);
  watcher.WatchFolder(dir);
  // More files created than the queue holds (the kernel's limit for every instance, read
  // from where the kernel takes it), none of them read yet: the queue ends in one
  // IN_Q_OVERFLOW, and the events past it are gone.
  long limit = 0;
  ASSERT_TRUE(std::ifstream("/proc/sys/fs/inotify/max_queued_events") >> limit);
  if (limit > 200'000)
    GTEST_SKIP() << "fs.inotify.max_queued_events " << limit << ": too many files";
  for (long i = 0; i <= limit; ++i) {
    const int fd = ::open(Path("f" + std::to_string(i)).c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    ::close(fd);
  }
  const auto overflowed = Drain(watcher);
  EXPECT_TRUE(overflowed.structural);
  EXPECT_EQ(observer.overflows, 1);
  // Drained: the next change is an ordinary event again.
  Append("a.log", "1\n");
  EXPECT_TRUE(Drain(watcher).structural);
  EXPECT_EQ(observer.overflows, 1);
  EXPECT_FALSE(watcher.failed());
  EXPECT_EQ(observer.calls, 0);  // an overflow is not polling: the watches still work
}

TEST_F(InotifyWatcherTest, FoldersAboveTheLogsMatterOnlyForTheNameBelow) {
  fs::create_directories(Path("app/logs"));
  InotifyWatcher watcher(true, 1s, &observer);
  watcher.WatchFolderChain(Path("app/logs"));
  EXPECT_TRUE(watcher.Watches(Path("app/logs")));
  EXPECT_TRUE(watcher.Watches(Path("app")));
  EXPECT_TRUE(watcher.Watches(dir));
  // Another entry of a folder above: a compiler's temporary file, say.
  Append("app/other.tmp", "x");
  fs::create_directory(Path("app/cache"));
  const auto other = Drain(watcher);
  EXPECT_FALSE(other.structural);
  EXPECT_FALSE(other.relevant);
  // The logs' folder moving away matters.
  fs::rename(Path("app/logs"), Path("app/logs.old"));
  EXPECT_TRUE(Drain(watcher).structural);
  // A pattern: only what comes before it is watched.
  InotifyWatcher pattern(true, 1s, &observer);
  pattern.WatchFolderChain(Path("app/*/x"));
  EXPECT_TRUE(pattern.Watches(Path("app")));
  EXPECT_FALSE(pattern.Watches(Path("app/*/x")));
}

TEST_F(InotifyWatcherTest, WritesToFollowedFilesAreRelevantAndWatchesAreShared) {
  Append("a.log", "");
  InotifyWatcher watcher(true, 1s, &observer);
  const int first = watcher.WatchFile(Path("a.log"));
  const int second = watcher.WatchFile(Path("a.log"));  // another source's file, same inode
  ASSERT_GE(first, 0);
  EXPECT_EQ(first, second);
  Append("a.log", "1\n");
  const auto written = Drain(watcher);
  EXPECT_TRUE(written.relevant);
  EXPECT_FALSE(written.structural);
  watcher.UnwatchFile(first);
  Append("a.log", "2\n");
  EXPECT_TRUE(Drain(watcher).relevant);  // still used by the other
  watcher.UnwatchFile(second);
  Drain(watcher);  // the removal's IN_IGNORED
  Append("a.log", "3\n");
  EXPECT_FALSE(Drain(watcher).relevant);
  EXPECT_EQ(watcher.WatchFile(Path("missing.log")), -1);
  EXPECT_FALSE(watcher.failed());  // a file gone in between is no failure
}

TEST_F(InotifyWatcherTest, WithoutInotifyByChoiceNothingIsReported) {
  InotifyWatcher watcher(false, 1s, &observer);
  EXPECT_FALSE(watcher.active());
  EXPECT_EQ(watcher.fd(), -1);
  watcher.WatchFolderChain(dir);
  EXPECT_EQ(watcher.WatchFile(Path("a.log")), -1);
  EXPECT_FALSE(watcher.Watches(dir));
  EXPECT_EQ(observer.calls, 0);
}

TEST_F(InotifyWatcherTest, LosingTheDescriptorFallsBackToPollingOnce) {
  InotifyWatcher watcher(true, 1s, &observer);
  watcher.WatchFolder(dir);
  watcher.Abandon(/*already_closed=*/false);
  EXPECT_FALSE(watcher.active());
  EXPECT_TRUE(watcher.failed());
  EXPECT_FALSE(watcher.Watches(dir));
  EXPECT_TRUE(observer.polling);
  watcher.SetPolling(true);
  watcher.WatchFolder(dir);  // nothing to watch with any more
  EXPECT_EQ(observer.calls, 1);
}

// inotify_add_watch needs read permission: a folder the exporter may not read cannot be
// watched (EACCES), and its files are polled for, which is said once.
TEST_F(InotifyWatcherTest, AFolderThatCannotBeWatchedFallsBackToPollingAndSaysSo) {
  fs::create_directory(Path("locked"));
  Append("locked-file.log", "");
  fs::permissions(dir, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  fs::permissions(Path("locked"),
                  fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec);
  fs::permissions(Path("locked-file.log"), fs::perms::none);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Root reads anything: as root, become nobody for the test.
    if (::geteuid() == 0 &&
        (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
         ::setresuid(65534, 65534, 65534) != 0)) {
      _exit(77);  // no CAP_SETUID (a restricted container): cannot test as another user
    }
    PollingObserver polling;
    InotifyWatcher watcher(true, 1s, &polling);
    if (!watcher.active()) _exit(3);
    watcher.WatchFolder(Path("locked"));
    const bool folder_failed = watcher.failed() && polling.polling && polling.calls == 1;
    watcher.WatchFile(Path("locked-file.log"));
    const bool once = polling.calls == 1 && !watcher.Watches(Path("locked"));
    _exit(folder_failed && once ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "root without CAP_SETUID: cannot become nobody";
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace fastapi_exporter::access_log
