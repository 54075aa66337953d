#include "collectors/access_log/tailer.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "tests/unit/count.hpp"
#include "tests/unit/polling_observer.hpp"
#include "tests/unit/tail_recorder.hpp"

namespace fastapi_exporter::access_log {
namespace {

namespace fs = std::filesystem;

class TailerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "tailer-XXXXXX").string();
    ASSERT_TRUE(mkdtemp(pattern.data()));
    dir = pattern;
  }
  void TearDown() override { fs::remove_all(dir); }

  std::unique_ptr<Tailer> MakeTailer(config::StartAt start_at = config::StartAt::kBeginning,
                                     std::size_t max_line = 1024) {
    TailerOptions options;
    options.max_line_bytes = max_line;
    options.read_chunk_bytes = 64;  // small, so lines straddle reads
    options.rotate_wait = std::chrono::milliseconds(0);
    options.use_inotify = false;
    return MakeTailer(options, dir + "/*.log", start_at);
  }
  std::unique_ptr<Tailer> MakeTailer(const TailerOptions& options, const std::string& glob,
                                     config::StartAt start_at = config::StartAt::kBeginning) {
    TailSource source;
    source.id = "svc\t" + glob;
    source.glob = glob;
    source.start_at = start_at;
    source.make_sink = [this] { return std::make_unique<RecordingSink>(recorded); };
    source.observer = &observer;
    std::vector<TailSource> sources;
    sources.push_back(std::move(source));
    return std::make_unique<Tailer>(std::move(sources), options);
  }

  void Append(const std::string& name, const std::string& text) {
    std::ofstream(dir + "/" + name, std::ios::app | std::ios::binary) << text;
  }
  std::string Path(const std::string& name) { return dir + "/" + name; }
  bool ReadsBothLinesWhilePollFails(const TailerOptions& options,
                                    const std::function<bool()>& after_first_pass);

  std::string dir;
  Recorded recorded;
  RecordingObserver observer{recorded};
};

using Lines = std::vector<std::string>;

// The tests that take the process's descriptors away cannot run under ASan + UBSan: their
// checks of memory need a pipe of their own.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitizersNeedDescriptors = true;
#else
constexpr bool kSanitizersNeedDescriptors = false;
#endif

// A writer that opens its log without O_APPEND, as `uvicorn ... > access.log` does: it writes
// on at its own offset whatever happens to the file.
class OffsetWriter {
 public:
  explicit OffsetWriter(const std::string& path)
      : fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) {}
  ~OffsetWriter() { ::close(fd_); }
  void Write(const std::string& text) {
    ASSERT_EQ(::write(fd_, text.data(), text.size()), ssize_t(text.size()));
  }

 private:
  int fd_;
};

// logrotate's copytruncate: copy, then truncate in place.
void CopyTruncate(const std::string& path, const std::string& copy) {
  fs::copy_file(path, copy, fs::copy_options::overwrite_existing);
  fs::resize_file(path, 0);
}

Lines LinesOf(Recorded& recorded) {
  std::lock_guard lock(recorded.mutex);
  return recorded.lines;
}

// Waits (bounded) for the lines a tailer running on its own thread delivers.
bool WaitForLines(Recorded& recorded, std::size_t count) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (LinesOf(recorded).size() >= count) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST_F(TailerTest, StartAtEndSkipsWhatWasThereAndWaitsForNewlines) {
  Append("a.log", "old 1\nold 2\nhalf of old");
  auto tailer = MakeTailer(config::StartAt::kEnd);
  tailer->Poll();
  EXPECT_TRUE(recorded.lines.empty());
  Append("a.log", " line\nnew 1\nnew 2 without newline");
  tailer->Poll();
  EXPECT_EQ(recorded.lines, (Lines{"new 1"}));  // the half-seen old line is not counted
  Append("a.log", " yet\r\n");
  tailer->Poll();
  EXPECT_EQ(recorded.lines, (Lines{"new 1", "new 2 without newline yet"}));
}

TEST_F(TailerTest, StartAtBeginningAndFilesCreatedLater) {
  Append("a.log", "a1\na2\n");
  auto tailer = MakeTailer(config::StartAt::kEnd);
  tailer->Poll();
  EXPECT_TRUE(recorded.lines.empty());
  Append("b.log", "b1\n");  // appeared after start: read from its beginning
  tailer->Poll();
  EXPECT_EQ(recorded.lines, (Lines{"b1"}));
  Append("other.txt", "ignored\n");
  tailer->Poll();
  EXPECT_EQ(recorded.lines.size(), 1u);
}

