#include "collectors/access_log/line_framer.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace fastapi_exporter::access_log {
namespace {

using Lines = std::vector<std::string>;

// Every line, with "!" standing for a line reported too long, in order.
class RecordingSink : public LineSink {
 public:
  void OnLine(std::string_view line) override { lines.emplace_back(line); }
  void OnLineTooLong() override { lines.emplace_back("!"); }
  bool HoldsPartial() const override { return holds_partial; }

  Lines lines;
  bool holds_partial = false;
};

// Feeds `text` (from file offset `start`) cut at `cuts` (offsets into the text, ascending).
Lines Frame(const std::string& text, const std::vector<std::size_t>& cuts,
            std::size_t max_line = 64, uint64_t start = 0, uint64_t* committed = nullptr) {
  LineFramer framer(max_line);
  framer.Reset(start);
  RecordingSink sink;
  std::size_t from = 0;
  for (std::size_t cut : cuts) {
    framer.Feed(text.data() + from, cut - from, start + from, sink);
    from = cut;
  }
  framer.Feed(text.data() + from, text.size() - from, start + from, sink);
  if (committed) *committed = framer.committed();
  framer.Finish(start + text.size(), sink);
  return sink.lines;
}

// Where the line a framer last handed over ends: just past the last newline.
uint64_t AfterLastNewline(const std::string& text, std::size_t size, uint64_t start) {
  const std::size_t newline = text.rfind('\n', size == 0 ? std::string::npos : size - 1);
  return newline == std::string::npos || newline >= size ? start : start + newline + 1;
}

const std::string kSample = std::string("\xEF\xBB\xBF") + "first\r\nsecond\n" +
                            std::string("\0\0", 2) + "th" + std::string("\0", 1) + "ird\n" +
                            "\r\n" + "\xEF\xBB\xBF" + "mark kept\n" + "last, no newline\r";
const Lines kSampleLines = {"first",           "second", "third", "", "\xEF\xBB\xBFmark kept",
                            "last, no newline"};

TEST(LineFramerTest, EveryPairOfSplitPointsGivesTheSameLines) {
  for (std::size_t a = 0; a <= kSample.size(); ++a) {
    for (std::size_t b = a; b <= kSample.size(); ++b) {
      uint64_t committed = 0;
      EXPECT_EQ(Frame(kSample, {a, b}, 64, 0, &committed), kSampleLines) << a << "," << b;
      EXPECT_EQ(committed, kSample.rfind('\n') + 1) << a << "," << b;
    }
  }
}

TEST(LineFramerTest, ByteAtATimeCommitsExactlyAfterEachNewline) {
  for (uint64_t start : {uint64_t(0), uint64_t(1000)}) {
    LineFramer framer(64);
    framer.Reset(start);
    RecordingSink sink;
    for (std::size_t i = 0; i < kSample.size(); ++i) {
      framer.Feed(kSample.data() + i, 1, start + i, sink);
      EXPECT_EQ(framer.committed(), AfterLastNewline(kSample, i + 1, start)) << i;
    }
    framer.Finish(start + kSample.size(), sink);
    EXPECT_EQ(sink.lines.size(), kSampleLines.size());
    // Away from offset 0 the first mark is part of the first line.
    EXPECT_EQ(sink.lines.front(), start == 0 ? "first"
                                             : "\xEF\xBB\xBF"
                                               "first");
  }
}

TEST(LineFramerTest, OverLongLinesAtEverySplitPoint) {
  // The limit is 5: a line of 5 bytes is one, of 6 is too long, with or without its CR.
  const std::string text =
      "12345\n123456\n12345\r\n123456\r\nok\n" + std::string(40, 'x') + "\nafter\n\xEF\xBB\xBF";
  const Lines expected = {"12345", "!", "12345", "!", "ok", "!", "after", "\xEF\xBB\xBF"};
  for (std::size_t a = 0; a <= text.size(); ++a) {
    for (std::size_t b = a; b <= text.size(); ++b) {
      uint64_t committed = 0;
      EXPECT_EQ(Frame(text, {a, b}, 5, 7, &committed), expected) << a << "," << b;
      EXPECT_EQ(committed, 7 + text.rfind('\n') + 1);
    }
  }
}

TEST(LineFramerTest, ByteOrderMarkOfALineOfExactlyTheLimitAtEverySplitPoint) {
  const std::string text =
      "\xEF\xBB\xBF"
      "12345\r\n";
  for (std::size_t a = 0; a <= text.size(); ++a) {
    EXPECT_EQ(Frame(text, {a}, 5), (Lines{"12345"})) << a;
    EXPECT_EQ(Frame(text, {a}, 4), (Lines{"!"})) << a;
  }
}

TEST(LineFramerTest, OverLongLineInManyReadsIsReportedOnceWithBoundedMemory) {
  LineFramer framer(100);
  RecordingSink sink;
  const std::string chunk(64, 'y');
  uint64_t offset = 0;
  for (int i = 0; i < 1000; ++i) {
    framer.Feed(chunk.data(), chunk.size(), offset, sink);
    offset += chunk.size();
  }
  EXPECT_EQ(sink.lines, (Lines{"!"}));
  EXPECT_TRUE(framer.holding());
  EXPECT_EQ(framer.committed(), 0u);
  const std::string end = "yy\nnext\n";
  framer.Feed(end.data(), end.size(), offset, sink);
  EXPECT_EQ(sink.lines, (Lines{"!", "next"}));
  EXPECT_EQ(framer.committed(), offset + end.size());
  EXPECT_FALSE(framer.holding());
  framer.Finish(offset + end.size(), sink);
  EXPECT_EQ(sink.lines.size(), 2u);
}

TEST(LineFramerTest, CarriageReturnSplitFromItsNewline) {
  EXPECT_EQ(Frame("abc\r\ndef\r\n", {4}), (Lines{"abc", "def"}));
  EXPECT_EQ(Frame("abc\r\ndef\r\n", {4, 9}), (Lines{"abc", "def"}));
  // Only the CR right before the newline goes.
  EXPECT_EQ(Frame("a\rb\r\r\n", {2}), (Lines{"a\rb\r"}));
}

TEST(LineFramerTest, ByteOrderMarkOnlyAtTheStartOfTheFile) {
  // In three reads.
  EXPECT_EQ(Frame("\xEF\xBB\xBF"
                  "x\n\xEF\xBB\xBF"
                  "y\n",
                  {1, 2}),
            (Lines{"x",
                   "\xEF\xBB\xBF"
                   "y"}));
  // Behind NULs (the hole before a writer's offset) it is no start of the file.
  EXPECT_EQ(Frame(std::string("\0\xEF\xBB\xBF"
                              "x\n",
                              6),
                  {}),
            (Lines{"\xEF\xBB\xBF"
                   "x"}));
  // Starting over at 0 (a truncation), the mark goes again.
  LineFramer framer(64);
  RecordingSink sink;
  framer.Feed(
      "\xEF\xBB\xBF"
      "a\n",
      5, 0, sink);
  framer.Reset(0);
  framer.Feed(
      "\xEF\xBB\xBF"
      "b\n",
      5, 0, sink);
  EXPECT_EQ(sink.lines, (Lines{"a", "b"}));
}

TEST(LineFramerTest, NulRunsAreNoPartOfAnyLine) {
  const std::string text = std::string("\0\0\0first\n", 9) + std::string("mid\0\0dle\n", 9) +
                           std::string(5000, '\0') + "after a long run\n";
  for (std::size_t a : {std::size_t(0), std::size_t(2), std::size_t(14), std::size_t(20),
                        std::size_t(2000), text.size() - 3}) {
    uint64_t committed = 0;
    EXPECT_EQ(Frame(text, {a}, 100, 0, &committed), (Lines{"first", "middle", "after a long run"}))
        << a;
    EXPECT_EQ(committed, text.size());
  }
}

TEST(LineFramerTest, StartingInsideALineSkipsToTheNextOne) {
  LineFramer framer(64);
  RecordingSink sink;
  framer.SkipToNextLine(10);
  EXPECT_EQ(framer.committed(), 10u);
  framer.Feed("f line\nnext\n", 12, 10, sink);
  EXPECT_EQ(sink.lines, (Lines{"next"}));
  EXPECT_EQ(framer.committed(), 22u);
  // Finished while still inside the first line: nothing.
  LineFramer finished(64);
  finished.SkipToNextLine(3);
  finished.Feed("abc", 3, 3, sink);
  finished.Finish(6, sink);
  EXPECT_EQ(sink.lines, (Lines{"next"}));
}

TEST(LineFramerTest, PositionStaysWhileTheSinkHoldsPartOfARecord) {
  LineFramer framer(64);
  RecordingSink sink;
  sink.holds_partial = true;
  framer.Feed("part 1\npart 2\n", 14, 0, sink);
  EXPECT_EQ(framer.committed(), 0u);
  sink.holds_partial = false;
  framer.Feed("end\n", 4, 14, sink);
  EXPECT_EQ(framer.committed(), 18u);
  EXPECT_EQ(sink.lines, (Lines{"part 1", "part 2", "end"}));
}

TEST(LineFramerTest, FinishDeliversTheHeldLineOnce) {
  LineFramer framer(64);
  RecordingSink sink;
  framer.Feed("1\n2 held\r", 9, 0, sink);
  EXPECT_TRUE(framer.holding());
  EXPECT_EQ(framer.committed(), 2u);
  framer.Finish(9, sink);
  EXPECT_EQ(framer.committed(), 9u);
  framer.Finish(9, sink);
  EXPECT_EQ(sink.lines, (Lines{"1", "2 held"}));
  EXPECT_FALSE(framer.holding());
}

}  // namespace
}  // namespace fastapi_exporter::access_log
