// JournalSource on real journal files, written by systemd-journal-remote from the journal
// export format (https://systemd.io/JOURNAL_EXPORT_FORMATS/), and cross-checked with
// journalctl --file where that says something independent.
#include "collectors/access_log/journal_source.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace fastapi_exporter::access_log {
namespace {

namespace fs = std::filesystem;

constexpr const char* kJournalRemote = "/lib/systemd/systemd-journal-remote";

struct Entry {
  std::string unit;
  std::string identifier;
  std::string message;  // may hold any bytes
  bool has_message = true;
};

class RecordingSink : public MessageSink, public JournalObserver {
 public:
  void OnMessage(std::string_view message) override { messages.emplace_back(message); }
  void OnSkipped(ParseError reason, std::string_view) override { skipped.push_back(reason); }
  void OnLag(double seconds) override { lag = seconds; }
  void OnCursorLost() override { ++cursor_lost; }
  void OnJournalError(const std::string& error) override { errors.push_back(error); }

  std::vector<std::string> messages;
  std::vector<ParseError> skipped;
  std::vector<std::string> errors;
  double lag = -1;
  int cursor_lost = 0;
};

class JournalSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(kJournalRemote, X_OK) != 0) {
      GTEST_SKIP() << kJournalRemote << " is not installed (package systemd-journal-remote)";
    }
    std::string pattern = (fs::temp_directory_path() / "journal-test-XXXXXX").string();
    ASSERT_TRUE(mkdtemp(pattern.data()));
    dir_ = pattern;
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Appends `entries` to the journal file `name` (created when missing), each one second
  // after the previous one written by this test.
  void Write(const std::string& name, const std::vector<Entry>& entries) {
    const std::string export_path = dir_ + "/export.txt";
    {
      std::ofstream out(export_path, std::ios::binary);
      for (const auto& entry : entries) {
        out << "__REALTIME_TIMESTAMP=" << (realtime_ += 1000000) << "\n";
        if (!entry.unit.empty()) out << "_SYSTEMD_UNIT=" << entry.unit << "\n";
        if (!entry.identifier.empty()) out << "SYSLOG_IDENTIFIER=" << entry.identifier << "\n";
        out << "PRIORITY=6\n";
        if (entry.has_message) {
          // The binary form (a little-endian 64-bit length) carries any bytes.
          out << "MESSAGE\n";
          const uint64_t size = entry.message.size();
          for (int i = 0; i < 8; ++i) out.put(char((size >> (8 * i)) & 0xff));
          out << entry.message << "\n";
        }
        out << "\n";
      }
    }
    const std::string command = std::string(kJournalRemote) + " --output=" + dir_ + "/" + name +
                                " " + export_path + " 2>/dev/null";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
  }

  // journalctl's own count of the matching entries: the independent cross-check.
  int JournalctlCount(const std::string& file, const std::string& match) {
    const std::string command = "journalctl --file=" + dir_ + "/" + file + " -o export " + match +
                                " | grep -c '^__CURSOR='";
    FILE* pipe = ::popen(command.c_str(), "r");
    int count = -1;
    if (pipe) {
      if (std::fscanf(pipe, "%d", &count) != 1) count = -1;
      ::pclose(pipe);
    }
    return count;
  }

  std::unique_ptr<JournalSource> Source(std::vector<std::string> matches,
                                        std::vector<std::string> paths, RecordingSink& sink,
                                        config::StartAt start_at = config::StartAt::kBeginning,
                                        JournalSourceOptions options = {}) {
    return std::make_unique<JournalSource>("api\tjournal", config::JournalSelector{matches, paths},
                                           start_at, sink, &sink, options);
  }

  static void ReadAll(JournalSource& source) {
    for (int passes = 0; source.Read(); ++passes) ASSERT_LT(passes, 1000);
  }

  std::string dir_;
  uint64_t realtime_ = 1700000000000000;
};

