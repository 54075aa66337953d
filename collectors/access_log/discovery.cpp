#include "collectors/access_log/discovery.hpp"

#include <glob.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <utility>

namespace fastapi_exporter::access_log {
namespace {

bool HasPattern(std::string_view text) {
  return text.find_first_of("*?[") != text.npos;
}

}  // namespace

std::vector<FoundFile> MatchGlob(const std::string& pattern) {
  std::vector<FoundFile> files;
  glob_t result{};
  if (::glob(pattern.c_str(), GLOB_NOSORT, nullptr, &result) == 0) {
    for (std::size_t i = 0; i < result.gl_pathc; ++i) {
      struct stat st;
      if (::stat(result.gl_pathv[i], &st) == 0 && S_ISREG(st.st_mode)) {
        files.push_back({result.gl_pathv[i], st});
      }
    }
  }
  ::globfree(&result);
  return files;
}

std::string GlobFolder(const std::string& glob) {
  return std::filesystem::path(glob).parent_path().string();
}

std::string LiteralFolder(const std::string& folder) {
  std::filesystem::path literal;
  for (const auto& part : std::filesystem::path(folder)) {
    if (HasPattern(part.string())) break;
    literal /= part;
  }
  return literal.string();
}

std::string NoFileReason(const std::string& folder) {
  if (!HasPattern(folder) && ::access(folder.c_str(), R_OK | X_OK) != 0) {
    return "folder " + folder + ": " + std::strerror(errno);
  }
  return "no file matches yet";
}

bool IsCompressed(std::string_view name) {
  for (std::string_view suffix : {".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4", ".Z"}) {
    if (name.ends_with(suffix)) return true;
  }
  return false;
}

std::vector<RotatedSibling> FindRotatedSiblings(const std::set<std::string>& live_paths) {
  // folder -> (name prefix, the live file it is a rotation of)
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> prefixes_by_folder;
  for (const std::string& path : live_paths) {
    const std::filesystem::path p(path);
    auto& prefixes = prefixes_by_folder[p.parent_path().string()];
    prefixes.emplace_back(p.filename().string() + ".", path);
    prefixes.emplace_back(p.filename().string() + "-", path);
  }
  std::vector<RotatedSibling> siblings;
  for (const auto& [folder, prefixes] : prefixes_by_folder) {
    std::error_code ec;
    for (std::filesystem::directory_iterator it(folder, ec), end; !ec && it != end;
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (IsCompressed(name) || live_paths.contains(it->path().string())) continue;
      const auto prefix = std::find_if(prefixes.begin(), prefixes.end(), [&](const auto& entry) {
        return name.starts_with(entry.first);
      });
      if (prefix == prefixes.end()) continue;
      // Built only once stat has filled it in: GCC 12 at -O3 takes a half-built one for
      // "maybe uninitialized".
      std::string path = it->path().string();
      struct stat st;
      if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      siblings.push_back({{std::move(path), st}, prefix->second});
    }
  }
  return siblings;
}

std::optional<FoundFile> FindByIdentity(const std::string& folder, const FileIdentity& identity) {
  std::error_code ec;
  for (std::filesystem::directory_iterator it(folder, ec), end; !ec && it != end;
       it.increment(ec)) {
    struct stat st;
    if (::stat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (IdentityOf(st) == identity) return FoundFile{it->path().string(), st};
  }
  return std::nullopt;
}

}  // namespace fastapi_exporter::access_log
