#include "collectors/access_log/positions.hpp"

#include <fcntl.h>
#include <simdjson.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace fastapi_exporter::access_log {
namespace {

// A Linux file name is any bytes but '/' and NUL, and a YAML string only UTF-8: a name that
// is not UTF-8 is written as hex under "<key>_hex" so that it loads back byte for byte.
void EmitBytes(YAML::Emitter& out, const char* key, const std::string& value) {
  if (simdjson::validate_utf8(value.data(), value.size())) {
    out << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << value;
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : value) {
    hex.push_back(kHex[c >> 4]);
    hex.push_back(kHex[c & 0xf]);
  }
  out << YAML::Key << (std::string(key) + "_hex") << YAML::Value << hex;
}

std::string ReadBytes(const YAML::Node& item, const std::string& key) {
  if (const YAML::Node plain = item[key]) return plain.as<std::string>();
  const std::string hex = item[key + "_hex"].as<std::string>();
  auto digit = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    throw std::runtime_error("bad hex digit");
  };
  if (hex.size() % 2) throw std::runtime_error("odd hex length");
  std::string value;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    value.push_back(char(digit(hex[i]) * 16 + digit(hex[i + 1])));
  }
  return value;
}

}  // namespace

namespace {

// The temporary file a save writes before renaming it over `path` (its folder created);
// -1 with the reason otherwise.
int OpenTemporary(const std::string& path, const std::string& temp, std::string& error) {
  const std::filesystem::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path(), ec);
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) error = "cannot write " + temp + ": " + std::strerror(errno);
  return fd;
}

}  // namespace

bool PositionsWritable(const std::string& path, std::string& error) {
  const std::string temp = path + ".tmp";
  const int fd = OpenTemporary(path, temp, error);
  if (fd < 0) return false;
  ::close(fd);
  ::unlink(temp.c_str());
  return true;
}

bool SavePositions(const std::string& path, const Positions& positions, std::string& error) {
  YAML::Emitter out;
  out << YAML::BeginMap << YAML::Key << "version" << YAML::Value << 1;
  out << YAML::Key << "files" << YAML::Value << YAML::BeginSeq;
  for (const auto& file : positions.files) {
    out << YAML::BeginMap;
    EmitBytes(out, "source", file.source);
    EmitBytes(out, "path", file.path);
    out << YAML::Key << "device" << YAML::Value << file.device;
    out << YAML::Key << "inode" << YAML::Value << file.inode;
    out << YAML::Key << "offset" << YAML::Value << file.offset;
    out << YAML::Key << "fingerprint" << YAML::Value << file.fingerprint;
    out << YAML::Key << "fingerprint_bytes" << YAML::Value << file.fingerprint_bytes;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  // Only when there are some: a file without journal sources reads as before.
  if (!positions.journals.empty()) {
    out << YAML::Key << "journals" << YAML::Value << YAML::BeginSeq;
    for (const auto& journal : positions.journals) {
      out << YAML::BeginMap;
      EmitBytes(out, "source", journal.source);
      EmitBytes(out, "cursor", journal.cursor);
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;

  const std::string temp = path + ".tmp";
  const int fd = OpenTemporary(path, temp, error);
  if (fd < 0) return false;
  std::string text = out.c_str();
  text += '\n';
  const char* data = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = "cannot write " + temp + ": " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    data += n;
    left -= std::size_t(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    error = "cannot sync " + temp + ": " + std::strerror(errno);
    return false;
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    error = "cannot rename " + temp + " to " + path + ": " + std::strerror(errno);
    return false;
  }
  const std::filesystem::path target(path);
  const std::string folder = target.has_parent_path() ? target.parent_path().string() : ".";
  if (const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return true;
}

Positions LoadPositions(const std::string& path, std::string& warning) {
  Positions positions;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return positions;
  positions.saved_at_unix = int64_t(st.st_mtime);
  try {
    const YAML::Node root = YAML::LoadFile(path);
    for (const auto& item : root["files"]) {
      FilePosition file;
      file.source = ReadBytes(item, "source");
      file.path = ReadBytes(item, "path");
      file.device = item["device"].as<uint64_t>();
      file.inode = item["inode"].as<uint64_t>();
      file.offset = item["offset"].as<uint64_t>();
      file.fingerprint = item["fingerprint"].as<uint64_t>();
      file.fingerprint_bytes = item["fingerprint_bytes"].as<uint32_t>();
      positions.files.push_back(std::move(file));
    }
    for (const auto& item : root["journals"]) {
      positions.journals.push_back({ReadBytes(item, "source"), ReadBytes(item, "cursor")});
    }
  } catch (const std::exception& e) {
    warning = "ignoring unreadable positions file " + path + " (" + e.what() +
              "): files are read as if never seen";
    return Positions{};
  }
  return positions;
}

}  // namespace fastapi_exporter::access_log
