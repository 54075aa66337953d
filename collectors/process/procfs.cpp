#include "collectors/process/procfs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace fastapi_exporter::process {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::string_view TrimLeft(std::string_view text) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  return text;
}

std::string_view Trim(std::string_view text) {
  text = TrimLeft(text);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  return text;
}

// Takes the next whitespace-separated token from `text`.
std::string_view NextToken(std::string_view& text) {
  text = TrimLeft(text);
  std::size_t end = 0;
  while (end < text.size() && !IsSpace(text[end])) ++end;
  std::string_view token = text.substr(0, end);
  text.remove_prefix(end);
  return token;
}

template <typename Int>
bool ParseInt(std::string_view token, Int& value) {
  if (token.empty()) return false;
  const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
  return ec == std::errc() && end == token.data() + token.size();
}

// Finds "Key:" at the start of a line and parses the first number after it.
std::optional<uint64_t> FieldAfterKey(std::string_view text, std::string_view key) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    if (line.size() > key.size() && line.substr(0, key.size()) == key) {
      std::string_view rest = line.substr(key.size());
      uint64_t value = 0;
      if (ParseInt(NextToken(rest), value)) return value;
      return std::nullopt;
    }
    pos = eol + 1;
  }
  return std::nullopt;
}

ReadStatus StatusFromErrno(int error) {
  switch (error) {
    case ENOENT:
    case ESRCH:
      return ReadStatus::kGone;
    case EACCES:
    case EPERM:
      return ReadStatus::kDenied;
    default:
      return ReadStatus::kError;
  }
}

}  // namespace

std::optional<ProcStat> ParseStat(std::string_view text) {
  const std::size_t open = text.find('(');
  const std::size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return std::nullopt;
  }
  ProcStat stat;
  if (!ParseInt(Trim(text.substr(0, open)), stat.pid)) return std::nullopt;
  stat.comm = text.substr(open + 1, close - open - 1);

  std::string_view rest = text.substr(close + 1);
  // Fields from 3 (state) on; index i here is field number i + 3.
  constexpr int kFieldsNeeded = 22;  // up to field 24, rss
  std::string_view fields[kFieldsNeeded];
  for (auto& field : fields) {
    field = NextToken(rest);
    if (field.empty()) return std::nullopt;
  }
  auto field = [&](int number) { return fields[number - 3]; };
  if (field(3).size() != 1) return std::nullopt;
  stat.state = field(3)[0];
  int64_t cutime = 0, cstime = 0;
  const bool ok = ParseInt(field(4), stat.ppid) && ParseInt(field(10), stat.minflt) &&
                  ParseInt(field(11), stat.cminflt) && ParseInt(field(12), stat.majflt) &&
                  ParseInt(field(13), stat.cmajflt) && ParseInt(field(14), stat.utime) &&
                  ParseInt(field(15), stat.stime) && ParseInt(field(16), cutime) &&
                  ParseInt(field(17), cstime) && ParseInt(field(20), stat.num_threads) &&
                  ParseInt(field(22), stat.starttime) && ParseInt(field(23), stat.vsize) &&
                  ParseInt(field(24), stat.rss_pages);
  if (!ok) return std::nullopt;
  stat.cutime = cutime > 0 ? uint64_t(cutime) : 0;
  stat.cstime = cstime > 0 ? uint64_t(cstime) : 0;
  return stat;
}

std::optional<ContextSwitches> ParseStatusContextSwitches(std::string_view status_text) {
  auto voluntary = FieldAfterKey(status_text, "voluntary_ctxt_switches:");
  auto involuntary = FieldAfterKey(status_text, "nonvoluntary_ctxt_switches:");
  if (!voluntary || !involuntary) return std::nullopt;
  return ContextSwitches{*voluntary, *involuntary};
}

std::optional<IoCounters> ParseIo(std::string_view io_text) {
  auto read_bytes = FieldAfterKey(io_text, "read_bytes:");
  auto write_bytes = FieldAfterKey(io_text, "write_bytes:");
  if (!read_bytes || !write_bytes) return std::nullopt;
  return IoCounters{*read_bytes, *write_bytes};
}

std::optional<uint64_t> ParseMaxOpenFilesSoft(std::string_view limits_text) {
  constexpr std::string_view kKey = "Max open files";
  const std::size_t pos = limits_text.find(kKey);
  if (pos == std::string_view::npos) return std::nullopt;
  std::string_view rest = limits_text.substr(pos + kKey.size());
  const std::string_view soft = NextToken(rest);
  if (soft == "unlimited") return UINT64_MAX;
  uint64_t value = 0;
  if (!ParseInt(soft, value)) return std::nullopt;
  return value;
}

std::optional<uint64_t> ParseBootTime(std::string_view proc_stat_text) {
  return FieldAfterKey(proc_stat_text, "btime ");
}

std::optional<uint64_t> ParseCgroupCpuUsageUsec(std::string_view cpu_stat_text) {
  return FieldAfterKey(cpu_stat_text, "usage_usec ");
}

