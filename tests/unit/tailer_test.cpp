#include "collectors/access_log/tailer.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace fastapi_exporter::access_log {
namespace {

namespace fs = std::filesystem;

struct Recorded {
  std::vector<std::string> lines;
  int too_long = 0;
  int rotations = 0;
  int truncations = 0;
  std::vector<std::string> open_errors;
};

class RecordingSink : public LineSink {
 public:
  explicit RecordingSink(Recorded& recorded) : recorded_(recorded) {}
  void OnLine(std::string_view line) override { recorded_.lines.emplace_back(line); }
  void OnLineTooLong() override { ++recorded_.too_long; }

 private:
  Recorded& recorded_;
};

class RecordingObserver : public SourceObserver {
 public:
  explicit RecordingObserver(Recorded& recorded) : recorded_(recorded) {}
  void OnBytesRead(uint64_t) override {}
  void OnRotation(const std::string&) override { ++recorded_.rotations; }
  void OnTruncation(const std::string&) override { ++recorded_.truncations; }
  void OnOpenError(const std::string& path, const std::string&) override {
    recorded_.open_errors.push_back(path);
  }
  void OnState(uint64_t, uint64_t) override {}

 private:
  Recorded& recorded_;
};

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
    TailSource source;
    source.id = "svc\t" + dir + "/*.log";
    source.glob = dir + "/*.log";
    source.start_at = start_at;
    source.make_sink = [this] { return std::make_unique<RecordingSink>(recorded); };
    source.observer = &observer;
    TailerOptions options;
    options.max_line_bytes = max_line;
    options.read_chunk_bytes = 64;  // small, so lines straddle reads
    options.rotate_wait = std::chrono::milliseconds(0);
    options.use_inotify = false;
    std::vector<TailSource> sources;
    sources.push_back(std::move(source));
    return std::make_unique<Tailer>(std::move(sources), options);
  }

  void Append(const std::string& name, const std::string& text) {
    std::ofstream(dir + "/" + name, std::ios::app | std::ios::binary) << text;
  }
  std::string Path(const std::string& name) { return dir + "/" + name; }

  std::string dir;
  Recorded recorded;
  RecordingObserver observer{recorded};
};

using Lines = std::vector<std::string>;

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

}  // namespace
}  // namespace fastapi_exporter::access_log