// The exporter marks the start when it reports ready; its reading thread may poll much later
// (it first waits for the service's routes). What is written in between is not "what was
// there before": it is read, whatever happened to the files meanwhile.
TEST_F(TailerTest, StartAtEndStartsWhereTheFilesWereWhenTheStartWasMarked) {
  Append("a.log", "old 1\nhalf of old");
  Append("b.log", "old b\n");
  Append("c.log", "old c\n");
  Append("d.log", "old d 1\nold d 2\n");
  auto tailer = MakeTailer(config::StartAt::kEnd);
  tailer->MarkStart();
  Append("a.log", " line\nafter mark a\n");  // the half-seen line is still not counted
  Append("b.log", "after mark b\n");
  fs::rename(Path("b.log"), Path("b.log.1"));  // rotated before the first poll
  Append("b.log", "new b\n");
  Append("c.log", "after mark c\n");
  CopyTruncate(Path("c.log"), Path("c.log.1"));  // copytruncate'd before the first poll
  Append("c.log", "new c\n");
  fs::resize_file(Path("d.log"), 0);  // truncated, and rewritten to the mark's size
  Append("d.log", "new d 1\nnew d 2\n");
  Append("e.log", "created after the mark\n");
  tailer->Poll();
  std::sort(recorded.lines.begin(), recorded.lines.end());
  EXPECT_EQ(recorded.lines,
            (Lines{"after mark a", "after mark b", "after mark c", "created after the mark",
                   "new b", "new c", "new d 1", "new d 2"}));
}

TEST_F(TailerTest, RenameRotationReadsTheOldFileToItsEnd) {
  Append("a.log", "1\n2\n");
  auto tailer = MakeTailer();
  tailer->Poll();
  fs::rename(Path("a.log"), Path("a.log.1"));
  Append("a.log.1", "3 written after the rename\n");  // the app still holds the old file
  Append("a.log", "4 in the new file\n");
  tailer->Poll();
  std::sort(recorded.lines.begin(), recorded.lines.end());
  EXPECT_EQ(recorded.lines, (Lines{"1", "2", "3 written after the rename", "4 in the new file"}));
  EXPECT_EQ(recorded.rotations, 1);
  EXPECT_EQ(recorded.abandoned, 0);  // nobody writes to it any more
}

TEST_F(TailerTest, CopyTruncateRestartsAtZero) {
  Append("a.log", "1\n2\n3\n");
  auto tailer = MakeTailer();
  tailer->Poll();
  fs::copy_file(Path("a.log"), Path("a.log.1"));
  fs::resize_file(Path("a.log"), 0);
  Append("a.log", "4\n");
  tailer->Poll();
  EXPECT_EQ(recorded.lines, (Lines{"1", "2", "3", "4"}));
  EXPECT_EQ(recorded.truncations, 1);
}

TEST_F(TailerTest, CopyTruncateLosesNothingWrittenBeforeTheCopy) {
  Append("a.log", "1\n");
  auto tailer = MakeTailer();
  tailer->Poll();
  Append("a.log", "2 written just before the copy\n");
  fs::copy_file(Path("a.log"), Path("a.log.1"));
  fs::resize_file(Path("a.log"), 0);
  Append("a.log", "3\n");
  tailer->Poll();
  EXPECT_EQ(recorded.lines, (Lines{"1", "2 written just before the copy", "3"}));
}

TEST_F(TailerTest, SeveralRotationsBetweenTwoPollsLoseNothing) {
  Append("a.log", "1\n");
  auto tailer = MakeTailer();
  tailer->Poll();
  // Three renames before the tailer looks again: a.log.2 was created and rotated unseen.
  Append("a.log", "2\n");
  fs::rename(Path("a.log"), Path("a.log.1"));
  Append("a.log", "3\n");
  fs::rename(Path("a.log.1"), Path("a.log.2"));
  fs::rename(Path("a.log"), Path("a.log.1"));
  Append("a.log", "4\n");
  tailer->Poll();
  std::sort(recorded.lines.begin(), recorded.lines.end());
  EXPECT_EQ(recorded.lines, (Lines{"1", "2", "3", "4"}));
  // Drained rotated files are closed and never read again, whatever they are renamed to.
  tailer->Poll();
  fs::rename(Path("a.log.2"), Path("a.log.3"));
  tailer->Poll();
  EXPECT_EQ(recorded.lines.size(), 4u);
}

TEST_F(TailerTest, OldRotatedFilesAreNotRead) {
  Append("a.log.1", "old rotated\n");
  Append("a.log.2.gz", "\x1f\x8b compressed\n");
  Append("a.log", "live\n");
  auto tailer = MakeTailer();
  tailer->Poll();
  tailer->Poll();
  EXPECT_EQ(recorded.lines, (Lines{"live"}));
}

TEST_F(TailerTest, DeletedAndRecreated) {
  Append("a.log", "1\n");
  auto tailer = MakeTailer();
  tailer->Poll();
  fs::remove(Path("a.log"));
  tailer->Poll();
  Append("a.log", "2\n");
  tailer->Poll();
  EXPECT_EQ(recorded.lines, (Lines{"1", "2"}));
}

