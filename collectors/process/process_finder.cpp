#include "collectors/process/process_finder.hpp"

#include <re2/re2.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <unordered_map>
#include <unordered_set>

namespace fastapi_exporter::process {
namespace fs = std::filesystem;

const std::vector<ProcessTable::Entry>& ProcessTable::Entries() {
  if (entries_) return *entries_;
  entries_.emplace();
  std::string text;
  for (pid_t pid : procfs_.ListPids()) {
    if (procfs_.ReadProcFile(pid, "stat", text) != ReadStatus::kOk) continue;
    const auto stat = ParseStat(text);
    if (!stat) continue;
    Entry entry{pid, stat->ppid, std::string(stat->comm), {}};
    if (procfs_.ReadProcFile(pid, "cmdline", text) == ReadStatus::kOk) {
      while (!text.empty() && text.back() == '\0') text.pop_back();
      std::replace(text.begin(), text.end(), '\0', ' ');
      entry.cmdline = text;
    }
    entries_->push_back(std::move(entry));
  }
  return *entries_;
}

ProcessFinder::ProcessFinder(const config::ProcessSelector& selector, const ProcFs& procfs)
    : selector_(selector), procfs_(procfs) {
  if (selector_.cmdline) {
    re2::RE2::Options options(re2::RE2::Quiet);
    options.set_dot_nl(true);  // `python -c` programs put newlines in command lines
    cmdline_regex_ = std::make_unique<re2::RE2>(*selector_.cmdline, options);
  }
}

ProcessFinder::~ProcessFinder() = default;

bool ProcessFinder::CgroupCoversGroup() const {
  return selector_.systemd_unit && !selector_.pidfile && !selector_.pid && !selector_.pid_self &&
         !selector_.cmdline && !selector_.comm;
}

FindResult ProcessFinder::Find(ProcessTable& table) {
  FindResult result;
  if (selector_.pid &&
      ::access((procfs_.proc_root() + "/" + std::to_string(*selector_.pid)).c_str(), F_OK) == 0) {
    result.pids.push_back(*selector_.pid);
  }
  if (selector_.pid_self) result.pids.push_back(procfs_.SelfPid());
  if (selector_.pidfile) AddPidfile(result);
  if (selector_.systemd_unit) AddCgroup(result);
  if (selector_.comm || (cmdline_regex_ && cmdline_regex_->ok())) {
    for (const auto& entry : table.Entries()) {
      if ((selector_.comm && entry.comm == *selector_.comm) ||
          (cmdline_regex_ && re2::RE2::PartialMatch(entry.cmdline, *cmdline_regex_))) {
        result.pids.push_back(entry.pid);
      }
    }
  }
  if (selector_.children) AddDescendants(result.pids, table);
  std::sort(result.pids.begin(), result.pids.end());
  result.pids.erase(std::unique(result.pids.begin(), result.pids.end()), result.pids.end());
  return result;
}

void ProcessFinder::AddPidfile(FindResult& result) const {
  std::string text;
  const ReadStatus status = ProcFs::ReadFile(*selector_.pidfile, text);
  if (status == ReadStatus::kGone) return;  // the service is not running: not an error
  if (status != ReadStatus::kOk) {
    result.problems.push_back({"pidfile", "cannot read pidfile " + *selector_.pidfile});
    return;
  }
  const auto pid = ParsePidfile(text);
  if (!pid) {
    result.problems.push_back(
        {"pidfile", "pidfile " + *selector_.pidfile + " does not hold a PID"});
    return;
  }
  if (::access((procfs_.proc_root() + "/" + std::to_string(*pid)).c_str(), F_OK) == 0) {
    result.pids.push_back(*pid);
  }
}

std::optional<std::string> ProcessFinder::LocateUnitCgroup() const {
  const std::string& unit = *selector_.systemd_unit;
  const fs::path root = procfs_.cgroup_root();
  std::error_code ec;
  if (unit.find('/') != std::string::npos) {
    fs::path dir = root / fs::path(unit).relative_path();
    if (fs::is_directory(dir, ec)) return dir.string();
    return std::nullopt;
  }
  for (const char* slice : {"system.slice", ""}) {
    const fs::path dir = root / slice / unit;
    if (fs::is_directory(dir, ec)) return dir.string();
  }
  // Units in other slices (user sessions, custom slices): a shallow breadth-first search.
  constexpr int kMaxDepth = 5;
  std::deque<std::pair<fs::path, int>> queue{{root, 0}};
  while (!queue.empty()) {
    auto [dir, depth] = queue.front();
    queue.pop_front();
    for (fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
         !ec && it != end; it.increment(ec)) {
      if (!it->is_directory(ec) || it->is_symlink(ec)) continue;
      if (it->path().filename() == unit) return it->path().string();
      if (depth + 1 < kMaxDepth) queue.push_back({it->path(), depth + 1});
    }
  }
  return std::nullopt;
}

void ProcessFinder::AddCgroup(FindResult& result) {
  std::error_code ec;
  if (!cached_cgroup_dir_ || !fs::is_directory(*cached_cgroup_dir_, ec)) {
    cached_cgroup_dir_ = LocateUnitCgroup();
  }
  if (!cached_cgroup_dir_) return;  // unit not running (or not started yet)
  result.cgroup_dir = cached_cgroup_dir_;
  // The unit's processes, including those in sub-cgroups (delegated units).
  std::string text;
  std::vector<fs::path> dirs{*cached_cgroup_dir_};
  while (!dirs.empty()) {
    const fs::path dir = dirs.back();
    dirs.pop_back();
    const ReadStatus status = ProcFs::ReadFile((dir / "cgroup.procs").string(), text);
    if (status == ReadStatus::kOk) {
      ParsePidList(text, result.pids);
    } else if (status != ReadStatus::kGone) {
      result.problems.push_back({"cgroup", "cannot read " + (dir / "cgroup.procs").string()});
    }
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) dirs.push_back(it->path());
    }
  }
}

void ProcessFinder::AddDescendants(std::vector<pid_t>& pids, ProcessTable& table) const {
  std::unordered_set<pid_t> seen(pids.begin(), pids.end());
  std::vector<pid_t> frontier = pids;
  std::unordered_multimap<pid_t, pid_t> children_by_parent;  // only built if needed
  bool scanned_parents = false;
  std::vector<pid_t> children;
  while (!frontier.empty()) {
    const pid_t pid = frontier.back();
    frontier.pop_back();
    children.clear();
    if (procfs_.ReadChildren(pid, children) == ReadStatus::kUnsupported) {
      if (!scanned_parents) {
        for (const auto& entry : table.Entries()) {
          children_by_parent.emplace(entry.ppid, entry.pid);
        }
        scanned_parents = true;
      }
      const auto [first, last] = children_by_parent.equal_range(pid);
      for (auto it = first; it != last; ++it) children.push_back(it->second);
    }
    for (pid_t child : children) {
      if (seen.insert(child).second) {
        pids.push_back(child);
        frontier.push_back(child);
      }
    }
  }
}

}  // namespace fastapi_exporter::process
