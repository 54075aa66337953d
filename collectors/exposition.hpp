// The one place /metrics is rendered from: every collector registers here, and a scrape
// collects them all and serialises them in the Prometheus text format, plain or gzip.
#pragma once

#include <prometheus/collectable.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace fastapi_exporter {

// A piece of the exposition: its text, or for gzip bodies the text as raw DEFLATE data
// (RFC 1951) in non-final blocks ending on a byte boundary, with the CRC-32 and length of the
// text. Deflated pieces compressed apart join into one deflate stream (each refers to no byte
// before it), so cached pieces of unchanged metrics and fresh ones make a single gzip member
// that every reader takes (curl rejects a body of several members).
struct ExpositionPiece {
  std::string bytes;
  uint32_t crc32 = 0;      // of the text (deflated pieces only)
  uint64_t text_size = 0;  // bytes of text (deflated pieces only)
};
using ExpositionPieces = std::vector<std::shared_ptr<const ExpositionPiece>>;

// `text` deflated as above, by ISA-L's igzip at level 1: on the 9.5 MB text of 5,600 request
// label sets, 4.3 ms and 696 kB, where zlib took 77 ms (level 6, the daemon's former
// choice) or 20 ms (level 1) and libdeflate 12.6 ms (level 1); see docs/BENCHMARKS.md.
// Thread-safe (calls run one at a time: they share one compressor's buffers).
ExpositionPiece DeflatePiece(std::string_view text);

// A gzip file (RFC 1952) of deflated pieces: a header, their bytes, the final block and the
// trailer, as strings to send one after another (the pieces' own bytes are not copied).
std::vector<std::shared_ptr<const std::string>> GzipBody(const ExpositionPieces& pieces);

// The gzip file of `text` in one string.
std::string GzipCompress(std::string_view text);

// Metrics that render themselves in the text format, for series too many to go through
// prometheus-cpp's Collect() on every scrape (see access_log/request_metrics.hpp).
class TextSource {
 public:
  virtual ~TextSource() = default;
  virtual void RenderText(std::string& out) const = 0;
  // Appends the text of RenderText as pieces, deflated (DeflatePiece) when `deflate`. The
  // default renders (and deflates) everything on every call; a source may give pieces it
  // kept while their text did not change, as long as every change made before the call
  // began shows.
  virtual void Serve(bool deflate, ExpositionPieces& out) const;
};

class Exposition {
 public:
  void Register(std::shared_ptr<prometheus::Collectable> collectable);
  void Register(std::shared_ptr<TextSource> source);

  // The whole text. Thread-safe; each collector serialises its own state.
  std::string Render() const;

  // A response body, as strings to send one after another: Render()'s text, or with `gzip`
  // a gzip file of it. The prometheus-cpp collectables are collected on every call (they are
  // few, and process metrics are read from /proc now); text sources serve what they kept of
  // unchanged metrics (TextSource::Serve). Thread-safe.
  std::vector<std::shared_ptr<const std::string>> Serve(bool gzip) const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  std::vector<std::shared_ptr<TextSource>> text_sources_;
};

}  // namespace fastapi_exporter
