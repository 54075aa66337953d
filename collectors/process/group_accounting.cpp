#include "collectors/process/group_accounting.hpp"

#include <algorithm>
#include <unordered_map>

namespace fastapi_exporter::process {
namespace {

constexpr bool HasReapedChildrenField(std::size_t counter) {
  return counter == kCpuTicks || counter == kMajorFaults;
}

}  // namespace

CounterValues GroupAccounting::Update(const std::vector<ProcessSample>& samples) {
  std::map<Key, Known> current;
  std::unordered_map<pid_t, Key> current_key_by_pid;
  for (const ProcessSample& sample : samples) {
    const Key key{sample.pid, sample.start_ticks};
    Known entry;
    entry.last = sample;
    const auto previous = known_.find(key);
    if (previous != known_.end()) entry.pending = previous->second.pending;
    if (!sample.io_valid) {
      // Keep the last readable values (or zero) so an unreadable io file neither drops nor
      // double-counts; the collector leaves the io series out while any is unreadable.
      for (std::size_t c : {kReadBytes, kWriteBytes}) {
        entry.last.own[c] = previous != known_.end() ? previous->second.last.own[c] : 0;
      }
    }
    current.emplace(key, entry);
    current_key_by_pid[sample.pid] = key;
  }

  // Processes that disappeared since the last scrape.
  for (const auto& [key, gone] : known_) {
    if (current.contains(key)) continue;
    const auto parent_key = current_key_by_pid.find(gone.last.ppid);
    Known* parent =
        parent_key != current_key_by_pid.end() ? &current.at(parent_key->second) : nullptr;
    for (std::size_t c = 0; c < kCounterCount; ++c) {
      const uint64_t last_total = gone.last.own[c] + gone.last.reaped_children[c] + gone.pending[c];
      if (parent && HasReapedChildrenField(c)) {
        parent->pending[c] += last_total;
      } else {
        exited_[c] += last_total;
      }
    }
  }

  // A parent's reaped-children growth absorbs what it holds as pending.
  for (auto& [key, entry] : current) {
    const auto previous = known_.find(key);
    if (previous == known_.end()) continue;
    for (std::size_t c = 0; c < kCounterCount; ++c) {
      if (!HasReapedChildrenField(c)) continue;
      const uint64_t before = previous->second.last.reaped_children[c];
      const uint64_t now = entry.last.reaped_children[c];
      const uint64_t growth = now > before ? now - before : 0;
      entry.pending[c] -= std::min(entry.pending[c], growth);
    }
  }

  CounterValues total = exited_;
  for (const auto& [key, entry] : current) {
    for (std::size_t c = 0; c < kCounterCount; ++c) {
      total[c] += entry.last.own[c] + entry.last.reaped_children[c] + entry.pending[c];
    }
  }
  for (std::size_t c = 0; c < kCounterCount; ++c) {
    reported_[c] = std::max(reported_[c], total[c]);
  }
  known_ = std::move(current);
  return reported_;
}

}  // namespace fastapi_exporter::process
