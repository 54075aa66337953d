#include "collectors/history/recent_lines.hpp"

#include <algorithm>
#include <cstring>

namespace fastapi_exporter::history {

std::string_view RecentLine::Method() const {
  return {method, strnlen(method, sizeof method)};
}

RecentLines::RecentLines(std::size_t capacity, bool keep_query)
    : keep_query_(keep_query), slots_(std::max<std::size_t>(capacity, 1)) {}

void RecentLines::Add(double time, std::string_view method, std::string_view target, int status,
                      bool has_duration, double duration_seconds) noexcept {
  if (!keep_query_) target = target.substr(0, target.find_first_of("?#"));
  std::lock_guard lock(mutex_);
  RecentLine& slot = slots_[next_];
  slot.time = time;
  slot.duration_seconds = has_duration ? float(duration_seconds) : -1.0f;
  slot.status = uint16_t(status);
  std::memset(slot.method, 0, sizeof slot.method);
  if (method.size() < sizeof slot.method) {
    std::memcpy(slot.method, method.data(), method.size());
  } else {
    std::memcpy(slot.method, "OTHER", 5);
  }
  const std::size_t length = std::min(target.size(), RecentLine::kPathBytes);
  std::memcpy(slot.path, target.data(), length);
  slot.path_length = uint8_t(length);
  slot.path_cut = target.size() > length;
  next_ = (next_ + 1) % slots_.size();
  ++added_;
}

std::vector<RecentLine> RecentLines::Newest(std::size_t max) const {
  std::lock_guard lock(mutex_);
  const std::size_t held = std::size_t(std::min<uint64_t>(added_, slots_.size()));
  const std::size_t n = std::min(max, held);
  std::vector<RecentLine> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(slots_[(next_ + slots_.size() - 1 - i) % slots_.size()]);
  }
  return out;
}

uint64_t RecentLines::added() const {
  std::lock_guard lock(mutex_);
  return added_;
}

std::shared_ptr<RecentLines> RecentLinesRegistry::Get(const std::string& service,
                                                      std::size_t capacity, bool keep_query) {
  std::lock_guard lock(mutex_);
  auto& ring = rings_[service];
  if (!ring || ring->capacity() != std::max<std::size_t>(capacity, 1) ||
      ring->keep_query() != keep_query) {
    ring = std::make_shared<RecentLines>(capacity, keep_query);
  }
  return ring;
}

void RecentLinesRegistry::Keep(const std::vector<std::string>& services) {
  std::lock_guard lock(mutex_);
  std::erase_if(rings_, [&](const auto& entry) {
    return std::find(services.begin(), services.end(), entry.first) == services.end();
  });
}

void RecentLinesRegistry::Drop(const std::string& service) {
  std::lock_guard lock(mutex_);
  rings_.erase(service);
}

std::shared_ptr<const RecentLines> RecentLinesRegistry::Find(const std::string& service) const {
  std::lock_guard lock(mutex_);
  const auto found = rings_.find(service);
  return found == rings_.end() ? nullptr : found->second;
}

std::vector<std::string> RecentLinesRegistry::Names() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> names;
  for (const auto& entry : rings_) names.push_back(entry.first);
  return names;
}

}  // namespace fastapi_exporter::history
