#include "collectors/access_log/journal_source.hpp"

#include <simdjson.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace fastapi_exporter::access_log {
namespace {

constexpr std::string_view kMessageField = "MESSAGE=";

std::string ErrorText(int negative_errno) {
  return std::strerror(-negative_errno);
}

uint64_t MonotonicMicros() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return uint64_t(now.tv_sec) * 1000000 + uint64_t(now.tv_nsec) / 1000;
}

}  // namespace

JournalSource::JournalSource(std::string id, config::JournalSelector selector,
                             config::StartAt start_at, MessageSink& sink, JournalObserver* observer,
                             JournalSourceOptions options)
    : id_(std::move(id)),
      selector_(std::move(selector)),
      start_at_(start_at),
      sink_(sink),
      observer_(observer),
      options_(options) {}

JournalSource::~JournalSource() {
  if (journal_) sd_journal_close(journal_);
}

void JournalSource::Restore(const Positions& positions) {
  for (const auto& journal : positions.journals) {
    if (journal.source == id_) restored_cursor_ = journal.cursor;
  }
}

std::optional<JournalPosition> JournalSource::Position() {
  const std::string& cursor = cursor_.empty() ? restored_cursor_ : cursor_;
  if (cursor.empty()) return std::nullopt;
  return JournalPosition{id_, cursor};
}

void JournalSource::Report(const std::string& error) {
  if (error == last_error_) return;
  last_error_ = error;
  spdlog::warn("journal source {}: {}", id_, error);
  if (observer_) observer_->OnJournalError(error);
}

bool JournalSource::Open() {
  int r = 0;
  if (selector_.paths.empty()) {
    r = sd_journal_open(&journal_, SD_JOURNAL_LOCAL_ONLY);
  } else {
    // sd-journal follows one folder (and the files rotated into it), or a fixed set of files.
    struct stat st;
    if (::stat(selector_.paths[0].c_str(), &st) != 0) {
      Report(selector_.paths[0] + ": " + std::strerror(errno) + "; retrying");
      return false;
    }
    if (S_ISDIR(st.st_mode)) {
      if (selector_.paths.size() > 1) {
        Report("give one journal folder, or journal files, not both");
        return false;
      }
      r = sd_journal_open_directory(&journal_, selector_.paths[0].c_str(), 0);
    } else {
      std::vector<const char*> files;
      for (const auto& path : selector_.paths) files.push_back(path.c_str());
      files.push_back(nullptr);
      r = sd_journal_open_files(&journal_, files.data(), 0);
    }
  }
  if (r < 0) {
    journal_ = nullptr;
    Report("cannot open the journal: " + ErrorText(r) + "; retrying");
    return false;
  }
  for (const auto& match : selector_.matches) {
    r = sd_journal_add_match(journal_, match.data(), match.size());
    if (r < 0) {
      Report("cannot add match " + match + ": " + ErrorText(r));
      sd_journal_close(journal_);
      journal_ = nullptr;
      return false;
    }
  }
  // Longer data is returned cut at the threshold: one byte over max_line_bytes tells a line
  // that is too long from one that fits.
  sd_journal_set_data_threshold(journal_, kMessageField.size() + options_.max_line_bytes + 1);
  if (selector_.paths.empty() && sd_journal_has_persistent_files(journal_) <= 0 &&
      sd_journal_has_runtime_files(journal_) <= 0) {
    // Not an error to retry: the files may come (a journald that starts later).
    spdlog::warn(
        "journal source {}: no journal file is readable; the exporter must be in group "
        "systemd-journal (or adm) to read the system journal",
        id_);
  }
  // Creates the descriptor now, so that changes from here on wake the loop.
  sd_journal_get_fd(journal_);
  last_error_.clear();
  positioned_ = false;
  return true;
}

