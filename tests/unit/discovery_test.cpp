#include "collectors/access_log/discovery.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

namespace fastapi_exporter::access_log {
namespace {

namespace fs = std::filesystem;

class DiscoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "discovery-XXXXXX").string();
    ASSERT_TRUE(mkdtemp(pattern.data()));
    dir = pattern;
  }
  void TearDown() override { fs::remove_all(dir); }

  std::string Path(const std::string& name) { return dir + "/" + name; }
  void Write(const std::string& name) { std::ofstream(Path(name)) << "x\n"; }
  std::set<std::string> Matched(const std::string& glob) {
    std::set<std::string> paths;
    for (const auto& file : MatchGlob(glob)) paths.insert(file.path);
    return paths;
  }

  std::string dir;
};

TEST_F(DiscoveryTest, GlobMatchesRegularFilesAndSymlinksToThem) {
  Write("a.log");
  Write("b.log");
  Write("c.txt");
  fs::create_directory(Path("d.log"));
  fs::create_symlink(Path("a.log"), Path("link.log"));
  fs::create_symlink(Path("missing"), Path("dangling.log"));
  const auto files = MatchGlob(dir + "/*.log");
  EXPECT_EQ(Matched(dir + "/*.log"),
            (std::set<std::string>{Path("a.log"), Path("b.log"), Path("link.log")}));
  // A symlink's stat is its target's.
  const auto link = std::find_if(files.begin(), files.end(), [&](const FoundFile& file) {
    return file.path == Path("link.log");
  });
  ASSERT_NE(link, files.end());
  struct stat target;
  ASSERT_EQ(::stat(Path("a.log").c_str(), &target), 0);
  EXPECT_EQ(link->st.st_ino, target.st_ino);
}

TEST_F(DiscoveryTest, FolderMissingThenCreatedAndWhyNothingMatches) {
  const std::string folder = Path("logs");
  const std::string glob = folder + "/*.log";
  EXPECT_EQ(GlobFolder(glob), folder);
  EXPECT_TRUE(MatchGlob(glob).empty());
  EXPECT_EQ(NoFileReason(folder), "folder " + folder + ": No such file or directory");
  fs::create_directory(folder);
  EXPECT_TRUE(MatchGlob(glob).empty());
  EXPECT_EQ(NoFileReason(folder), "no file matches yet");
  Write("logs/access.log");
  EXPECT_EQ(Matched(glob), (std::set<std::string>{Path("logs/access.log")}));
  // A pattern in the folder part is not checked as a folder.
  EXPECT_EQ(NoFileReason(dir + "/*/x"), "no file matches yet");
  EXPECT_EQ(Matched(dir + "/*/access.log"), (std::set<std::string>{Path("logs/access.log")}));
}

TEST_F(DiscoveryTest, LiteralFolderStopsAtTheFirstPattern) {
  EXPECT_EQ(LiteralFolder("/var/log/app"), "/var/log/app");
  EXPECT_EQ(LiteralFolder("/var/log/*/app"), "/var/log");
  EXPECT_EQ(LiteralFolder("/srv/app-[0-9]"), "/srv");
  EXPECT_EQ(LiteralFolder("?/logs"), "");
}

TEST_F(DiscoveryTest, RotatedSiblingsAreNamedAfterTheLiveFileAndNotCompressed) {
  for (const char* name : {"a.log", "a.log.1", "a.log-20261127", "a.log.2.gz", "a.log.3.zst",
                           "a.logx", "b.log", "b.log.1", "other.1"}) {
    Write(name);
  }
  fs::create_directory(Path("a.log.d"));
  std::map<std::string, std::string> found;  // sibling -> live file
  for (const auto& sibling : FindRotatedSiblings({Path("a.log")})) {
    EXPECT_TRUE(S_ISREG(sibling.file.st.st_mode));
    found[sibling.file.path] = sibling.live_path;
  }
  EXPECT_EQ(found, (std::map<std::string, std::string>{{Path("a.log.1"), Path("a.log")},
                                                       {Path("a.log-20261127"), Path("a.log")}}));
  // With both live: each sibling goes with its own live file, and no live file is a sibling.
  found.clear();
  for (const auto& sibling : FindRotatedSiblings({Path("a.log"), Path("b.log")})) {
    found[sibling.file.path] = sibling.live_path;
  }
  EXPECT_EQ(found, (std::map<std::string, std::string>{{Path("a.log.1"), Path("a.log")},
                                                       {Path("a.log-20261127"), Path("a.log")},
                                                       {Path("b.log.1"), Path("b.log")}}));
  EXPECT_TRUE(FindRotatedSiblings({Path("missing/a.log")}).empty());
}

TEST_F(DiscoveryTest, IsCompressedKnowsTheRotationSuffixes) {
  for (const char* name : {"a.log.1.gz", "a.bz2", "a.xz", "a.zst", "a.zip", "a.lz4", "a.Z"}) {
    EXPECT_TRUE(IsCompressed(name)) << name;
  }
  for (const char* name : {"a.log", "a.log.1", "a.gzip", "a.z"}) {
    EXPECT_FALSE(IsCompressed(name)) << name;
  }
}

TEST_F(DiscoveryTest, FindsAFileByItsInodeAfterARename) {
  Write("a.log");
  struct stat st;
  ASSERT_EQ(::stat(Path("a.log").c_str(), &st), 0);
  fs::rename(Path("a.log"), Path("a.log.1"));
  Write("a.log");
  const auto found = FindByIdentity(dir, IdentityOf(st));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->path, Path("a.log.1"));
  fs::remove(Path("a.log.1"));
  EXPECT_FALSE(FindByIdentity(dir, IdentityOf(st)).has_value());
  EXPECT_FALSE(FindByIdentity(Path("missing"), IdentityOf(st)).has_value());
}

}  // namespace
}  // namespace fastapi_exporter::access_log
