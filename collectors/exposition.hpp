// The one place /metrics is rendered from: every collector registers here, and a scrape
// collects them all and serialises them in the Prometheus text format.
#pragma once

#include <prometheus/collectable.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace fastapi_exporter {

// One response body: the concatenation of its pieces, in order. Pieces are immutable and may
// be shared with a collector's cache, so serving unchanged metrics copies no bytes.
using ExpositionPieces = std::vector<std::shared_ptr<const std::string>>;

// Turns text into one complete gzip member (RFC 1952). A gzip file may hold several members
// one after another, which readers (Go's compress/gzip of Prometheus included) decompress
// into the concatenation of their texts.
using GzipMember = std::function<std::string(std::string_view text)>;

// Metrics that render themselves in the text format, for series too many to go through
// prometheus-cpp's Collect() on every scrape (see access_log/request_metrics.hpp).
class TextSource {
 public:
  virtual ~TextSource() = default;
  virtual void RenderText(std::string& out) const = 0;
  // Appends the text of RenderText as pieces, each a gzip member made by `gzip_member` when
  // `gzip`. The default renders (and compresses) everything on every call; a source may keep
  // pieces of what did not change, as long as every change made before the call began shows.
  virtual void Serve(bool gzip, const GzipMember& gzip_member, ExpositionPieces& out) const;
};

class Exposition {
 public:
  // `gzip_member` is needed only by Serve(true).
  explicit Exposition(GzipMember gzip_member = nullptr);

  void Register(std::shared_ptr<prometheus::Collectable> collectable);
  void Register(std::shared_ptr<TextSource> source);

  // The whole text. Thread-safe; each collector serialises its own state.
  std::string Render() const;

  // Render()'s text as pieces: the prometheus-cpp collectables first (collected on every
  // call: they are few, and process metrics are read from /proc now), then each text source's
  // (TextSource::Serve). With `gzip`, the pieces together are one gzip file of that text.
  // Thread-safe.
  ExpositionPieces Serve(bool gzip) const;

 private:
  GzipMember gzip_member_;
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  std::vector<std::shared_ptr<TextSource>> text_sources_;
};

}  // namespace fastapi_exporter