TEST_F(TailerTest, SymlinkRepointedIsARotation) {
  fs::create_directory(Path("real"));
  std::ofstream(Path("real/one")) << "1\n";
  fs::create_symlink(Path("real/one"), Path("app.log"));
  auto tailer = MakeTailer();
  tailer->Poll();
  std::ofstream(Path("real/one"), std::ios::app) << "2\n";
  std::ofstream(Path("real/two")) << "3\n";
  fs::remove(Path("app.log"));
  fs::create_symlink(Path("real/two"), Path("app.log"));
  tailer->Poll();
  std::sort(recorded.lines.begin(), recorded.lines.end());
  EXPECT_EQ(recorded.lines, (Lines{"1", "2", "3"}));
}

TEST_F(TailerTest, LongLinesAreSkippedWithBoundedMemory) {
  auto tailer = MakeTailer(config::StartAt::kBeginning, 100);
  Append("a.log", "short\n" + std::string(250, 'x'));
  tailer->Poll();
  Append("a.log", std::string(10000, 'y'));  // still the same long line, never buffered
  tailer->Poll();
  Append("a.log", "\nafter\n" + std::string(101, 'z') + "\n");
  tailer->Poll();
  EXPECT_EQ(recorded.lines, (Lines{"short", "after"}));
  EXPECT_EQ(recorded.too_long, 2);
}

TEST_F(TailerTest, ResumesFromSavedPositionsWithoutLossOrRepeat) {
  Append("a.log", "1\n2\n");
  Positions saved;
  {
    auto tailer = MakeTailer(config::StartAt::kEnd);
    tailer->Poll();
    Append("a.log", "3\n4\npartial");
    tailer->Poll();
    saved = tailer->Snapshot();
  }
  EXPECT_EQ(recorded.lines, (Lines{"3", "4"}));
  // Written while the daemon was down, including the rest of the partial line.
  Append("a.log", " line\n5\n");
  recorded.lines.clear();
  auto tailer = MakeTailer(config::StartAt::kEnd);
  tailer->Restore(saved);
  tailer->Poll();
  EXPECT_EQ(recorded.lines, (Lines{"partial line", "5"}));
}

TEST_F(TailerTest, RotationWhileStoppedIsRecovered) {
  Append("a.log", "1\n");
  Positions saved;
  {
    auto tailer = MakeTailer();
    tailer->Poll();
    saved = tailer->Snapshot();
  }
  Append("a.log", "2 before the rotation\n");
  fs::rename(Path("a.log"), Path("a.log.1"));
  Append("a.log", "3 in the new file\n");
  recorded.lines.clear();
  auto tailer = MakeTailer(config::StartAt::kEnd);
  tailer->Restore(saved);
  tailer->Poll();
  std::sort(recorded.lines.begin(), recorded.lines.end());
  EXPECT_EQ(recorded.lines, (Lines{"2 before the rotation", "3 in the new file"}));
}

// copytruncate while the daemon was stopped: the file keeps its inode but starts over, and
// what was written between the saved position and the copy is only in the copy. Counted
// once: the copy from the saved position (not from its start), then the file from 0.
TEST_F(TailerTest, CopyTruncateWhileStoppedReadsTheCopyFromTheSavedPosition) {
  for (const auto start_at : {config::StartAt::kEnd, config::StartAt::kBeginning}) {
    for (const bool compress_later : {false, true}) {
      SCOPED_TRACE(std::string(start_at == config::StartAt::kEnd ? "end" : "beginning") +
                   (compress_later ? ", copy renamed again later" : ""));
      fs::remove_all(dir);
      fs::create_directories(dir);
      recorded.lines.clear();
      std::string before;
      for (int i = 0; i < 1000; ++i) before += "old " + std::to_string(i) + "\n";
      Append("a.log", before);
      Positions saved;
      {
        auto tailer = MakeTailer(config::StartAt::kBeginning);
        tailer->Poll();
        saved = tailer->Snapshot();
      }
      ASSERT_EQ(recorded.lines.size(), 1000u);
      recorded.lines.clear();
      Append("a.log", "5 before the copy\nlast before the copy\n");
      CopyTruncate(Path("a.log"), Path("a.log.1"));
      Append("a.log", "after the copy\n");
      auto tailer = MakeTailer(start_at);
      tailer->Restore(saved);
      tailer->Poll();
      EXPECT_EQ(recorded.lines,
                (Lines{"5 before the copy", "last before the copy", "after the copy"}));
      // The copy is done with: a later rotation (delaycompress renames it) reads nothing again.
      if (compress_later) fs::rename(Path("a.log.1"), Path("a.log.2"));
      Append("a.log", "next\n");
      tailer->Poll(true);
      EXPECT_EQ(recorded.lines.size(), 4u);
      EXPECT_EQ(recorded.lines.back(), "next");
    }
  }
}

