// The TCP ports a set of processes listen on, from /proc: their socket inodes
// (/proc/PID/fd/* -> "socket:[INODE]") matched against the LISTEN sockets of
// /proc/PID/net/tcp and tcp6 (proc(5): "sl local_address rem_address st ... inode", state 0A
// is LISTEN). Reading another user's /proc/PID/fd needs that user or CAP_SYS_PTRACE; what
// cannot be read is left out.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "collectors/process/procfs.hpp"

namespace fastapi_exporter::wire {

// The local ports of the LISTEN sockets of one /proc/net/tcp{,6} text whose inode is in
// `inodes`, appended to `ports`.
void ParseListeningPorts(std::string_view net_tcp, const std::unordered_set<uint64_t>& inodes,
                         std::vector<uint16_t>& ports);

// Sorted, unique.
std::vector<uint16_t> ListeningPorts(const process::ProcFs& procfs, const std::vector<pid_t>& pids);

}  // namespace fastapi_exporter::wire