void JournalSource::Seek() {
  positioned_ = true;
  if (options_.from_beginning) {
    sd_journal_seek_head(journal_);
    return;
  }
  if (!restored_cursor_.empty()) {
    // seek_cursor lands on the nearest entry even when the cursor's own is gone: only
    // test_cursor tells that it is still there.
    if (sd_journal_seek_cursor(journal_, restored_cursor_.c_str()) >= 0 &&
        sd_journal_next(journal_) > 0 &&
        sd_journal_test_cursor(journal_, restored_cursor_.c_str()) > 0) {
      cursor_ = restored_cursor_;
      return;
    }
    spdlog::warn(
        "journal source {}: the saved cursor's entry is no longer in the journal (vacuumed?); "
        "reading from the {} as start_at says",
        id_, start_at_ == config::StartAt::kBeginning ? "oldest entry" : "next new entry");
    if (observer_) observer_->OnCursorLost();
  }
  if (start_at_ == config::StartAt::kBeginning) {
    sd_journal_seek_head(journal_);
    return;
  }
  // On the last matching entry, which counts as handled. With none, every matching entry is
  // new: from the head. (Left at the tail, sd-journal's next() would step onto whatever entry
  // is last when it is called, skipping those written before it.)
  sd_journal_seek_tail(journal_);
  if (sd_journal_previous(journal_) > 0) {
    char* cursor = nullptr;
    if (sd_journal_get_cursor(journal_, &cursor) >= 0) {
      cursor_ = cursor;
      free(cursor);
    }
  } else {
    sd_journal_seek_head(journal_);
  }
}

int JournalSource::WaitFd() {
  if (!journal_) return -1;
  const int fd = sd_journal_get_fd(journal_);
  return fd >= 0 ? fd : -1;
}

int JournalSource::WaitTimeoutMs() {
  if (!journal_) return options_.retry_interval_ms;
  uint64_t until = 0;
  if (sd_journal_get_timeout(journal_, &until) < 0 || until == UINT64_MAX) return -1;
  const uint64_t now = MonotonicMicros();
  return until <= now ? 0 : int(std::min<uint64_t>((until - now + 999) / 1000, 60000));
}

void JournalSource::MarkStart() {
  if (!journal_ && !Open()) return;  // not there yet: Read opens it and starts as start_at says
  sd_journal_process(journal_);
  if (!positioned_) Seek();
}

bool JournalSource::Read() {
  if (!journal_ && !Open()) return false;
  // Consumes the descriptor's events and picks up files added to or removed from the folder.
  sd_journal_process(journal_);
  if (!positioned_) Seek();
  std::size_t handled = 0;
  bool at_end = false;
  while (handled < options_.max_entries_per_read) {
    const int r = sd_journal_next(journal_);
    if (r < 0) {
      Report("cannot read the journal: " + ErrorText(r));
      at_end = true;  // nothing more to read now; the next pass tries again
      break;
    }
    if (r == 0) {
      at_end = true;
      break;
    }
    ++handled;
    const void* data = nullptr;
    std::size_t size = 0;
    const int got = sd_journal_get_data(journal_, "MESSAGE", &data, &size);
    if (got < 0) {
      sink_.OnSkipped(ParseError::kMissingField,
                      got == -ENOENT ? "(an entry without MESSAGE)" : "(an unreadable MESSAGE)");
      continue;
    }
    const std::string_view message(static_cast<const char*>(data) + kMessageField.size(),
                                   size - kMessageField.size());
    if (message.size() > options_.max_line_bytes) {
      sink_.OnSkipped(ParseError::kLineTooLong, "(MESSAGE over max_line_bytes)");
    } else if (message.find('\0') != std::string_view::npos ||
               !simdjson::validate_utf8(message.data(), message.size())) {
      sink_.OnSkipped(ParseError::kBinaryMessage, message);
    } else {
      sink_.OnMessage(message);
    }
  }
  // After a next() that found nothing the read pointer stays on the last entry handled.
  if (handled > 0) {
    char* cursor = nullptr;
    if (sd_journal_get_cursor(journal_, &cursor) >= 0) {
      cursor_ = cursor;
      free(cursor);
    }
  }
  if (observer_) {
    double lag = 0;
    uint64_t newest = 0, last = 0;
    if (!at_end && sd_journal_get_cutoff_realtime_usec(journal_, nullptr, &newest) > 0 &&
        sd_journal_get_realtime_usec(journal_, &last) >= 0 && newest > last) {
      lag = double(newest - last) / 1e6;
    }
    observer_->OnLag(lag);
  }
  return !at_end;
}

}  // namespace fastapi_exporter::access_log