// logrotate's `compress` (without delaycompress) while the daemon was stopped: the log was
// renamed and deleted, and another file of the folder that the glob does not match got its
// inode number (ext4 reuses them). That file is not the log renamed, and none of it is read:
// neither a longer file (another service's log) nor a shorter one (logrotate's state file),
// nor, for a log that was empty when saved, one whose name is not the log's.
TEST_F(TailerTest, AFileOutsideTheGlobWithTheInodeOfASavedFileIsNotAdopted) {
  struct Case {
    std::string saved_content, other_name, other_content;
  };
  for (const Case& c : {Case{"api 1\napi 2\n", "admin.log", "admin 1\nadmin 2\nadmin 3\n"},
                        Case{"api 1\napi 2\n", "lr.state", "logrotate state -- version 2\n"},
                        Case{"", "admin.log", "admin 1\n"}}) {
    for (const auto start_at : {config::StartAt::kEnd, config::StartAt::kBeginning}) {
      SCOPED_TRACE(c.other_name + (c.saved_content.empty() ? " (empty log)" : "") +
                   (start_at == config::StartAt::kEnd ? ", end" : ", beginning"));
      fs::remove_all(dir);
      fs::create_directories(dir);
      TailerOptions options;
      options.rotate_wait = std::chrono::milliseconds(0);
      options.use_inotify = false;
      std::ofstream(Path("api.log")) << c.saved_content;
      Positions saved;
      {
        auto tailer = MakeTailer(options, Path("api.log"), config::StartAt::kBeginning);
        tailer->Poll();
        saved = tailer->Snapshot();
      }
      ASSERT_EQ(saved.files.size(), 1u);
      fs::remove(Path("api.log"));
      Append(c.other_name, c.other_content);
      Append("api.log", "api 3\n");
      // The other file has the number the log had: as if it had been given the freed inode.
      struct stat st;
      ASSERT_EQ(::stat(Path(c.other_name).c_str(), &st), 0);
      saved.files[0].device = uint64_t(st.st_dev);
      saved.files[0].inode = uint64_t(st.st_ino);
      recorded.lines.clear();
      auto tailer = MakeTailer(options, Path("api.log"), start_at);
      tailer->Restore(saved);
      tailer->Poll(true);
      EXPECT_EQ(recorded.lines, (Lines{"api 3"}));
    }
  }
}

// The same file renamed, with what was written to it after the save: read from the saved
// offset (the number matches and so do its first bytes), under a name of logrotate's.
TEST_F(TailerTest, ALogRenamedWhileStoppedIsStillFoundByItsInodeAndFirstBytes) {
  for (const std::string saved_content : {"api 1\napi 2\n", ""}) {
    SCOPED_TRACE(saved_content.empty() ? "empty when saved" : "two lines when saved");
    fs::remove_all(dir);
    fs::create_directories(dir);
    TailerOptions options;
    options.rotate_wait = std::chrono::milliseconds(0);
    options.use_inotify = false;
    std::ofstream(Path("api.log")) << saved_content;
    Positions saved;
    {
      auto tailer = MakeTailer(options, Path("api.log"), config::StartAt::kBeginning);
      tailer->Poll();
      saved = tailer->Snapshot();
    }
    Append("api.log", "written after the save\n");
    fs::rename(Path("api.log"), Path("api.log-20261130"));
    Append("api.log", "api 3\n");
    recorded.lines.clear();
    auto tailer = MakeTailer(options, Path("api.log"), config::StartAt::kEnd);
    tailer->Restore(saved);
    tailer->Poll(true);
    std::sort(recorded.lines.begin(), recorded.lines.end());
    EXPECT_EQ(recorded.lines, (Lines{"api 3", "written after the save"}));
  }
}

// Two access_logs of one service whose globs both match a file count its requests twice:
// that is said once per file (not on every rescan), naming both globs. Two services reading
// one file is a choice (each has its own series), and is not warned about.
TEST_F(TailerTest, AFileMatchedByTwoSourcesOfOneServiceIsWarnedAboutOnce) {
  Append("access.log", "1\n");
  Append("other.log", "2\n");
  std::ostringstream log;
  const auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "test", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
  std::vector<TailSource> sources;
  for (const auto& [group, glob] :
       {std::pair{"api", dir + "/*.log"}, std::pair{"api", dir + "/access.log"},
        std::pair{"admin", dir + "/access.log"}}) {
    TailSource source;
    source.id = std::string(group) + "\t" + glob;
    source.glob = glob;
    source.start_at = config::StartAt::kBeginning;
    source.make_sink = [this] { return std::make_unique<RecordingSink>(recorded); };
    source.group = group;
    sources.push_back(std::move(source));
  }
  TailerOptions options;
  options.use_inotify = false;
  Tailer tailer(std::move(sources), options);
  tailer.Poll(true);
  Append("access.log", "3\n");
  tailer.Poll(true);
  tailer.Poll(true);
  spdlog::set_default_logger(previous);
  const std::string text = log.str();
  const std::string warning =
      Path("access.log") + " is matched by two access_logs of service api (" + dir + "/*.log and " +
      Path("access.log") + "): each of its requests " + "is counted twice";
  EXPECT_EQ(Count(text, warning), 1u) << text;
  EXPECT_EQ(Count(text, "matched by two access_logs"), 1u) << text;  // not other.log, not admin
  std::sort(recorded.lines.begin(), recorded.lines.end());
  EXPECT_EQ(recorded.lines, (Lines{"1", "1", "1", "2", "3", "3", "3"}));
}

