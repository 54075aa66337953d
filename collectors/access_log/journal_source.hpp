// Access lines from the systemd journal: the MESSAGE of each entry that matches a source's
// selector (config::JournalSelector), read with libsystemd's sd-journal(3) API from the local
// system journal or from given journal files and folders.
//
// - Position: the cursor of the last entry handed over (sd_journal_get_cursor(3)); a restored
//   cursor is resumed after. A cursor whose entry is no longer in the journal (vacuumed, or
//   another journal) is reported and reading starts as `start_at` says.
// - Rotation: journald's rotated files stay in the folder and sd-journal reads across them;
//   files that appear in a followed folder are picked up (through the descriptor of
//   sd_journal_get_fd(3), which also wakes the tailer's loop).
// - A MESSAGE that holds a NUL or is not UTF-8 is binary (journald stores such lines as
//   blobs): it is skipped under reason binary_message. Control characters such as terminal
//   escapes are text: the line chain strips them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "collectors/access_log/message_sink.hpp"
#include "collectors/access_log/positions.hpp"
#include "collectors/access_log/request.hpp"
#include "collectors/access_log/tailer.hpp"
#include "config/config.hpp"

typedef struct sd_journal sd_journal;

namespace fastapi_exporter::access_log {

// What happened to a journal source, for self-metrics and the log.
class JournalObserver {
 public:
  virtual ~JournalObserver() = default;
  // Seconds between the newest entry in the journal and the last one read while entries
  // are left to read; 0 once every matching entry is read.
  virtual void OnLag(double seconds) = 0;
  // The saved cursor's entry is no longer in the journal.
  virtual void OnCursorLost() = 0;
  // The journal could not be opened or read; retried on later passes. Called once per
  // problem, not on every retry.
  virtual void OnJournalError(const std::string& error) = 0;
};

struct JournalSourceOptions {
  std::size_t max_line_bytes = 64 * 1024;
  // Entries handed over per Read, so that files and a stop request have a turn.
  std::size_t max_entries_per_read = 20000;
  bool from_beginning = false;   // one-shot mode: every matching entry, start_at ignored
  int retry_interval_ms = 1000;  // while the journal cannot be opened
};

class JournalSource final : public PolledInput {
 public:
  // `id` keys the saved cursor. `sink` and `observer` must outlive the source (the observer
  // may be null).
  JournalSource(std::string id, config::JournalSelector selector, config::StartAt start_at,
                MessageSink& sink, JournalObserver* observer, JournalSourceOptions options);
  ~JournalSource() override;
  JournalSource(const JournalSource&) = delete;
  JournalSource& operator=(const JournalSource&) = delete;

  // The cursor saved by an earlier run, if `positions` has one for this source; call before
  // the first Read.
  void Restore(const Positions& positions);
  // The cursor of the last entry handled (or the restored one while none is), for saving.
  std::optional<JournalPosition> Position();

  int WaitFd() override;
  int WaitTimeoutMs() override;
  bool Read() override;
  // Opens the journal and takes the starting position (saved cursor or start_at) now.
  void MarkStart() override;

  const std::string& id() const { return id_; }

 private:
  bool Open();
  void Seek();
  void Report(const std::string& error);

  std::string id_;
  config::JournalSelector selector_;
  config::StartAt start_at_;
  MessageSink& sink_;
  JournalObserver* observer_;
  JournalSourceOptions options_;
  sd_journal* journal_ = nullptr;
  std::string restored_cursor_;
  std::string cursor_;       // of the last entry handled; empty while none is
  bool positioned_ = false;  // the read pointer is on the last entry handled (or before all)
  std::string last_error_;
};

}  // namespace fastapi_exporter::access_log
