#include "collectors/access_log/file_follower.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/unit/tail_recorder.hpp"

namespace fastapi_exporter::access_log {
namespace {

namespace fs = std::filesystem;
using Lines = std::vector<std::string>;

class FileFollowerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "follower-XXXXXX").string();
    ASSERT_TRUE(mkdtemp(pattern.data()));
    dir = pattern;
    source.id = "svc";
    source.glob = dir + "/*.log";
    source.make_sink = [this] {
      ++recorded.sinks;
      return std::make_unique<RecordingSink>(recorded);
    };
    source.observer = &observer;
  }
  void TearDown() override { fs::remove_all(dir); }

  std::string Path(const std::string& name) { return dir + "/" + name; }
  void Append(const std::string& name, const std::string& text) {
    std::ofstream(Path(name), std::ios::app | std::ios::binary) << text;
  }
  std::unique_ptr<FileFollower> Follow(const std::string& name, std::size_t max_line = 1024) {
    const int fd = ::open(Path(name).c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    struct stat st;
    EXPECT_EQ(::fstat(fd, &st), 0);
    return std::make_unique<FileFollower>(Path(name), fd, st, source, max_line);
  }
  FileFollower::ReadResult Read(FileFollower& follower, uint64_t max_bytes = 1 << 20) {
    return follower.Read(buffer, max_bytes);
  }
  static uint64_t InodeOf(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 ? uint64_t(st.st_ino) : 0;
  }

  std::string dir;
  Recorded recorded;
  RecordingObserver observer{recorded};
  TailSource source;
  std::vector<char> buffer = std::vector<char>(16);  // small, so lines straddle reads
};

TEST_F(FileFollowerTest, ReadsWhatIsNewAndCommitsAfterEachLine) {
  Append("a.log", "1\n2\n3 partial");
  auto follower = Follow("a.log");
  const auto first = Read(*follower);
  EXPECT_EQ(first.bytes, 13u);
  EXPECT_FALSE(first.truncated);
  EXPECT_EQ(recorded.lines, (Lines{"1", "2"}));
  EXPECT_EQ(follower->committed(), 4u);
  EXPECT_EQ(follower->read_offset(), 13u);
  Append("a.log", "\n");
  EXPECT_EQ(Read(*follower).bytes, 1u);
  EXPECT_EQ(recorded.lines, (Lines{"1", "2", "3 partial"}));
  EXPECT_EQ(follower->committed(), 14u);
  EXPECT_EQ(recorded.bytes_read, 14u);
  EXPECT_EQ(Read(*follower).bytes, 0u);
}

TEST_F(FileFollowerTest, ReadsAtMostMaxBytesAndSaysMoreIsWaiting) {
  Append("a.log", std::string(100, 'x') + "\n");
  auto follower = Follow("a.log");
  const auto first = Read(*follower, 32);
  EXPECT_EQ(first.bytes, 32u);
  EXPECT_TRUE(first.backlog);
  EXPECT_TRUE(recorded.lines.empty());
  const auto rest = Read(*follower, 1000);
  EXPECT_EQ(rest.bytes, 69u);
  EXPECT_FALSE(rest.backlog);
  EXPECT_EQ(recorded.lines, (Lines{std::string(100, 'x')}));
}

TEST_F(FileFollowerTest, TruncationToZeroWhileOpenStartsOver) {
  Append("a.log", "1\n2\n");
  auto follower = Follow("a.log");
  Read(*follower);
  fs::resize_file(Path("a.log"), 0);
  EXPECT_TRUE(Read(*follower).truncated);  // the size tells
  Append("a.log", "3\n");
  EXPECT_FALSE(Read(*follower).truncated);
  EXPECT_EQ(recorded.truncations, 1);
  EXPECT_EQ(recorded.lines, (Lines{"1", "2", "3"}));
  EXPECT_EQ(follower->committed(), 2u);
  EXPECT_EQ(recorded.sinks, 2);  // a new sink for the new content
}

TEST_F(FileFollowerTest, TruncationToASmallerSizeWhileOpenStartsOver) {
  Append("a.log", "first line\nsecond line\n");
  auto follower = Follow("a.log");
  Read(*follower);
  fs::resize_file(Path("a.log"), 6);  // "first " is left
  Append("a.log", "again\n");
  const auto result = Read(*follower);
  EXPECT_TRUE(result.truncated);
  EXPECT_FALSE(result.copy.has_value());
  EXPECT_EQ(recorded.lines, (Lines{"first line", "second line", "first again"}));
  EXPECT_EQ(recorded.truncations, 1);
  EXPECT_EQ(follower->committed(), 12u);
}

TEST_F(FileFollowerTest, TruncatedAndWrittenPastTheOldOffsetIsNoticed) {
  Append("a.log", "aaaa\n");
  auto follower = Follow("a.log");
  Read(*follower);
  fs::resize_file(Path("a.log"), 0);
  Append("a.log", "bbbbbbbb\n");  // other first bytes, longer than before
  EXPECT_TRUE(Read(*follower).truncated);
  EXPECT_EQ(recorded.lines, (Lines{"aaaa", "bbbbbbbb"}));
}

