// A fake /proc and cgroup v2 tree in a temporary folder, for collector tests.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace fastapi_exporter::testing {

struct FakeProcess {
  pid_t pid = 0;
  pid_t ppid = 1;
  std::string comm = "python3";
  std::vector<std::string> argv = {"python3"};
  uint64_t utime = 0, stime = 0, cutime = 0, cstime = 0;  // ticks
  uint64_t majflt = 0, cmajflt = 0;
  uint64_t start_ticks = 1000;
  int64_t threads = 1;
  uint64_t vsize = 0;
  int64_t rss_pages = 0;
  uint64_t voluntary_switches = 0, involuntary_switches = 0;
  uint64_t read_bytes = 0, write_bytes = 0;
  int open_fds = 3;
  std::string max_open_files_soft = "1024";
  std::vector<pid_t> children;  // written to task/PID/children
  bool kernel_has_children_file = true;
};

class FakeProc {
 public:
  FakeProc();
  ~FakeProc();
  FakeProc(const FakeProc&) = delete;
  FakeProc& operator=(const FakeProc&) = delete;

  std::string root() const { return root_; }
  std::string proc_root() const { return root_ + "/proc"; }
  std::string cgroup_root() const { return root_ + "/cgroup"; }

  // Creates or replaces every file of the process.
  void Write(const FakeProcess& process);
  void Remove(pid_t pid);
  // Replaces one file of a process with a directory, so reading it fails.
  void MakeUnreadable(pid_t pid, const std::string& file);

  // Writes a file under the root (parents created) and returns its path.
  std::string WriteFile(const std::string& relative_path, const std::string& content);
  // A cgroup directory with its cgroup.procs and cpu.stat.
  void WriteCgroup(const std::string& relative_dir, const std::vector<pid_t>& pids,
                   uint64_t usage_usec);
  void RemoveCgroup(const std::string& relative_dir);

 private:
  std::string root_;
};

}  // namespace fastapi_exporter::testing
