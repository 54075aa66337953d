// Reading /proc and cgroup v2 files, under configurable roots so tests can point at a fake tree.
//
// Written by hand rather than on libproc2 (procps 4): libproc2 always reads the real /proc
// (no root to point at a test tree or at a host's /proc mounted in a container), calls
// _exit() when /proc is not mounted, and measured 27-41 us per PID here against ~11 us for
// reading the few files we need directly. The parsing below is small and fuzzable.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fastapi_exporter::process {

// Fields of /proc/PID/stat that the collector uses. Times are in clock ticks.
struct ProcStat {
  pid_t pid = 0;
  std::string_view comm;  // points into the parsed text
  char state = '?';
  pid_t ppid = 0;
  uint64_t minflt = 0, cminflt = 0, majflt = 0, cmajflt = 0;
  uint64_t utime = 0, stime = 0, cutime = 0, cstime = 0;
  int64_t num_threads = 0;
  uint64_t starttime = 0;  // ticks after boot
  uint64_t vsize = 0;      // bytes
  int64_t rss_pages = 0;
};

// Parses /proc/PID/stat. The command name may itself contain spaces and parentheses, so it
// is taken up to the last ')' of the line. Returns nullopt on anything malformed.
std::optional<ProcStat> ParseStat(std::string_view text);

struct ContextSwitches {
  uint64_t voluntary = 0;
  uint64_t involuntary = 0;
};
std::optional<ContextSwitches> ParseStatusContextSwitches(std::string_view status_text);

struct IoCounters {
  uint64_t read_bytes = 0;
  uint64_t write_bytes = 0;
};
std::optional<IoCounters> ParseIo(std::string_view io_text);

// Soft "Max open files" from /proc/PID/limits; "unlimited" is reported as UINT64_MAX.
std::optional<uint64_t> ParseMaxOpenFilesSoft(std::string_view limits_text);

// "btime" of /proc/stat: boot time in seconds since the epoch.
std::optional<uint64_t> ParseBootTime(std::string_view proc_stat_text);

// usage_usec of a cgroup v2 cpu.stat.
std::optional<uint64_t> ParseCgroupCpuUsageUsec(std::string_view cpu_stat_text);

// Whitespace-separated PIDs, as in cgroup.procs and /proc/PID/task/TID/children.
void ParsePidList(std::string_view text, std::vector<pid_t>& out);

// A pidfile's content: one positive integer, surrounding whitespace allowed.
std::optional<pid_t> ParsePidfile(std::string_view text);

enum class ReadStatus {
  kOk,
  kGone,         // ENOENT/ESRCH: the process (or file) no longer exists; not an error
  kDenied,       // EACCES/EPERM
  kUnsupported,  // the kernel does not provide this file
  kError,        // anything else
};

// Why a file of a process could not be read, for the log: `capability` is what would let a
// reader of another user's process read it (CAP_SYS_PTRACE for io, CAP_DAC_READ_SEARCH for
// fd). A denial is only blamed on the owner when the owner differs from the reader: a process
// of the reader's own user (root reading root's, for example) is refused for another reason
// (not dumpable, a security module, a capability bounding set).
std::string UnreadableReason(ReadStatus status, std::optional<uid_t> owner, uid_t reader,
                             std::string_view capability);

// File access under a root ("/proc" and "/sys/fs/cgroup" in production).
class ProcFs {
 public:
  ProcFs(std::string proc_root, std::string cgroup_root);

  const std::string& proc_root() const { return proc_root_; }
  const std::string& cgroup_root() const { return cgroup_root_; }

  // Reads a whole small file into `out` (reusing its capacity).
  static ReadStatus ReadFile(const std::string& path, std::string& out);
  ReadStatus ReadProcFile(pid_t pid, std::string_view name, std::string& out) const;

  // The owner of /proc/PID (root while the process is not dumpable); nullopt if it is gone.
  std::optional<uid_t> Owner(pid_t pid) const;

  // Numeric entries of the proc root.
  std::vector<pid_t> ListPids() const;

  // The exporter's own PID as this proc root numbers it: the target of its `self` link,
  // which differs from getpid() when the root is another PID namespace's /proc (a host's
  // /proc mounted in a container). getpid() when the root has no such link.
  pid_t SelfPid() const;

  // Number of entries in /proc/PID/fd.
  ReadStatus CountOpenFds(pid_t pid, uint64_t& count) const;

  // Direct children from /proc/PID/task/*/children. kUnsupported when the kernel lacks the
  // file (CONFIG_PROC_CHILDREN off): the caller then scans parent PIDs instead.
  ReadStatus ReadChildren(pid_t pid, std::vector<pid_t>& out) const;

 private:
  std::string proc_root_;
  std::string cgroup_root_;
};

}  // namespace fastapi_exporter::process