void ParsePidList(std::string_view text, std::vector<pid_t>& out) {
  for (std::string_view token = NextToken(text); !token.empty(); token = NextToken(text)) {
    pid_t pid = 0;
    if (ParseInt(token, pid) && pid > 0) out.push_back(pid);
  }
}

std::optional<pid_t> ParsePidfile(std::string_view text) {
  pid_t pid = 0;
  if (!ParseInt(Trim(text), pid) || pid <= 0) return std::nullopt;
  return pid;
}

std::string UnreadableReason(ReadStatus status, std::optional<uid_t> owner, uid_t reader,
                             std::string_view capability) {
  switch (status) {
    case ReadStatus::kOk:
      return "read";
    case ReadStatus::kGone:
      return "the process is gone";
    case ReadStatus::kUnsupported:
      return "the kernel does not provide this file";
    case ReadStatus::kError:
      return "the kernel returned an error other than permission denied";
    case ReadStatus::kDenied:
      break;
  }
  std::string text = "permission denied: ";
  if (owner && *owner != reader) {
    text += reader == 0 ? "running as root, yet without " : "another user's process needs ";
    text += capability;
    if (reader == 0) text += " (a capability bounding set or a user namespace?)";
    return text;
  }
  text += "the process is not dumpable or a security module (Yama, AppArmor, SELinux) refused; ";
  text += capability;
  text += " allows it";
  return text;
}

std::optional<uid_t> ProcFs::Owner(pid_t pid) const {
  struct stat info {};
  if (::stat((proc_root_ + "/" + std::to_string(pid)).c_str(), &info) != 0) return std::nullopt;
  return info.st_uid;
}

ProcFs::ProcFs(std::string proc_root, std::string cgroup_root)
    : proc_root_(std::move(proc_root)), cgroup_root_(std::move(cgroup_root)) {}

ReadStatus ProcFs::ReadFile(const std::string& path, std::string& out) {
  out.clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return StatusFromErrno(errno);
  // /proc files report size 0, so read until EOF in chunks appended to the buffer.
  constexpr std::size_t kChunk = 4096;
  ReadStatus status = ReadStatus::kOk;
  for (;;) {
    const std::size_t old_size = out.size();
    out.resize(old_size + kChunk);
    const ssize_t n = ::read(fd, out.data() + old_size, kChunk);
    if (n < 0) {
      if (errno == EINTR) {
        out.resize(old_size);
        continue;
      }
      status = StatusFromErrno(errno);
      out.resize(old_size);
      break;
    }
    out.resize(old_size + std::size_t(n));
    if (n == 0) break;
  }
  ::close(fd);
  return status;
}

ReadStatus ProcFs::ReadProcFile(pid_t pid, std::string_view name, std::string& out) const {
  std::string path = proc_root_;
  path += '/';
  path += std::to_string(pid);
  path += '/';
  path += name;
  return ReadFile(path, out);
}

pid_t ProcFs::SelfPid() const {
  char target[32];
  const ssize_t length = ::readlink((proc_root_ + "/self").c_str(), target, sizeof target);
  pid_t pid = 0;
  if (length > 0 && length < ssize_t(sizeof target) &&
      std::from_chars(target, target + length, pid).ec == std::errc() && pid > 0) {
    return pid;
  }
  return ::getpid();
}

std::vector<pid_t> ProcFs::ListPids() const {
  std::vector<pid_t> pids;
  DIR* dir = ::opendir(proc_root_.c_str());
  if (!dir) return pids;
  while (const dirent* entry = ::readdir(dir)) {
    pid_t pid = 0;
    if (ParseInt(std::string_view(entry->d_name), pid) && pid > 0) pids.push_back(pid);
  }
  ::closedir(dir);
  return pids;
}

ReadStatus ProcFs::CountOpenFds(pid_t pid, uint64_t& count) const {
  const std::string path = proc_root_ + "/" + std::to_string(pid) + "/fd";
  DIR* dir = ::opendir(path.c_str());
  if (!dir) return StatusFromErrno(errno);
  count = 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return ReadStatus::kOk;
}

ReadStatus ProcFs::ReadChildren(pid_t pid, std::vector<pid_t>& out) const {
  const std::string task_dir = proc_root_ + "/" + std::to_string(pid) + "/task";
  DIR* dir = ::opendir(task_dir.c_str());
  if (!dir) return StatusFromErrno(errno);
  ReadStatus status = ReadStatus::kOk;
  std::string text;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const ReadStatus read = ReadFile(task_dir + "/" + entry->d_name + "/children", text);
    if (read == ReadStatus::kOk) {
      ParsePidList(text, out);
    } else if (read == ReadStatus::kGone) {
      // A thread that just exited, or a kernel without CONFIG_PROC_CHILDREN: tell which by
      // whether the thread directory itself is still there.
      if (::access((task_dir + "/" + entry->d_name).c_str(), F_OK) == 0) {
        status = ReadStatus::kUnsupported;
        break;
      }
    } else {
      status = read;
      break;
    }
  }
  ::closedir(dir);
  return status;
}

}  // namespace fastapi_exporter::process
