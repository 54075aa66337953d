#include "collectors/access_log/file_follower.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <spdlog/spdlog.h>

namespace fastapi_exporter::access_log {

FileIdentity IdentityOf(const struct stat& st) {
  return {uint64_t(st.st_dev), uint64_t(st.st_ino)};
}

uint64_t FirstNonNul(int fd) {
  char chunk[4096];
  uint64_t offset = 0;
  for (;;) {
    // A hole (what a write past the end leaves) is skipped without reading it.
    const off_t data = ::lseek(fd, off_t(offset), SEEK_DATA);
    if (data < 0 && errno == ENXIO) {
      struct stat st;
      return ::fstat(fd, &st) == 0 ? uint64_t(st.st_size) : offset;
    }
    if (data > 0) offset = uint64_t(data);
    const ssize_t n = ::pread(fd, chunk, sizeof chunk, off_t(offset));
    if (n <= 0) return offset;
    for (ssize_t i = 0; i < n; ++i) {
      if (chunk[i] != '\0') return offset + uint64_t(i);
    }
    offset += uint64_t(n);
  }
}

uint64_t FingerprintAt(int fd, uint64_t offset, uint32_t& bytes) {
  char head[kFingerprintBytes];
  const ssize_t n = ::pread(fd, head, std::min<std::size_t>(bytes, sizeof head), off_t(offset));
  bytes = n > 0 ? uint32_t(n) : 0;
  uint64_t hash = 14695981039346656037ull;
  for (uint32_t i = 0; i < bytes; ++i) {
    hash ^= static_cast<unsigned char>(head[i]);
    hash *= 1099511628211ull;
  }
  return hash;
}

uint64_t FingerprintFile(int fd, uint32_t& bytes, uint64_t* data_start) {
  const uint64_t start = FirstNonNul(fd);
  if (data_start) *data_start = start;
  return FingerprintAt(fd, start, bytes);
}

// copytruncate copies the file, then truncates it: lines written between our last read and
// the copy are only in the copy.
int FindTruncatedCopy(const std::string& path, uint64_t fingerprint, uint32_t fingerprint_bytes,
                      uint64_t read_offset, uint64_t own_inode, FileIdentity& copy_identity) {
  if (fingerprint_bytes == 0) return -1;
  std::error_code ec;
  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  for (std::filesystem::directory_iterator it(folder, ec), end; !ec && it != end;
       it.increment(ec)) {
    struct stat st;
    if (::stat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
        uint64_t(st.st_ino) == own_inode || uint64_t(st.st_size) < read_offset) {
      continue;
    }
    const int fd = ::open(it->path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    uint32_t bytes = fingerprint_bytes;
    if (FingerprintFile(fd, bytes) == fingerprint && bytes == fingerprint_bytes) {
      copy_identity = IdentityOf(st);
      return fd;
    }
    ::close(fd);
  }
  return -1;
}

// Only asked when a rotated file is closed: a scan of /proc is too dear for more.
bool OpenForWriting(const FileIdentity& identity) {
  std::error_code ec;
  for (std::filesystem::directory_iterator proc("/proc", ec), end; !ec && proc != end;
       proc.increment(ec)) {
    const std::string pid = proc->path().filename().string();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code fd_ec;
    for (std::filesystem::directory_iterator fd(proc->path() / "fd", fd_ec); !fd_ec && fd != end;
         fd.increment(fd_ec)) {
      struct stat st;
      if (::stat(fd->path().c_str(), &st) != 0 || IdentityOf(st) != identity) continue;
      const std::string info = "/proc/" + pid + "/fdinfo/" + fd->path().filename().string();
      const int info_fd = ::open(info.c_str(), O_RDONLY | O_CLOEXEC);
      if (info_fd < 0) continue;
      char text[256];
      const ssize_t n = ::read(info_fd, text, sizeof text - 1);
      ::close(info_fd);
      if (n <= 0) continue;
      text[n] = '\0';
      const char* flags = std::strstr(text, "flags:");
      if (!flags) continue;
      if ((std::strtoul(flags + 6, nullptr, 8) & O_ACCMODE) != O_RDONLY) return true;
    }
  }
  return false;
}

FileFollower::FileFollower(std::string path, int fd, const struct stat& st,
                           const TailSource& source, std::size_t max_line_bytes)
    : path_(std::move(path)),
      fd_(fd),
      identity_(IdentityOf(st)),
      source_(source),
      sink_(source.make_sink()),
      framer_(max_line_bytes),
      rotated_from_(path_) {
  fingerprint_bytes_ = kFingerprintBytes;
  fingerprint_ = FingerprintFile(fd_, fingerprint_bytes_, &data_start_);
}

FileFollower::~FileFollower() {
  if (fd_ >= 0) ::close(fd_);
}

void FileFollower::StartAt(uint64_t offset, bool mid_line) {
  read_offset_ = offset;
  if (mid_line) {
    framer_.SkipToNextLine(offset);
  } else {
    framer_.Reset(offset);
  }
  has_last_byte_ = offset > 0 && ::pread(fd_, &last_byte_, 1, off_t(offset - 1)) == 1;
}

std::optional<FileIdentity> FileFollower::RecoverCopyAfter(const FilePosition& saved,
                                                           std::vector<char>& buffer,
                                                           uint64_t max_bytes, bool mid_line) {
  // copytruncate's copy (same first bytes, at least as long as what was read) holds what was
  // written between the saved position and the copy. Read that, and only that, as a running
  // tailer would have.
  FileIdentity copy_identity;
  int copy = FindTruncatedCopy(path_, saved.fingerprint, saved.fingerprint_bytes, saved.offset,
                               identity_.inode, copy_identity);
  if (copy < 0) return std::nullopt;
  spdlog::debug("{} was truncated while stopped; reading its copy (inode {}) from offset {}", path_,
                copy_identity.inode, saved.offset);
  const uint64_t fingerprint = fingerprint_;
  const uint32_t fingerprint_bytes = fingerprint_bytes_;
  const uint64_t data_start = data_start_;
  std::swap(fd_, copy);
  fingerprint_bytes_ = saved.fingerprint_bytes;
  fingerprint_ = FingerprintFile(fd_, fingerprint_bytes_, &data_start_);
  StartAt(saved.offset, mid_line);  // a line boundary (bytes fully handled), or a start mark
  // A read stops after max_bytes: go on to the copy's end.
  bool backlog = false;
  while (ReadAvailable(buffer, max_bytes, backlog) > 0) {
  }
  Finish();  // the copy's last line, if it has no newline, is complete
  std::swap(fd_, copy);
  ::close(copy);
  fingerprint_ = fingerprint;
  fingerprint_bytes_ = fingerprint_bytes;
  data_start_ = data_start;
  read_offset_ = 0;
  framer_.Reset(0);
  has_last_byte_ = false;
  sink_ = source_.make_sink();
  return copy_identity;
}

bool FileFollower::Truncated(const struct stat& st) const {
  if (uint64_t(st.st_size) < read_offset_) return true;
  if (fingerprint_bytes_ > 0) {
    // Truncated and written again up to (or past) where we were: the size alone cannot tell,
    // the first bytes can.
    uint32_t bytes = fingerprint_bytes_;
    if (FingerprintAt(fd_, data_start_, bytes) != fingerprint_) return true;
  }
  if (has_last_byte_ && read_offset_ > 0) {
    // A writer without O_APPEND writes on at its old offset after copytruncate: the file is
    // then NULs up to there, and past where we were before we look again. Bytes already read
    // never change in a log, so a different one (a NUL) at our position is a truncation.
    char now = 0;
    return ::pread(fd_, &now, 1, off_t(read_offset_ - 1)) == 1 && now != last_byte_;
  }
  return false;
}

void FileFollower::StartOver() {
  read_offset_ = 0;
  sink_ = source_.make_sink();
  fingerprint_bytes_ = 0;
  data_start_ = 0;
  has_last_byte_ = false;
  // The hole a writer without O_APPEND leaves can be gigabytes of NULs: step over it.
  const off_t data = ::lseek(fd_, 0, SEEK_DATA);
  if (data > 0) read_offset_ = uint64_t(data);
  framer_.Reset(read_offset_);
}

FileFollower::ReadResult FileFollower::Read(std::vector<char>& buffer, uint64_t max_bytes) {
  ReadResult result;
  struct stat st;
  if (::fstat(fd_, &st) != 0) return result;
  if (Truncated(st)) {
    // copytruncate, or any truncation: the file starts over. First read what the copy holds
    // beyond what was read, so no line is lost to the copy.
    result.truncated = true;
    if (source_.observer) source_.observer->OnTruncation(path_);
    FileIdentity copy_identity;
    int copy = FindTruncatedCopy(path_, fingerprint_, fingerprint_bytes_, read_offset_,
                                 identity_.inode, copy_identity);
    spdlog::debug("{} (inode {}) truncated at offset {}; copy found: {}", path_, identity_.inode,
                  read_offset_, copy >= 0 ? copy_identity.inode : 0);
    if (copy >= 0) {
      result.copy = copy_identity;
      std::swap(fd_, copy);
      ReadAvailable(buffer, max_bytes, result.backlog);
      std::swap(fd_, copy);
      ::close(copy);
    }
    StartOver();
  }
  result.bytes = ReadAvailable(buffer, max_bytes, result.backlog);
  return result;
}

uint64_t FileFollower::ReadAvailable(std::vector<char>& buffer, uint64_t max_bytes, bool& backlog) {
  uint64_t total = 0;
  for (;;) {
    if (total >= max_bytes) {
      // A writer faster than us must not keep us here: other files, stopping and saving
      // positions get their turn.
      backlog = true;
      break;
    }
    const ssize_t n = ::pread(fd_, buffer.data(), buffer.size(), off_t(read_offset_));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    const uint64_t start = read_offset_;
    read_offset_ += uint64_t(n);
    total += uint64_t(n);
    last_byte_ = buffer[std::size_t(n) - 1];
    has_last_byte_ = true;
    framer_.Feed(buffer.data(), std::size_t(n), start, *sink_);
    if (std::size_t(n) < buffer.size()) break;
  }
  if (total > 0) {
    if (fingerprint_bytes_ < kFingerprintBytes) {
      // Truncation recovery and saved positions rely on the first bytes' fingerprint.
      fingerprint_bytes_ = kFingerprintBytes;
      fingerprint_ = FingerprintFile(fd_, fingerprint_bytes_, &data_start_);
    }
    last_data_ = Clock::now();
    if (source_.observer) source_.observer->OnBytesRead(total);
  }
  return total;
}

void FileFollower::Finish() {
  framer_.Finish(read_offset_, *sink_);
}

bool FileFollower::Superseded() const {
  // An app that never reopens its log (stdout redirected to the file) goes on writing to the
  // renamed file, after any pause: it is followed until the writers have clearly moved on to
  // a new file at its path, or it was deleted.
  struct stat st;
  if (::fstat(fd_, &st) == 0 && st.st_nlink == 0) return true;
  if (::stat(rotated_from_.c_str(), &st) != 0) return false;
  return IdentityOf(st) != identity_ && st.st_size > 0;
}

FilePosition FileFollower::Position(const std::string& source_id) {
  // A file that was empty (or short) when opened gets its full fingerprint later.
  if (fingerprint_bytes_ < kFingerprintBytes && read_offset_ > data_start_ + fingerprint_bytes_) {
    fingerprint_bytes_ = kFingerprintBytes;
    fingerprint_ = FingerprintFile(fd_, fingerprint_bytes_, &data_start_);
  }
  return {source_id,   path_,        identity_.device,  identity_.inode,
          committed(), fingerprint_, fingerprint_bytes_};
}

uint64_t FileFollower::UnreadBytes() const {
  struct stat st;
  if (::fstat(fd_, &st) != 0 || uint64_t(st.st_size) <= read_offset_) return 0;
  return uint64_t(st.st_size) - read_offset_;
}

bool FileFollower::SameFirstBytes(int fd) const {
  if (fingerprint_bytes_ == 0) return false;
  uint32_t bytes = fingerprint_bytes_;
  return FingerprintFile(fd, bytes) == fingerprint_ && bytes == fingerprint_bytes_;
}

}  // namespace fastapi_exporter::access_log
