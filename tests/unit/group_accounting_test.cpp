#include "collectors/process/group_accounting.hpp"

#include <gtest/gtest.h>

namespace fastapi_exporter::process {
namespace {

ProcessSample Sample(pid_t pid, pid_t ppid, uint64_t start, uint64_t cpu, uint64_t reaped_cpu = 0) {
  ProcessSample sample;
  sample.pid = pid;
  sample.ppid = ppid;
  sample.start_ticks = start;
  sample.own[kCpuTicks] = cpu;
  sample.reaped_children[kCpuTicks] = reaped_cpu;
  return sample;
}

TEST(GroupAccounting, SumsLiveProcesses) {
  GroupAccounting accounting;
  const auto totals = accounting.Update({Sample(10, 1, 100, 50, 5), Sample(11, 10, 200, 30)});
  EXPECT_EQ(totals[kCpuTicks], 85u);
}

TEST(GroupAccounting, ExitedWorkerReapedByMasterIsCountedOnce) {
  GroupAccounting accounting;
  EXPECT_EQ(accounting.Update({Sample(10, 1, 100, 50), Sample(11, 10, 200, 30)})[kCpuTicks], 80u);
  // The worker used 10 more ticks, exited and was reaped by the master, whose cutime now
  // holds its whole 40; a replacement worker started.
  EXPECT_EQ(accounting.Update({Sample(10, 1, 100, 52, 40), Sample(12, 10, 300, 1)})[kCpuTicks],
            52u + 40u + 1u);
  // Nothing more happens: the total stays, nothing is counted twice.
  EXPECT_EQ(accounting.Update({Sample(10, 1, 100, 52, 40), Sample(12, 10, 300, 1)})[kCpuTicks],
            93u);
}

TEST(GroupAccounting, ReapSeenOnlyAScrapeLaterIsNotCountedTwice) {
  GroupAccounting accounting;
  accounting.Update({Sample(10, 1, 100, 50), Sample(11, 10, 200, 30)});
  // Worker gone but its parent has not waited for it yet: its last value is held.
  EXPECT_EQ(accounting.Update({Sample(10, 1, 100, 50)})[kCpuTicks], 80u);
  // Now the master reaps it (it had used 33 in all).
  EXPECT_EQ(accounting.Update({Sample(10, 1, 100, 50, 33)})[kCpuTicks], 83u);
  EXPECT_EQ(accounting.Update({Sample(10, 1, 100, 51, 33)})[kCpuTicks], 84u);
}

TEST(GroupAccounting, ExitedWorkerNeverReapedKeepsItsLastValue) {
  GroupAccounting accounting;
  accounting.Update({Sample(10, 1, 100, 50), Sample(11, 10, 200, 30)});
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(accounting.Update({Sample(10, 1, 100, 50)})[kCpuTicks], 80u);
  }
}

TEST(GroupAccounting, WholeGroupGoneAndBackNeverGoesBackwards) {
  GroupAccounting accounting;
  EXPECT_EQ(accounting.Update({Sample(10, 1, 100, 50, 7)})[kCpuTicks], 57u);
  EXPECT_EQ(accounting.Update({})[kCpuTicks], 57u);
  EXPECT_EQ(accounting.Update({Sample(20, 1, 900, 3)})[kCpuTicks], 60u);
}

TEST(GroupAccounting, ReusedPidIsANewProcess) {
  GroupAccounting accounting;
  accounting.Update({Sample(10, 1, 100, 50), Sample(11, 10, 200, 30)});
  // PID 11 exited unreaped and a new, unrelated process got PID 11 (new start time) with
  // less CPU: the old one's 30 stays, the new one's 2 adds.
  EXPECT_EQ(accounting.Update({Sample(10, 1, 100, 50), Sample(11, 10, 500, 2)})[kCpuTicks], 82u);
}

TEST(GroupAccounting, CountersWithoutChildFieldsMoveToExited) {
  GroupAccounting accounting;
  ProcessSample worker = Sample(11, 10, 200, 0);
  worker.own[kReadBytes] = 4096;
  worker.own[kVoluntaryContextSwitches] = 9;
  accounting.Update({Sample(10, 1, 100, 0), worker});
  const auto totals = accounting.Update({Sample(10, 1, 100, 0)});
  EXPECT_EQ(totals[kReadBytes], 4096u);
  EXPECT_EQ(totals[kVoluntaryContextSwitches], 9u);
}

TEST(GroupAccounting, UnreadableIoKeepsTheLastReadableValue) {
  GroupAccounting accounting;
  ProcessSample sample = Sample(10, 1, 100, 0);
  sample.own[kWriteBytes] = 100;
  accounting.Update({sample});
  sample.own[kWriteBytes] = 0;
  sample.io_valid = false;
  EXPECT_EQ(accounting.Update({sample})[kWriteBytes], 100u);
}

}  // namespace
}  // namespace fastapi_exporter::process
