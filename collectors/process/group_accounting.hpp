// Turns per-process counters of a changing set of processes into group counters that never
// go backwards when a worker exits and is replaced.
//
// Each process is keyed by (pid, start time), so a reused PID is a new process. A process
// that disappears keeps contributing its last seen value:
// - if its parent is still in the group, the kernel adds the child's whole total to the
//   parent's "reaped children" fields (cutime/cstime, cmajflt) once the parent waits for it.
//   Until that growth is seen the last value is held as pending on the parent; the parent's
//   growth then absorbs it, which also accounts for what the child used after its last
//   sample.
// - otherwise (the top of the group, or a parent that never waits) the last value moves
//   into a permanent "exited" sum.
// What stays approximate: work a short-lived process did between two scrapes when its parent
// never waits for it, and reaped-children growth of unseen processes that a pending value
// absorbs. The totals are clamped so that they never decrease.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

namespace fastapi_exporter::process {

enum Counter : std::size_t {
  kCpuTicks,  // utime + stime; reaped: cutime + cstime
  kMajorFaults,
  kVoluntaryContextSwitches,
  kInvoluntaryContextSwitches,
  kReadBytes,
  kWriteBytes,
  kCounterCount,
};

using CounterValues = std::array<uint64_t, kCounterCount>;

struct ProcessSample {
  pid_t pid = 0;
  pid_t ppid = 0;
  uint64_t start_ticks = 0;
  CounterValues own{};
  CounterValues reaped_children{};  // only kCpuTicks and kMajorFaults have such fields
  bool io_valid = true;             // /proc/PID/io could be read
};

class GroupAccounting {
 public:
  // Feeds the samples of one scrape (the whole current group) and returns the group totals.
  CounterValues Update(const std::vector<ProcessSample>& samples);

 private:
  using Key = std::pair<pid_t, uint64_t>;  // pid, start time
  struct Known {
    ProcessSample last;
    CounterValues pending{};  // values of exited children not yet seen in reaped_children
  };

  std::map<Key, Known> known_;
  CounterValues exited_{};
  CounterValues reported_{};
};

}  // namespace fastapi_exporter::process