TEST_F(JournalSourceTest, MatchesByUnitAndByIdentifier) {
  Write("a.journal", {{"api.service", "uvicorn", "api 1"},
                      {"other.service", "uvicorn", "other 1"},
                      {"api.service", "gunicorn", "api 2"},
                      {"", "uvicorn", "bare identifier"},
                      {"api.service", "", "api 3"}});
  const std::string file = dir_ + "/a.journal";

  RecordingSink by_unit;
  ReadAll(*Source({"_SYSTEMD_UNIT=api.service"}, {file}, by_unit));
  EXPECT_EQ(by_unit.messages, (std::vector<std::string>{"api 1", "api 2", "api 3"}));
  EXPECT_EQ(int(by_unit.messages.size()),
            JournalctlCount("a.journal", "_SYSTEMD_UNIT=api.service"));

  RecordingSink by_identifier;
  ReadAll(*Source({"SYSLOG_IDENTIFIER=uvicorn"}, {file}, by_identifier));
  EXPECT_EQ(by_identifier.messages,
            (std::vector<std::string>{"api 1", "other 1", "bare identifier"}));
  EXPECT_EQ(int(by_identifier.messages.size()),
            JournalctlCount("a.journal", "SYSLOG_IDENTIFIER=uvicorn"));

  // Different fields must all match; values of one field are alternatives.
  RecordingSink both;
  ReadAll(*Source({"_SYSTEMD_UNIT=api.service", "SYSLOG_IDENTIFIER=uvicorn"}, {file}, both));
  EXPECT_EQ(both.messages, (std::vector<std::string>{"api 1"}));
  RecordingSink either;
  ReadAll(*Source({"_SYSTEMD_UNIT=api.service", "_SYSTEMD_UNIT=other.service"}, {file}, either));
  EXPECT_EQ(either.messages.size(), 4u);
  EXPECT_EQ(by_unit.lag, 0.0);  // read to the end
  EXPECT_TRUE(by_unit.skipped.empty());
  EXPECT_TRUE(by_unit.errors.empty());
}

TEST_F(JournalSourceTest, BinaryAndMissingMessagesAreSkippedUnderTheirReason) {
  Write("a.journal", {{"api.service", "", std::string("GET /\0x", 7)},
                      {"api.service", "", "not UTF-8 \xff\xfe"},
                      {"api.service", "", "colored \x1b[32m200\x1b[0m is text"},
                      {"api.service", "", "", false},
                      {"api.service", "", std::string(300, 'x')},
                      {"api.service", "", "last"}});
  RecordingSink sink;
  JournalSourceOptions options;
  options.max_line_bytes = 200;
  ReadAll(*Source({"_SYSTEMD_UNIT=api.service"}, {dir_ + "/a.journal"}, sink,
                  config::StartAt::kBeginning, options));
  EXPECT_EQ(sink.messages,
            (std::vector<std::string>{"colored \x1b[32m200\x1b[0m is text", "last"}));
  EXPECT_EQ(sink.skipped,
            (std::vector<ParseError>{ParseError::kBinaryMessage, ParseError::kBinaryMessage,
                                     ParseError::kMissingField, ParseError::kLineTooLong}));
}

