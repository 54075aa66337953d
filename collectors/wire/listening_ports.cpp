#include "collectors/wire/listening_ports.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <string>

namespace fastapi_exporter::wire {

void ParseListeningPorts(std::string_view net_tcp, const std::unordered_set<uint64_t>& inodes,
                         std::vector<uint16_t>& ports) {
  std::size_t line_start = net_tcp.find('\n');  // the first line names the columns
  while (line_start != std::string_view::npos && line_start + 1 < net_tcp.size()) {
    const std::size_t line_end = net_tcp.find('\n', line_start + 1);
    std::string_view line = net_tcp.substr(line_start + 1, line_end == std::string_view::npos
                                                               ? std::string_view::npos
                                                               : line_end - line_start - 1);
    line_start = line_end;
    std::string_view fields[10];
    std::size_t count = 0;
    for (std::size_t at = 0; at < line.size() && count < 10;) {
      while (at < line.size() && line[at] == ' ') ++at;
      const std::size_t end = std::min(line.find(' ', at), line.size());
      if (end > at) fields[count++] = line.substr(at, end - at);
      at = end;
    }
    if (count < 10 || fields[3] != "0A") continue;
    const std::string_view local = fields[1];
    const std::size_t colon = local.rfind(':');
    uint64_t inode = 0;
    unsigned port = 0;
    if (colon == std::string_view::npos ||
        std::from_chars(local.data() + colon + 1, local.data() + local.size(), port, 16).ec !=
            std::errc() ||
        std::from_chars(fields[9].data(), fields[9].data() + fields[9].size(), inode).ec !=
            std::errc()) {
      continue;
    }
    if (port > 0 && port <= 65535 && inodes.count(inode)) ports.push_back(uint16_t(port));
  }
}

std::vector<uint16_t> ListeningPorts(const process::ProcFs& procfs,
                                     const std::vector<pid_t>& pids) {
  std::unordered_set<uint64_t> inodes;
  for (const pid_t pid : pids) {
    const std::string fd_dir = procfs.proc_root() + "/" + std::to_string(pid) + "/fd";
    DIR* dir = ::opendir(fd_dir.c_str());
    if (!dir) continue;
    while (const dirent* entry = ::readdir(dir)) {
      char target[64];
      const std::string link = fd_dir + "/" + entry->d_name;
      const ssize_t size = ::readlink(link.c_str(), target, sizeof target - 1);
      if (size <= 0) continue;
      const std::string_view text(target, std::size_t(size));
      if (!text.starts_with("socket:[") || !text.ends_with("]")) continue;
      uint64_t inode = 0;
      if (std::from_chars(text.data() + 8, text.data() + text.size() - 1, inode).ec ==
          std::errc()) {
        inodes.insert(inode);
      }
    }
    ::closedir(dir);
  }
  std::vector<uint16_t> ports;
  if (inodes.empty()) return ports;
  std::string text;
  // Each network namespace's view once: a service in a container shows its sockets there.
  std::unordered_set<std::string> namespaces;
  for (const pid_t pid : pids) {
    char ns[64];
    const std::string ns_link = procfs.proc_root() + "/" + std::to_string(pid) + "/ns/net";
    const ssize_t size = ::readlink(ns_link.c_str(), ns, sizeof ns);
    if (size > 0 && !namespaces.insert(std::string(ns, std::size_t(size))).second) continue;
    for (const char* name : {"net/tcp", "net/tcp6"}) {
      if (procfs.ReadProcFile(pid, name, text) == process::ReadStatus::kOk) {
        ParseListeningPorts(text, inodes, ports);
      }
    }
  }
  std::sort(ports.begin(), ports.end());
  ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
  return ports;
}

}  // namespace fastapi_exporter::wire