TEST_F(TailerTest, ReusedInodeWithOtherContentStartsOver) {
  Append("a.log", "first file\n");
  Positions saved;
  {
    auto tailer = MakeTailer();
    tailer->Poll();
    saved = tailer->Snapshot();
  }
  ASSERT_EQ(saved.files.size(), 1u);
  // Same inode, other content (as after delete and an inode reused): the fingerprint differs.
  fs::resize_file(Path("a.log"), 0);
  Append("a.log", "other file, longer than the first\nnext\n");
  recorded.lines.clear();
  auto tailer = MakeTailer(config::StartAt::kEnd);
  tailer->Restore(saved);
  tailer->Poll();
  EXPECT_EQ(recorded.lines, (Lines{"other file, longer than the first", "next"}));
}

TEST_F(TailerTest, PositionsFileRoundTripAndCorruption) {
  Positions positions;
  positions.files.push_back({"svc\t/var/log/*.log", "/var/log/a \"b\".log", 2049, 1234, 999,
                             0xfedcba9876543210ull, 1024});
  std::string error, warning;
  ASSERT_TRUE(SavePositions(Path("state/positions.yaml"), positions, error)) << error;
  const Positions loaded = LoadPositions(Path("state/positions.yaml"), warning);
  EXPECT_TRUE(warning.empty());
  ASSERT_EQ(loaded.files.size(), 1u);
  EXPECT_EQ(loaded.files[0].path, "/var/log/a \"b\".log");
  EXPECT_EQ(loaded.files[0].offset, 999u);
  EXPECT_EQ(loaded.files[0].fingerprint, 0xfedcba9876543210ull);
  std::ofstream(Path("state/positions.yaml")) << "files: [{source: x, offset: banana}";
  EXPECT_TRUE(LoadPositions(Path("state/positions.yaml"), warning).files.empty());
  EXPECT_NE(warning.find("ignoring unreadable positions file"), std::string::npos);
  warning.clear();
  EXPECT_TRUE(LoadPositions(Path("missing.yaml"), warning).files.empty());
  EXPECT_TRUE(warning.empty());
}

// Found by fuzz_positions: a file name that is not UTF-8 (any bytes are a Linux file name) came
// back from the positions file as other bytes.
TEST_F(TailerTest, PositionsKeepFileNamesThatAreNotUtf8ByteForByte) {
  Positions positions;
  positions.files.push_back({"svc\t/var/log/*.log", "/var/log/\xfc\xff-\x01.log", 1, 2, 3, 4, 5});
  positions.files.push_back({"svc\t/l\xc3", "/var/log/caf\xc3\xa9.log", 6, 7, 8, 9, 10});
  std::string error, warning;
  ASSERT_TRUE(SavePositions(Path("state/positions.yaml"), positions, error)) << error;
  const Positions loaded = LoadPositions(Path("state/positions.yaml"), warning);
  EXPECT_TRUE(warning.empty()) << warning;
  EXPECT_EQ(loaded.files, positions.files);
}

