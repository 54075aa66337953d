// Finding a source's files on disk: what its glob matches, the rotated siblings of the live
// files (access.log.1, access.log-20261127; compressed ones are never read), a file of the
// last run by its inode, and why a glob matches nothing. Stateless: which of the files found
// are new, old or done is the Tailer's to decide.
#pragma once

#include <sys/stat.h>

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "collectors/access_log/file_follower.hpp"

namespace fastapi_exporter::access_log {

struct FoundFile {
  std::string path;
  struct stat st;  // stat(2) of path: a symlink's target
};

// The regular files (symlinks followed) that glob(3) `pattern` matches, in no order.
std::vector<FoundFile> MatchGlob(const std::string& pattern);

// The folder part of a glob (may hold a pattern itself).
std::string GlobFolder(const std::string& glob);
// The longest leading part of `folder` without a pattern character (empty if the first part
// has one): the folder that can be watched.
std::string LiteralFolder(const std::string& folder);

// Why a glob whose folder is `folder` matches nothing: "folder /x: <strerror>" when the
// folder cannot be listed, else "no file matches yet".
std::string NoFileReason(const std::string& folder);

// A rotation's compressed output (.gz, .bz2, .xz, .zst, .zip, .lz4, .Z): never a log to read.
bool IsCompressed(std::string_view name);

struct RotatedSibling {
  FoundFile file;
  std::string live_path;  // the live file it is a rotation of
};
// Regular files next to each of `live_paths` named like its rotations (the live name followed
// by "." or "-"), except compressed ones and the live files themselves, in no order.
std::vector<RotatedSibling> FindRotatedSiblings(const std::set<std::string>& live_paths);

// The regular file with `identity` in `folder`, if any (a file of the last run renamed while
// the daemon was stopped).
std::optional<FoundFile> FindByIdentity(const std::string& folder, const FileIdentity& identity);

}  // namespace fastapi_exporter::access_log
