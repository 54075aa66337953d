// Resolves a service's process selectors to the PIDs that belong to it right now.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "collectors/process/procfs.hpp"
#include "config/config.hpp"

namespace re2 {
class RE2;
}

namespace fastapi_exporter::process {

// Every process on the machine with what the selectors look at. Built on first use and
// shared by all services within one scrape, so services found by pidfile or systemd unit
// cost nothing per unrelated process.
class ProcessTable {
 public:
  struct Entry {
    pid_t pid = 0;
    pid_t ppid = 0;
    std::string comm;
    std::string cmdline;  // NUL separators replaced by spaces
  };

  explicit ProcessTable(const ProcFs& procfs) : procfs_(procfs) {}
  const std::vector<Entry>& Entries();

 private:
  const ProcFs& procfs_;
  std::optional<std::vector<Entry>> entries_;
};

// A problem met while finding processes, for the read-errors self-metric and the log.
struct FindProblem {
  std::string kind;  // "pidfile", "cgroup"
  std::string message;
};

struct FindResult {
  std::vector<pid_t> pids;                // sorted, unique
  std::optional<std::string> cgroup_dir;  // the unit's cgroup, when found via systemd_unit
  std::vector<FindProblem> problems;
};

class ProcessFinder {
 public:
  ProcessFinder(const config::ProcessSelector& selector, const ProcFs& procfs);
  ~ProcessFinder();

  FindResult Find(ProcessTable& table);

  // True when the only selector is a systemd unit, so the cgroup's own CPU accounting
  // covers exactly the group.
  bool CgroupCoversGroup() const;

 private:
  void AddPidfile(FindResult& result) const;
  void AddCgroup(FindResult& result);
  void AddDescendants(std::vector<pid_t>& pids, ProcessTable& table) const;
  std::optional<std::string> LocateUnitCgroup() const;

  config::ProcessSelector selector_;
  const ProcFs& procfs_;
  std::unique_ptr<re2::RE2> cmdline_regex_;
  std::optional<std::string> cached_cgroup_dir_;
};

}  // namespace fastapi_exporter::process
