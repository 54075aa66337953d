#include "collectors/process/procfs.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "tests/unit/fake_proc.hpp"

namespace fastapi_exporter::process {
namespace {

// A line as the kernel writes it for a uvicorn worker: all 52 fields.
constexpr std::string_view kUvicornStat =
    "41872 (uvicorn) S 41870 41870 1203 34816 41870 4194560 24321 0 12 3 1234 567 89 10 20 0 "
    "4 0 987654 339136512 12345 18446744073709551615 94823432 94825245 140731 0 0 0 0 16781312 "
    "2 0 0 0 17 0 0 0 0 0 0 94827 94828 94829 140732 140733 140734 140735 0\n";

TEST(ParseStat, ReadsTheFieldsOfARealLine) {
  const auto stat = ParseStat(kUvicornStat);
  ASSERT_TRUE(stat);
  EXPECT_EQ(stat->pid, 41872);
  EXPECT_EQ(stat->comm, "uvicorn");
  EXPECT_EQ(stat->state, 'S');
  EXPECT_EQ(stat->ppid, 41870);
  EXPECT_EQ(stat->majflt, 12u);
  EXPECT_EQ(stat->cmajflt, 3u);
  EXPECT_EQ(stat->utime, 1234u);
  EXPECT_EQ(stat->stime, 567u);
  EXPECT_EQ(stat->cutime, 89u);
  EXPECT_EQ(stat->cstime, 10u);
  EXPECT_EQ(stat->num_threads, 4);
  EXPECT_EQ(stat->starttime, 987654u);
  EXPECT_EQ(stat->vsize, 339136512u);
  EXPECT_EQ(stat->rss_pages, 12345);
}

TEST(ParseStat, CommandNameWithSpacesAndParentheses) {
  const auto stat = ParseStat(
      "77 (gunicorn: worker (app) ) x) R 5 77 77 0 -1 0 0 0 1 2 30 40 5 6 20 0 3 0 4242 1000 7 "
      "0 0\n");
  ASSERT_TRUE(stat);
  EXPECT_EQ(stat->comm, "gunicorn: worker (app) ) x");
  EXPECT_EQ(stat->state, 'R');
  EXPECT_EQ(stat->ppid, 5);
  EXPECT_EQ(stat->utime, 30u);
  EXPECT_EQ(stat->stime, 40u);
  EXPECT_EQ(stat->num_threads, 3);
  EXPECT_EQ(stat->starttime, 4242u);
  EXPECT_EQ(stat->rss_pages, 7);
}

TEST(ParseStat, ThisProcess) {
  std::string text;
  ASSERT_EQ(ProcFs::ReadFile("/proc/self/stat", text), ReadStatus::kOk);
  const auto stat = ParseStat(text);
  ASSERT_TRUE(stat);
  EXPECT_EQ(stat->pid, getpid());
  EXPECT_EQ(stat->ppid, getppid());
  EXPECT_GT(stat->rss_pages, 0);
}

TEST(ParseStat, RejectsMalformedLines) {
  EXPECT_FALSE(ParseStat(""));
  EXPECT_FALSE(ParseStat("garbage"));
  EXPECT_FALSE(ParseStat("12 (x"));
  EXPECT_FALSE(ParseStat("12 (x) S 1 2 3"));                         // truncated
  EXPECT_FALSE(ParseStat(std::string(kUvicornStat.substr(0, 60))));  // cut mid-line
  EXPECT_FALSE(ParseStat("abc (x) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 1 1 1"));
  EXPECT_FALSE(ParseStat("12 (x) S 1 1 1 0 -1 0 0 0 0 0 ab 1 0 0 20 0 1 0 1 1 1"));
}

TEST(ParseStatus, ContextSwitches) {
  const auto switches = ParseStatusContextSwitches(
      "Name:\tuvicorn\nThreads:\t4\nvoluntary_ctxt_switches:\t1500\n"
      "nonvoluntary_ctxt_switches:\t23\n");
  ASSERT_TRUE(switches);
  EXPECT_EQ(switches->voluntary, 1500u);
  EXPECT_EQ(switches->involuntary, 23u);
  EXPECT_FALSE(ParseStatusContextSwitches("Name:\tx\n"));
}

TEST(ParseIo, ReadAndWriteBytes) {
  const auto io = ParseIo(
      "rchar: 9\nwchar: 8\nsyscr: 1\nsyscw: 1\nread_bytes: 4096\nwrite_bytes: 8192\n"
      "cancelled_write_bytes: 0\n");
  ASSERT_TRUE(io);
  EXPECT_EQ(io->read_bytes, 4096u);
  EXPECT_EQ(io->write_bytes, 8192u);
  EXPECT_FALSE(ParseIo("rchar: 9\n"));
}

TEST(ParseLimits, SoftMaxOpenFiles) {
  EXPECT_EQ(ParseMaxOpenFilesSoft("Max processes    100   100  processes\n"
                                  "Max open files            1024                 524288    "
                                  "           files     \n"),
            1024u);
  EXPECT_EQ(ParseMaxOpenFilesSoft("Max open files  unlimited  unlimited  files\n"), UINT64_MAX);
  EXPECT_FALSE(ParseMaxOpenFilesSoft("Max processes 1 1\n"));
}

TEST(ParsePidfile, AcceptsOnePositiveNumber) {
  EXPECT_EQ(ParsePidfile("1234\n"), 1234);
  EXPECT_EQ(ParsePidfile("  42  "), 42);
  EXPECT_FALSE(ParsePidfile(""));
  EXPECT_FALSE(ParsePidfile("abc"));
  EXPECT_FALSE(ParsePidfile("12ab"));
  EXPECT_FALSE(ParsePidfile("-5"));
  EXPECT_FALSE(ParsePidfile("0"));
  EXPECT_FALSE(ParsePidfile("12 13"));
  EXPECT_FALSE(ParsePidfile("99999999999999999999"));
}

TEST(ParseMisc, BootTimeCgroupUsageAndPidLists) {
  EXPECT_EQ(ParseBootTime("cpu  1 2 3\nbtime 1700000000\n"), 1700000000u);
  EXPECT_EQ(ParseCgroupCpuUsageUsec("usage_usec 123456\nuser_usec 1\n"), 123456u);
  std::vector<pid_t> pids;
  ParsePidList("10\n20 30\n\nx 40", pids);
  EXPECT_EQ(pids, (std::vector<pid_t>{10, 20, 30, 40}));
}

TEST(ProcFs, ReadStatusesOfMissingAndPresentFiles) {
  testing::FakeProc fake;
  ProcFs procfs(fake.proc_root(), fake.cgroup_root());
  std::string text;
  EXPECT_EQ(procfs.ReadProcFile(4242, "stat", text), ReadStatus::kGone);
  testing::FakeProcess p;
  p.pid = 4242;
  p.children = {4243, 4244};
  fake.Write(p);
  EXPECT_EQ(procfs.ReadProcFile(4242, "stat", text), ReadStatus::kOk);
  std::vector<pid_t> children;
  EXPECT_EQ(procfs.ReadChildren(4242, children), ReadStatus::kOk);
  EXPECT_EQ(children, (std::vector<pid_t>{4243, 4244}));
  uint64_t fds = 0;
  EXPECT_EQ(procfs.CountOpenFds(4242, fds), ReadStatus::kOk);
  EXPECT_EQ(fds, 3u);
  fake.MakeUnreadable(4242, "io");
  EXPECT_EQ(procfs.ReadProcFile(4242, "io", text), ReadStatus::kError);

  p.kernel_has_children_file = false;
  fake.Write(p);
  EXPECT_EQ(procfs.ReadChildren(4242, children), ReadStatus::kUnsupported);
}

TEST(ProcFs, SelfPidIsTheTargetOfTheRootsSelfLink) {
  testing::FakeProc fake;
  ProcFs procfs(fake.proc_root(), fake.cgroup_root());
  EXPECT_EQ(procfs.SelfPid(), ::getpid());  // no link: this process
  std::filesystem::create_directory_symlink("4242", fake.proc_root() + "/self");
  EXPECT_EQ(procfs.SelfPid(), 4242);
  EXPECT_EQ(ProcFs("/proc", "/sys/fs/cgroup").SelfPid(), ::getpid());
}

TEST(ProcFs, OwnerOfAProcess) {
  testing::FakeProc fake;
  ProcFs procfs(fake.proc_root(), fake.cgroup_root());
  EXPECT_FALSE(procfs.Owner(4242));
  testing::FakeProcess p;
  p.pid = 4242;
  fake.Write(p);
  EXPECT_EQ(procfs.Owner(4242), ::geteuid());
}

// Issue #16: "another user's process needs CAP_SYS_PTRACE" was said of a root-owned process
// to an exporter running as root.
TEST(UnreadableReason, BlamesTheOwnerOnlyWhenItIsAnotherUser) {
  EXPECT_EQ(UnreadableReason(ReadStatus::kDenied, 1000, 998, "CAP_SYS_PTRACE"),
            "permission denied: another user's process needs CAP_SYS_PTRACE");
  EXPECT_EQ(UnreadableReason(ReadStatus::kDenied, 1000, 0, "CAP_SYS_PTRACE"),
            "permission denied: running as root, yet without CAP_SYS_PTRACE (a capability "
            "bounding set or a user namespace?)");
  const std::string own =
      "permission denied: the process is not dumpable or a security module (Yama, AppArmor, "
      "SELinux) refused; CAP_DAC_READ_SEARCH allows it";
  EXPECT_EQ(UnreadableReason(ReadStatus::kDenied, 0, 0, "CAP_DAC_READ_SEARCH"), own);
  EXPECT_EQ(UnreadableReason(ReadStatus::kDenied, 998, 998, "CAP_DAC_READ_SEARCH"), own);
  // Gone between the listing and the read: the owner is unknown, nobody is blamed.
  EXPECT_EQ(
      UnreadableReason(ReadStatus::kDenied, std::nullopt, 0, "CAP_SYS_PTRACE").find("another user"),
      std::string::npos);
  EXPECT_EQ(UnreadableReason(ReadStatus::kGone, 0, 0, "CAP_SYS_PTRACE"), "the process is gone");
  EXPECT_EQ(UnreadableReason(ReadStatus::kUnsupported, 0, 0, "CAP_SYS_PTRACE"),
            "the kernel does not provide this file");
  EXPECT_EQ(UnreadableReason(ReadStatus::kError, 0, 0, "CAP_SYS_PTRACE"),
            "the kernel returned an error other than permission denied");
}

}  // namespace
}  // namespace fastapi_exporter::process
