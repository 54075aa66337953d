#include "tests/unit/fake_proc.hpp"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace fastapi_exporter::testing {
namespace fs = std::filesystem;

FakeProc::FakeProc() {
  std::string pattern = (fs::temp_directory_path() / "fake-proc-XXXXXX").string();
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  root_ = pattern;
  fs::create_directories(proc_root());
  fs::create_directories(cgroup_root());
  WriteFile("proc/stat", "cpu  1 2 3 4\nbtime 1700000000\nprocesses 42\n");
}

FakeProc::~FakeProc() {
  std::error_code ec;
  fs::remove_all(root_, ec);
}

std::string FakeProc::WriteFile(const std::string& relative_path, const std::string& content) {
  const fs::path path = fs::path(root_) / relative_path;
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  return path.string();
}

void FakeProc::Write(const FakeProcess& p) {
  const std::string dir = "proc/" + std::to_string(p.pid);
  std::error_code ec;
  fs::remove_all(fs::path(root_) / dir, ec);
  std::ostringstream stat;
  // Fields 1..24 as the kernel prints them, then the rest of the line (unused).
  stat << p.pid << " (" << p.comm << ") S " << p.ppid << " " << p.pid << " " << p.pid
       << " 0 -1 4194304 0 0 " << p.majflt << " " << p.cmajflt << " " << p.utime << " " << p.stime
       << " " << p.cutime << " " << p.cstime << " 20 0 " << p.threads << " 0 " << p.start_ticks
       << " " << p.vsize << " " << p.rss_pages
       << " 18446744073709551615 1 1 0 0 0 0 0 16781312 134234626 0 0 0 17 1 0 0 0 0 0\n";
  WriteFile(dir + "/stat", stat.str());
  std::string cmdline;
  for (const auto& arg : p.argv) cmdline += arg + '\0';
  WriteFile(dir + "/cmdline", cmdline);
  WriteFile(dir + "/comm", p.comm + "\n");
  WriteFile(dir + "/status",
            "Name:\t" + p.comm + "\nState:\tS (sleeping)\nThreads:\t" + std::to_string(p.threads) +
                "\nvoluntary_ctxt_switches:\t" + std::to_string(p.voluntary_switches) +
                "\nnonvoluntary_ctxt_switches:\t" + std::to_string(p.involuntary_switches) + "\n");
  WriteFile(
      dir + "/io",
      "rchar: 100\nwchar: 200\nsyscr: 1\nsyscw: 2\nread_bytes: " + std::to_string(p.read_bytes) +
          "\nwrite_bytes: " + std::to_string(p.write_bytes) + "\ncancelled_write_bytes: 0\n");
  WriteFile(dir + "/limits",
            "Limit                     Soft Limit           Hard Limit           Units     \n"
            "Max cpu time              unlimited            unlimited            seconds   \n"
            "Max open files            " +
                p.max_open_files_soft + "                 524288               files     \n");
  fs::create_directories(fs::path(root_) / dir / "fd");
  for (int fd = 0; fd < p.open_fds; ++fd) WriteFile(dir + "/fd/" + std::to_string(fd), "");
  const std::string task = dir + "/task/" + std::to_string(p.pid);
  fs::create_directories(fs::path(root_) / task);
  if (p.kernel_has_children_file) {
    std::string children;
    for (pid_t child : p.children) children += std::to_string(child) + " ";
    WriteFile(task + "/children", children);
  }
}

void FakeProc::Remove(pid_t pid) {
  std::error_code ec;
  fs::remove_all(fs::path(proc_root()) / std::to_string(pid), ec);
}

void FakeProc::MakeUnreadable(pid_t pid, const std::string& file) {
  const fs::path path = fs::path(proc_root()) / std::to_string(pid) / file;
  std::error_code ec;
  fs::remove_all(path, ec);
  if (file == "fd") {
    WriteFile("proc/" + std::to_string(pid) + "/fd", "not a directory");
  } else {
    fs::create_directories(path);
  }
}

void FakeProc::WriteCgroup(const std::string& relative_dir, const std::vector<pid_t>& pids,
                           uint64_t usage_usec) {
  std::string procs;
  for (pid_t pid : pids) procs += std::to_string(pid) + "\n";
  WriteFile("cgroup/" + relative_dir + "/cgroup.procs", procs);
  WriteFile("cgroup/" + relative_dir + "/cpu.stat",
            "usage_usec " + std::to_string(usage_usec) + "\nuser_usec 1\nsystem_usec 2\n");
}

void FakeProc::RemoveCgroup(const std::string& relative_dir) {
  std::error_code ec;
  fs::remove_all(fs::path(cgroup_root()) / relative_dir, ec);
}

}  // namespace fastapi_exporter::testing