TEST_F(JournalSourceTest, FollowsAFolderAcrossRotatedFilesAndAppends) {
  const std::string folder = dir_ + "/journal";
  fs::create_directory(folder);
  Write("journal/system@1.journal", {{"api.service", "", "1"}, {"api.service", "", "2"}});
  Write("journal/system@2.journal", {{"api.service", "", "3"}, {"db.service", "", "db"}});
  RecordingSink sink;
  auto source = Source({"_SYSTEMD_UNIT=api.service"}, {folder}, sink);
  ReadAll(*source);
  EXPECT_EQ(sink.messages, (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_GE(source->WaitFd(), 0);

  // Appended to the current file, then a new file (journald rotating), while followed.
  Write("journal/system@2.journal", {{"api.service", "", "4"}});
  ReadAll(*source);
  Write("journal/system@3.journal", {{"api.service", "", "5"}, {"api.service", "", "6"}});
  ReadAll(*source);
  EXPECT_EQ(sink.messages, (std::vector<std::string>{"1", "2", "3", "4", "5", "6"}));
  EXPECT_TRUE(sink.errors.empty());
}

TEST_F(JournalSourceTest, ResumesAfterTheSavedCursorCountingNothingTwice) {
  const std::string file = dir_ + "/a.journal";
  Write("a.journal", {{"api.service", "", "1"}, {"api.service", "", "2"}});
  Positions positions;
  {
    RecordingSink sink;
    auto source = Source({"_SYSTEMD_UNIT=api.service"}, {file}, sink);
    ReadAll(*source);
    EXPECT_EQ(sink.messages.size(), 2u);
    auto position = source->Position();
    ASSERT_TRUE(position);
    EXPECT_EQ(position->source, "api\tjournal");
    positions.journals.push_back(*position);
  }
  // Written while the exporter is stopped; a cursor in the positions file round-trips too.
  Write("a.journal", {{"api.service", "", "3"}, {"other.service", "", "x"}});
  const std::string saved = dir_ + "/positions.yaml";
  std::string error, warning;
  ASSERT_TRUE(SavePositions(saved, positions, error)) << error;
  const Positions loaded = LoadPositions(saved, warning);
  EXPECT_EQ(warning, "");
  EXPECT_EQ(loaded.journals, positions.journals);

  RecordingSink sink;
  auto source = Source({"_SYSTEMD_UNIT=api.service"}, {file}, sink, config::StartAt::kEnd);
  source->Restore(loaded);
  ReadAll(*source);
  EXPECT_EQ(sink.messages, (std::vector<std::string>{"3"}));
  EXPECT_EQ(sink.cursor_lost, 0);
}

TEST_F(JournalSourceTest, StartAtEndSkipsWhatIsThereAndReadsWhatComes) {
  const std::string file = dir_ + "/a.journal";
  Write("a.journal", {{"api.service", "", "old"}, {"other.service", "", "x"}});
  RecordingSink sink;
  auto source = Source({"_SYSTEMD_UNIT=api.service"}, {file}, sink, config::StartAt::kEnd);
  ReadAll(*source);
  EXPECT_TRUE(sink.messages.empty());
  Write("a.journal", {{"api.service", "", "new"}});
  ReadAll(*source);
  EXPECT_EQ(sink.messages, (std::vector<std::string>{"new"}));

  // Nothing matching at all when it starts: everything that comes later is new.
  RecordingSink empty_start;
  auto none = Source({"_SYSTEMD_UNIT=later.service"}, {file}, empty_start, config::StartAt::kEnd);
  ReadAll(*none);
  Write("a.journal", {{"later.service", "", "first"}, {"later.service", "", "second"}});
  ReadAll(*none);
  EXPECT_EQ(empty_start.messages, (std::vector<std::string>{"first", "second"}));
}

// The start is marked when the exporter reports ready; the first Read may come later (the
// reader first waits for the routes): entries written in between are read.
TEST_F(JournalSourceTest, StartAtEndStartsWhereTheJournalWasWhenTheStartWasMarked) {
  const std::string file = dir_ + "/a.journal";
  Write("a.journal", {{"api.service", "", "old"}});
  RecordingSink sink;
  auto source = Source({"_SYSTEMD_UNIT=api.service"}, {file}, sink, config::StartAt::kEnd);
  source->MarkStart();
  Write("a.journal", {{"api.service", "", "after the mark"}, {"other.service", "", "x"}});
  ReadAll(*source);
  EXPECT_EQ(sink.messages, (std::vector<std::string>{"after the mark"}));
}

TEST_F(JournalSourceTest, AVacuumedCursorFallsBackToStartAt) {
  const std::string folder = dir_ + "/journal";
  fs::create_directory(folder);
  Write("journal/system@1.journal", {{"api.service", "", "1"}, {"api.service", "", "2"}});
  Positions positions;
  {
    RecordingSink sink;
    auto source = Source({"_SYSTEMD_UNIT=api.service"}, {folder}, sink);
    ReadAll(*source);
    positions.journals.push_back(*source->Position());
  }
  Write("journal/system@2.journal", {{"api.service", "", "3"}, {"api.service", "", "4"}});
  // journalctl --vacuum-files: the oldest file, and the saved cursor's entry with it, is gone.
  fs::remove(folder + "/system@1.journal");

  RecordingSink from_start;
  auto beginning = Source({"_SYSTEMD_UNIT=api.service"}, {folder}, from_start);
  beginning->Restore(positions);
  ReadAll(*beginning);
  EXPECT_EQ(from_start.cursor_lost, 1);
  EXPECT_EQ(from_start.messages, (std::vector<std::string>{"3", "4"}));

  RecordingSink from_end;
  auto end = Source({"_SYSTEMD_UNIT=api.service"}, {folder}, from_end, config::StartAt::kEnd);
  end->Restore(positions);
  ReadAll(*end);
  EXPECT_EQ(from_end.cursor_lost, 1);
  EXPECT_TRUE(from_end.messages.empty());
  Write("journal/system@2.journal", {{"api.service", "", "5"}});
  ReadAll(*end);
  EXPECT_EQ(from_end.messages, (std::vector<std::string>{"5"}));
  EXPECT_EQ(from_end.cursor_lost, 1);
}

TEST_F(JournalSourceTest, ReadsInBoundedPassesAndReportsTheLag) {
  std::vector<Entry> entries;
  for (int i = 0; i < 25; ++i) entries.push_back({"api.service", "", std::to_string(i)});
  Write("a.journal", entries);
  RecordingSink sink;
  JournalSourceOptions options;
  options.max_entries_per_read = 10;
  auto source = Source({"_SYSTEMD_UNIT=api.service"}, {dir_ + "/a.journal"}, sink,
                       config::StartAt::kBeginning, options);
  EXPECT_TRUE(source->Read());
  EXPECT_EQ(sink.messages.size(), 10u);
  EXPECT_EQ(sink.lag, 15.0);  // entries one second apart: the 10th to the 25th
  EXPECT_TRUE(source->Read());
  EXPECT_FALSE(source->Read());
  EXPECT_EQ(sink.messages.size(), 25u);
  EXPECT_EQ(sink.lag, 0.0);
}

TEST_F(JournalSourceTest, AMissingJournalIsReportedOnceAndReadWhenItAppears) {
  RecordingSink sink;
  auto source = Source({"_SYSTEMD_UNIT=api.service"}, {dir_ + "/later"}, sink);
  EXPECT_FALSE(source->Read());
  EXPECT_FALSE(source->Read());
  EXPECT_EQ(sink.errors.size(), 1u);
  EXPECT_EQ(source->WaitFd(), -1);
  EXPECT_GT(source->WaitTimeoutMs(), 0);
  fs::create_directory(dir_ + "/later");
  Write("later/system.journal", {{"api.service", "", "1"}});
  ReadAll(*source);
  EXPECT_EQ(sink.messages, (std::vector<std::string>{"1"}));
}

// Entries read on the tailer's thread: counted atomically, since the test thread waits on them.
class CountingSink : public MessageSink {
 public:
  void OnMessage(std::string_view) override { ++messages; }
  void OnSkipped(ParseError, std::string_view) override {}
  std::atomic<int> messages{0};
};

TEST_F(JournalSourceTest, NewEntriesWakeTheTailersLoop) {
  const std::string folder = dir_ + "/journal";
  fs::create_directory(folder);
  Write("journal/system.journal", {{"api.service", "", "before"}});
  CountingSink sink;
  JournalSource source("api\tjournal",
                       config::JournalSelector{{"_SYSTEMD_UNIT=api.service"}, {folder}},
                       config::StartAt::kBeginning, sink, nullptr, {});
  // No file to tail, and no rescan or poll for an hour: only the journal's descriptor can
  // wake the loop.
  TailerOptions options;
  options.rescan_interval = std::chrono::hours(1);
  options.poll_interval = std::chrono::hours(1);
  Tailer tailer({}, options);
  const int stop = ::eventfd(0, EFD_CLOEXEC);
  std::thread thread([&] { tailer.Run(stop, {}, {&source}); });
  auto wait_for = [&](int count) {
    for (int i = 0; i < 2000 && sink.messages < count; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return sink.messages.load();
  };
  EXPECT_EQ(wait_for(1), 1);
  Write("journal/system.journal", {{"api.service", "", "a"}, {"db.service", "", "b"}});
  EXPECT_EQ(wait_for(2), 2);
  Write("journal/system@2.journal", {{"api.service", "", "c"}});  // a new file in the folder
  EXPECT_EQ(wait_for(3), 3);
  const uint64_t one = 1;
  ASSERT_EQ(::write(stop, &one, sizeof one), ssize_t(sizeof one));
  thread.join();
  ::close(stop);
}

}  // namespace
}  // namespace fastapi_exporter::access_log