TEST_F(FileFollowerTest, CopyTruncateReadsTheUnreadTailFromTheCopyOnce) {
  Append("a.log", "1\n");
  auto follower = Follow("a.log");
  Read(*follower);
  Append("a.log", "2 only in the copy\n");
  fs::copy_file(Path("a.log"), Path("a.log.1"));
  fs::resize_file(Path("a.log"), 0);
  Append("a.log", "3 after\n");
  const auto result = Read(*follower);
  EXPECT_TRUE(result.truncated);
  ASSERT_TRUE(result.copy.has_value());
  EXPECT_EQ(result.copy->inode, InodeOf(Path("a.log.1")));
  EXPECT_EQ(recorded.lines, (Lines{"1", "2 only in the copy", "3 after"}));
  EXPECT_EQ(follower->committed(), 8u);
  EXPECT_EQ(Read(*follower).bytes, 0u);
  EXPECT_EQ(recorded.lines.size(), 3u);
}

TEST_F(FileFollowerTest, CopyOfASavedPositionIsReadFromThatPosition) {
  Append("a.log", "1\n2\n");
  FilePosition saved;
  {
    auto before = Follow("a.log");
    Read(*before);
    saved = before->Position("svc");
  }
  EXPECT_EQ(saved.offset, 4u);
  Append("a.log", "3 written while stopped\n4 without newline");
  fs::copy_file(Path("a.log"), Path("a.log.1"));
  fs::resize_file(Path("a.log"), 0);
  Append("a.log", "5\n");
  recorded.lines.clear();
  auto follower = Follow("a.log");
  const auto copy = follower->RecoverCopyAfter(saved, buffer, 1 << 20);
  ASSERT_TRUE(copy.has_value());
  EXPECT_EQ(copy->inode, InodeOf(Path("a.log.1")));
  Read(*follower);
  EXPECT_EQ(recorded.lines, (Lines{"3 written while stopped", "4 without newline", "5"}));
  // Without a copy, nothing is read and the file is left as it was.
  fs::remove(Path("a.log.1"));
  auto other = Follow("a.log");
  EXPECT_FALSE(other->RecoverCopyAfter(saved, buffer, 1 << 20).has_value());
}

TEST_F(FileFollowerTest, RenamedFileIsReadToItsEndUntilItsWritersMoveOn) {
  const int app = ::open(Path("a.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  ASSERT_GE(app, 0);
  ASSERT_EQ(::write(app, "1\n", 2), 2);
  auto follower = Follow("a.log");
  Read(*follower);
  fs::rename(Path("a.log"), Path("a.log.1"));
  follower->MarkRotated(Path("a.log"));
  EXPECT_TRUE(follower->rotated());
  ASSERT_EQ(::write(app, "2 after the rename\n3 last", 25), 25);
  Read(*follower);
  EXPECT_EQ(recorded.lines, (Lines{"1", "2 after the rename"}));
  EXPECT_FALSE(follower->Superseded());  // no new file
  Append("a.log", "");
  EXPECT_FALSE(follower->Superseded());  // a new file without data
  Append("a.log", "new\n");
  EXPECT_TRUE(follower->Superseded());
  follower->Finish();
  EXPECT_EQ(recorded.lines, (Lines{"1", "2 after the rename", "3 last"}));
  EXPECT_EQ(follower->committed(), 27u);
  EXPECT_TRUE(OpenForWriting(follower->identity()));
  ::close(app);
  EXPECT_FALSE(OpenForWriting(follower->identity()));
}

TEST_F(FileFollowerTest, DeletedFileIsSuperseded) {
  Append("a.log", "1\n");
  auto follower = Follow("a.log");
  follower->MarkRotated();
  EXPECT_FALSE(follower->Superseded());
  fs::remove(Path("a.log"));
  EXPECT_TRUE(follower->Superseded());
  Read(*follower);
  EXPECT_EQ(recorded.lines, (Lines{"1"}));  // still read to its end
}

TEST_F(FileFollowerTest, StartingMidLineSkipsToTheNextLine) {
  Append("a.log", "old line\nold partial");
  auto follower = Follow("a.log");
  follower->StartAt(13, /*mid_line=*/true);
  Append("a.log", " end\nnew\n");
  Read(*follower);
  EXPECT_EQ(recorded.lines, (Lines{"new"}));
  EXPECT_EQ(follower->UnreadBytes(), 0u);
  Append("a.log", "xyz");
  EXPECT_EQ(follower->UnreadBytes(), 3u);
}

TEST_F(FileFollowerTest, PositionCarriesTheFingerprintOfTheFirstBytes) {
  Append("a.log", "short\n");
  auto follower = Follow("a.log");
  Read(*follower);
  Append("a.log", std::string(2000, 'z') + "\n");
  Read(*follower);
  const FilePosition position = follower->Position("svc");
  EXPECT_EQ(position.source, "svc");
  EXPECT_EQ(position.path, Path("a.log"));
  EXPECT_EQ(position.inode, InodeOf(Path("a.log")));
  EXPECT_EQ(position.offset, 2007u);
  EXPECT_EQ(position.fingerprint_bytes, kFingerprintBytes);
  const int fd = ::open(Path("a.log").c_str(), O_RDONLY | O_CLOEXEC);
  uint32_t bytes = kFingerprintBytes;
  EXPECT_EQ(FingerprintFile(fd, bytes), position.fingerprint);
  EXPECT_TRUE(follower->SameFirstBytes(fd));
  ::close(fd);
}

}  // namespace
}  // namespace fastapi_exporter::access_log