TEST_F(TailerTest, UnreadableFileIsReportedOnce) {
  Append("a.log", "1\n");
  fs::permissions(Path("a.log"), fs::perms::none);
  fs::permissions(dir, fs::perms::all);
  // Root reads anything: check as an unprivileged user, in a child process.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (getuid() == 0 && setresuid(65534, 65534, 65534) != 0) _exit(10);
    auto tailer = MakeTailer();
    tailer->Poll();
    tailer->Poll();
    Append("b.log", "readable\n");
    tailer->Poll();
    _exit(recorded.open_errors.size() == 1 && recorded.lines == Lines{"readable"} ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// Issue #10, 4: a byte-order mark starts the file, not its first line: at offset 0 of every
// file (however it arrives: in pieces, after a truncation, in a rotated file found later),
// and nowhere else.
TEST_F(TailerTest, ByteOrderMarkAtOffsetZeroIsNotPartOfTheFirstLine) {
  Append("a.log", "\xEF\xBB\xBF{\"status_code\":200}\nsecond\n\xEF\xBB\xBFnot at offset 0\n");
  Append("b.log", "\xEF\xBB");  // the mark arrives in two writes
  auto tailer = MakeTailer();
  tailer->Poll();
  Append("b.log", "\xBFINFO:     127.0.0.1:1 - \"GET /b HTTP/1.1\" 200 OK\n");
  tailer->Poll();
  std::sort(recorded.lines.begin(), recorded.lines.end());
  EXPECT_EQ(recorded.lines, (Lines{"INFO:     127.0.0.1:1 - \"GET /b HTTP/1.1\" 200 OK", "second",
                                   "{\"status_code\":200}", "\xEF\xBB\xBFnot at offset 0"}));
  recorded.lines.clear();
  // Truncated and written again from 0 by a tool that writes the mark again.
  fs::resize_file(Path("a.log"), 0);
  Append("a.log",
         "\xEF\xBB\xBF"
         "after truncation\n");
  tailer->Poll();
  EXPECT_EQ(recorded.lines, (Lines{"after truncation"}));
  EXPECT_EQ(recorded.truncations, 1);
  recorded.lines.clear();
  // Rotated twice between two looks: b.log.1 is found as a rotated sibling, read from 0.
  Append("b.log", "last of b\n");
  fs::rename(Path("b.log"), Path("b.log.2"));
  Append("b.log", "\xEF\xBB\xBFin the file found rotated\n");
  fs::rename(Path("b.log"), Path("b.log.1"));
  Append("b.log", "\xEF\xBB\xBFlive\n");
  tailer->Poll();
  std::sort(recorded.lines.begin(), recorded.lines.end());
  EXPECT_EQ(recorded.lines, (Lines{"in the file found rotated", "last of b", "live"}));
}

// Issue #10, 6: when a file is finished, the bytes after its last newline are its last line;
// while it may still grow, they wait for their newline.
TEST_F(TailerTest, LastLineWithoutNewlineCountsWhenTheFileIsFinished) {
  Append("a.log", "1\n2 without newline");
  Append("b.log", "3\r\n4 with only a carriage return\r");
  Append("c.log", std::string(2000, 'x'));  // over the limit, already reported
  Append("d.log", "5\n");                   // ends with its newline: nothing held
  auto tailer = MakeTailer();
  tailer->Poll();
  std::sort(recorded.lines.begin(), recorded.lines.end());
  EXPECT_EQ(recorded.lines, (Lines{"1", "3", "5"}));
  EXPECT_EQ(recorded.too_long, 1);
  tailer->Finish();  // the end of a one-shot read
  std::sort(recorded.lines.begin(), recorded.lines.end());
  EXPECT_EQ(recorded.lines,
            (Lines{"1", "2 without newline", "3", "4 with only a carriage return", "5"}));
  EXPECT_EQ(recorded.too_long, 1);
  tailer->Finish();  // nothing is held any more
  EXPECT_EQ(recorded.lines.size(), 5u);
}

TEST_F(TailerTest, LastLineWithoutNewlineOfARotatedFileCountsWhenItIsClosed) {
  Append("a.log", "1\n2 without newline");
  auto tailer = MakeTailer();
  tailer->Poll();
  EXPECT_EQ(recorded.lines, (Lines{"1"}));
  fs::rename(Path("a.log"), Path("a.log.1"));
  Append("a.log", "3 in the new file\n4 live, still waiting");
  tailer->Poll();  // drained and closed: its writers moved on to the new file
  tailer->Poll();
  std::sort(recorded.lines.begin(), recorded.lines.end());
  EXPECT_EQ(recorded.lines, (Lines{"1", "2 without newline", "3 in the new file"}));
  // Deleted rather than renamed: finished all the same.
  Append("a.log", "\n");
  tailer->Poll();
  Append("a.log", "5 before the delete");
  tailer->Poll();
  fs::remove(Path("a.log"));
  tailer->Poll();
  std::sort(recorded.lines.begin(), recorded.lines.end());
  EXPECT_EQ(recorded.lines, (Lines{"1", "2 without newline", "3 in the new file",
                                   "4 live, still waiting", "5 before the delete"}));
}

// Issue #10, 10: a writer without O_APPEND (`uvicorn > access.log`) under copytruncate writes
// on at its old offset: the file is NULs up to there. The NULs are no line, a position that
// now reads NUL is a truncation (even once the file has grown past it again), and the lines
// not read before each copy are read from the copy, once.
TEST_F(TailerTest, WriterWithoutAppendUnderCopyTruncateLosesAndRepeatsNothing) {
  OffsetWriter writer(Path("a.log"));
  auto tailer = MakeTailer(config::StartAt::kBeginning, 100);
  writer.Write("1\n2\n");
  for (int i = 0; i < 10; ++i) writer.Write("padding line " + std::to_string(i) + "\n");
  tailer->Poll();
  writer.Write("3 unread at the copy\n");
  CopyTruncate(Path("a.log"), Path("a.log.1"));
  // At the writer's offset: after a hole of NULs longer than max_line_bytes.
  writer.Write("4 after the hole\n");
  writer.Write(std::string(3, 'x') + "\n");
  tailer->Poll();
  ASSERT_EQ(recorded.lines.size(), 15u);
  EXPECT_EQ(Lines(recorded.lines.end() - 3, recorded.lines.end()),
            (Lines{"3 unread at the copy", "4 after the hole", "xxx"}));
  EXPECT_EQ(recorded.truncations, 1);
  EXPECT_EQ(recorded.too_long, 0);
  // Twice more, each time grown back past the read position before the tailer looks.
  for (int round = 0; round < 2; ++round) {
    writer.Write("5 unread at copy " + std::to_string(round) + "\n");
    CopyTruncate(Path("a.log"), Path("a.log." + std::to_string(round + 2)));
    writer.Write(std::string(150, 'y') + "\n");  // over the limit on its own: too long
    for (int i = 0; i < 20; ++i) writer.Write("6 round " + std::to_string(round) + "\n");
    tailer->Poll();
    tailer->Poll();
  }
  EXPECT_EQ(recorded.truncations, 3);
  EXPECT_EQ(recorded.too_long, 2);
  EXPECT_EQ(recorded.lines.size(), 15u + 2 * 21);
  EXPECT_EQ(std::count(recorded.lines.begin(), recorded.lines.end(), "5 unread at copy 1"), 1);
  EXPECT_EQ(std::count(recorded.lines.begin(), recorded.lines.end(), "6 round 1"), 20);
  for (const auto& line : recorded.lines) EXPECT_EQ(line.find('\0'), std::string::npos);
}

// The first KiB (the fingerprint) can be the same after a truncation (a banner the service
// writes first): a byte already read that reads otherwise now tells.
TEST_F(TailerTest, TruncationBehindTheSameFirstBytesIsNoticed) {
  const std::string banner(1100, '=');
  Append("a.log", banner + "\nrequest 1\n");
  auto tailer = MakeTailer(config::StartAt::kBeginning, 2048);
  tailer->Poll();
  fs::resize_file(Path("a.log"), 0);
  Append("a.log", banner + "\nrequest 2, longer than the first\n");
  tailer->Poll();
  EXPECT_EQ(recorded.lines,
            (Lines{banner, "request 1", banner, "request 2, longer than the first"}));
  EXPECT_EQ(recorded.truncations, 1);
}

TEST_F(TailerTest, NulBytesAreNoPartOfAnyLine) {
  Append("a.log", std::string("\0\0\0first\n", 9) + std::string("mid\0\0dle\n", 9) +
                      std::string(5000, '\0') + "after a long run\n");
  auto tailer = MakeTailer(config::StartAt::kBeginning, 100);
  tailer->Poll();
  EXPECT_EQ(recorded.lines, (Lines{"first", "middle", "after a long run"}));
  EXPECT_EQ(recorded.too_long, 0);
  EXPECT_EQ(recorded.truncations, 0);
}

// Issue #10, 11: `create` rotation with an app that never reopens its log: it writes on to the
// renamed file, after any pause; that file is read as long as the new one has no data.
TEST_F(TailerTest, RenamedFileIsFollowedUntilTheNewFileHasData) {
  const int app = ::open(Path("a.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  ASSERT_GE(app, 0);
  auto write = [&](const std::string& text) {
    ASSERT_EQ(::write(app, text.data(), text.size()), ssize_t(text.size()));
  };
  auto tailer = MakeTailer();  // rotate_wait 0: every pass finds the old file quiet
  for (int i = 0; i < 10; ++i) write("before " + std::to_string(i) + "\n");
  tailer->Poll();
  fs::rename(Path("a.log"), Path("a.log.1"));
  Append("a.log", "");  // logrotate's `create`
  tailer->Poll();
  for (int pause = 0; pause < 4; ++pause) {
    for (int i = 0; i < 5; ++i) write("after " + std::to_string(pause * 5 + i) + "\n");
    tailer->Poll();
    tailer->Poll();
  }
  EXPECT_EQ(recorded.lines.size(), 30u);
  EXPECT_EQ(recorded.rotations, 1);
  EXPECT_EQ(recorded.abandoned, 0);
  // Another writer fills the new file: the old one is closed though the app still has it open
  // for writing, and that is reported.
  Append("a.log", "new\n");
  tailer->Poll();
  tailer->Poll();
  EXPECT_EQ(recorded.lines.size(), 31u);
  EXPECT_EQ(recorded.abandoned, 1);
  ::close(app);
}

// Runs `body` in a child process, since it changes process-wide limits, and expects true.
void ExpectTrueInChild(const std::function<bool()>& body) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(body() ? 0 : 1);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TailerOptions PollingOptions(PollingObserver& observer) {
  TailerOptions options;
  options.use_inotify = true;
  options.rotate_wait = std::chrono::milliseconds(0);
  options.poll_interval = std::chrono::milliseconds(20);
  options.observer = &observer;
  return options;
}

// Ends a tailer's Run on `thread` through its stop descriptor. False if it cannot be told
// to stop (the child process then exits with the thread still running).
bool StopRun(int stop, std::thread& thread) {
  const uint64_t one = 1;
  if (::write(stop, &one, sizeof one) != sizeof one) {
    thread.detach();
    return false;
  }
  thread.join();
  return true;
}

// Issue #11: when inotify cannot be had, changes are found by polling, and that is reported.
TEST_F(TailerTest, NoInotifyFallsBackToPollingAndSaysSo) {
  if (kSanitizersNeedDescriptors) GTEST_SKIP() << "needs descriptors the sanitizers use";
  Append("a.log", "1\n");
  ExpectTrueInChild([&] {
    PollingObserver polling;
    // No descriptor left for inotify_init1.
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);
    const int lowest_free = ::dup(0);
    ::close(lowest_free);
    rlimit none = limit;
    none.rlim_cur = rlim_t(lowest_free);
    if (::setrlimit(RLIMIT_NOFILE, &none) != 0) return false;
    auto tailer = MakeTailer(PollingOptions(polling), dir + "/*.log");
    ::setrlimit(RLIMIT_NOFILE, &limit);
    const int stop = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    std::thread run([&] { tailer->Run(stop, {}); });
    Append("a.log", "2\n");
    Append("b.log", "3\n");
    const bool all = WaitForLines(recorded, 3);
    return StopRun(stop, run) && all && LinesOf(recorded).size() == 3 && polling.polling &&
           polling.calls == 1;
  });
}

// For a child process: a tailer with `options` reads a.log ("1\n"), `after_first_pass` is
// asked, then the tailer runs while poll() fails (EINVAL on two descriptors while only one
// may be open) and "2\n" is appended to the file, open already. True when both lines are
// read, once each, and the tailer stops when told.
bool TailerTest::ReadsBothLinesWhilePollFails(const TailerOptions& options,
                                              const std::function<bool()>& after_first_pass) {
  auto tailer = MakeTailer(options, dir + "/*.log");
  tailer->Poll();
  if (!after_first_pass()) return false;
  const int stop = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  rlimit one_fd = limit;
  one_fd.rlim_cur = 1;
  const int app = ::open(Path("a.log").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (::setrlimit(RLIMIT_NOFILE, &one_fd) != 0) return false;
  std::thread run([&] { tailer->Run(stop, {}); });
  // The file is open already: read by polling.
  const bool appended = ::write(app, "2\n", 2) == 2;
  const bool all = WaitForLines(recorded, 2);
  return StopRun(stop, run) && appended && all && LinesOf(recorded) == Lines{"1", "2"};
}

// Issue #11: a failing poll() does not end the tailer: it goes on by polling.
TEST_F(TailerTest, FailingPollDoesNotStopTheTailer) {
  if (kSanitizersNeedDescriptors) GTEST_SKIP() << "needs descriptors the sanitizers use";
  Append("a.log", "1\n");
  ExpectTrueInChild([&] {
    PollingObserver polling;
    return ReadsBothLinesWhilePollFails(PollingOptions(polling), [] { return true; }) &&
           polling.polling;
  });
}

// Issue #11: polling by choice (no inotify) is not reported, but a poll() that fails even then
// is: the reader then sleeps between passes, and that is visible.
TEST_F(TailerTest, FailingPollWithoutInotifyIsReportedAsPolling) {
  if (kSanitizersNeedDescriptors) GTEST_SKIP() << "needs descriptors the sanitizers use";
  Append("a.log", "1\n");
  ExpectTrueInChild([&] {
    PollingObserver polling;
    TailerOptions options = PollingOptions(polling);
    options.use_inotify = false;
    return ReadsBothLinesWhilePollFails(options, [&] { return polling.calls == 0; }) &&
           polling.polling && polling.calls == 1;
  });
}

// Issue #10, 8: a deploy moves the app's folder away (or deletes it) and creates it again: the
// new log is found through inotify at once, not at the next periodic rescan (an hour here).
TEST_F(TailerTest, RecreatedFolderIsFoundWithoutWaitingForARescan) {
  fs::create_directories(Path("srv/app/logs"));
  Append("srv/app/logs/access.log", "1\n");
  TailerOptions options;
  options.rotate_wait = std::chrono::milliseconds(0);
  options.rescan_interval = std::chrono::hours(1);
  options.poll_interval = std::chrono::hours(1);
  options.batch_delay = std::chrono::milliseconds(10);
  auto tailer = MakeTailer(options, dir + "/srv/app/logs/*.log");
  const int stop = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  std::thread run([&] { tailer->Run(stop, {}); });
  ASSERT_TRUE(WaitForLines(recorded, 1));
  // Creates the logs' folder where it is missing, writes line n and waits for it.
  auto write_line = [&](int n) {
    fs::create_directories(Path("srv/app/logs"));
    Append("srv/app/logs/access.log", std::to_string(n) + "\n");
    EXPECT_TRUE(WaitForLines(recorded, std::size_t(n))) << "line " << n;
  };
  // The folder of the logs' folder moved, as `mv app app.previous` in a deploy.
  fs::rename(Path("srv/app"), Path("srv/app.previous"));
  write_line(2);
  // The logs' folder itself moved.
  fs::rename(Path("srv/app/logs"), Path("srv/app/logs.old"));
  write_line(3);
  // Deleted, then created again one level at a time.
  fs::remove_all(Path("srv/app"));
  fs::create_directory(Path("srv/app"));
  write_line(4);
  // Two levels up.
  fs::rename(Path("srv"), Path("srv.old"));
  write_line(5);
  const uint64_t one = 1;
  ASSERT_EQ(::write(stop, &one, sizeof one), ssize_t(sizeof one));
  run.join();
  ::close(stop);
  EXPECT_EQ(LinesOf(recorded), (Lines{"1", "2", "3", "4", "5"}));
}

}  // namespace
}  // namespace fastapi_exporter::access_log
