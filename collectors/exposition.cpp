#include "collectors/exposition.hpp"

#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <prometheus/text_serializer.h>
#include <zlib.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <sstream>
#include <stdexcept>

namespace fastapi_exporter {
namespace {

constexpr std::string_view kCollectorDuration = "fastapi_exporter_collector_duration_seconds";
constexpr std::string_view kCollectorSuccess = "fastapi_exporter_collector_success";

std::string FamilyHeader(std::string_view name, std::string_view help) {
  std::string out = "# HELP ";
  out.append(name).append(" ").append(help).append("\n# TYPE ").append(name).append(" gauge\n");
  return out;
}

// `name{collector="NAME"} `. Collector names are the exporter's own: nothing to escape.
void AppendSampleStart(std::string& out, std::string_view name, const std::string& collector) {
  out.append(name).append("{collector=\"").append(collector).append("\"} ");
}

}  // namespace

ExpositionPiece DeflatePiece(std::string_view text) {
  // One stream, its level buffer and an output buffer (~230 kB) for the process, reused:
  // allocating and touching them on each call costs more than deflating a small piece.
  static std::mutex mutex;
  static isal_zstream stream;
  static std::vector<uint8_t> level_buffer(ISAL_DEF_LVL1_SMALL);
  ExpositionPiece piece;
  piece.crc32 =
      crc32_gzip_refl(0, reinterpret_cast<const unsigned char*>(text.data()), text.size());
  piece.text_size = text.size();
  std::lock_guard lock(mutex);
  isal_deflate_init(&stream);
  stream.level = 1;
  stream.level_buf = level_buffer.data();
  stream.level_buf_size = uint32_t(level_buffer.size());
  // Byte-aligned, not final: pieces join (see ExpositionPiece).
  stream.flush = SYNC_FLUSH;
  stream.end_of_stream = 0;
  stream.next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(text.data()));
  stream.avail_in = uint32_t(text.size());
  // Into a buffer kept for the process, then copied at its size: a fresh buffer of the
  // worst-case size on each call would cost page faults.
  static std::string out(1 << 16, '\0');
  std::size_t done = 0;
  while (true) {
    stream.next_out = reinterpret_cast<uint8_t*>(out.data() + done);
    stream.avail_out = uint32_t(out.size() - done);
    if (isal_deflate(&stream) != COMP_OK) return {};
    done = out.size() - stream.avail_out;
    // Done once every byte is in and the flush fitted with room to spare.
    if (stream.avail_in == 0 && stream.avail_out > 0) break;
    out.resize(out.size() * 2);
  }
  piece.bytes.assign(out.data(), done);
  return piece;
}

std::vector<std::shared_ptr<const std::string>> GzipBody(const ExpositionPieces& pieces) {
  // ID1 ID2, CM=deflate, no flags, no mtime, XFL=0, OS=Unix.
  static const auto header =
      std::make_shared<const std::string>("\x1f\x8b\x08\0\0\0\0\0\0\x03", 10);
  std::vector<std::shared_ptr<const std::string>> body;
  body.reserve(pieces.size() + 2);
  body.push_back(header);
  uLong crc = crc32(0, nullptr, 0);
  uint64_t size = 0;
  for (const auto& piece : pieces) {
    crc = crc32_combine(crc, piece->crc32, z_off_t(piece->text_size));
    size += piece->text_size;
    // Shares ownership of the piece, points at its bytes.
    body.push_back(std::shared_ptr<const std::string>(piece, &piece->bytes));
  }
  // A final, empty block of fixed Huffman codes (BFINAL=1, BTYPE=01, end-of-block), then
  // CRC-32 and ISIZE, little-endian.
  std::string trailer = {'\x03', '\0'};
  for (int i = 0; i < 4; ++i) trailer += char((crc >> (8 * i)) & 0xff);
  for (int i = 0; i < 4; ++i) trailer += char((size >> (8 * i)) & 0xff);
  body.push_back(std::make_shared<const std::string>(std::move(trailer)));
  return body;
}

std::string GzipCompress(std::string_view text) {
  std::string out;
  for (const auto& part : GzipBody({std::make_shared<const ExpositionPiece>(DeflatePiece(text))})) {
    out += *part;
  }
  return out;
}

void Collector::Serve(bool deflate, ExpositionPieces& out) const {
  std::string text;
  RenderText(text);
  out.push_back(std::make_shared<const ExpositionPiece>(
      deflate ? DeflatePiece(text) : ExpositionPiece{std::move(text)}));
}

CollectableCollector::CollectableCollector(std::shared_ptr<prometheus::Collectable> collectable)
    : collectable_(std::move(collectable)) {}

void CollectableCollector::RenderText(std::string& out) const {
  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, collectable_->Collect());
  out += text.view();
}

void Exposition::Register(std::string name, std::shared_ptr<Collector> collector) {
  std::lock_guard lock(mutex_);
  for (const Entry& entry : entries_) {
    if (entry.name == name) throw std::invalid_argument("collector registered twice: " + name);
  }
  entries_.push_back({std::move(name), std::move(collector)});
}

void Exposition::Register(std::string name, std::shared_ptr<prometheus::Collectable> collectable) {
  Register(std::move(name), std::make_shared<CollectableCollector>(std::move(collectable)));
}

std::vector<std::string> Exposition::Names() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> names;
  for (const Entry& entry : entries_) names.push_back(entry.name);
  return names;
}

std::string Exposition::Render() const {
  std::string text;
  for (const auto& part : Serve(false)) text += *part;
  return text;
}

std::vector<std::shared_ptr<const std::string>> Exposition::Serve(bool gzip) const {
  std::vector<Entry> entries;
  {
    std::lock_guard lock(mutex_);
    entries = entries_;
  }
  ExpositionPieces pieces;
  std::string durations =
      FamilyHeader(kCollectorDuration, "How long the collector's part of the last scrape took.");
  std::string successes = FamilyHeader(
      kCollectorSuccess,
      "Whether the collector's part of the last scrape succeeded (1) or failed and was left "
      "out (0).");
  for (const Entry& entry : entries) {
    const auto started = std::chrono::steady_clock::now();
    const std::size_t before = pieces.size();
    bool failed = false;
    std::string failure;
    try {
      entry.collector->Serve(gzip, pieces);
    } catch (const std::exception& error) {
      failed = true;
      failure = error.what();
    } catch (...) {
      failed = true;
      failure = "an exception of an unknown type";
    }
    if (failed) pieces.resize(before);  // none of its text: it may end in half a family
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
    AppendSampleStart(durations, kCollectorDuration, entry.name);
    char value[32];
    durations.append(value, std::to_chars(value, value + sizeof value, took.count()).ptr);
    durations += '\n';
    AppendSampleStart(successes, kCollectorSuccess, entry.name);
    successes += failed ? "0\n" : "1\n";
    std::lock_guard lock(mutex_);
    const auto failing = failing_.find(entry.name);
    if (failed && failing == failing_.end()) {
      spdlog::warn("collector {} failed, left out of the scrape: {}", entry.name, failure);
      failing_[entry.name] = {1, std::move(failure)};
    } else if (failed) {
      ++failing->second.renders;
      failing->second.message = std::move(failure);
    } else if (failing != failing_.end()) {
      spdlog::info("collector {} works again", entry.name);
      failing_.erase(failing);
    }
  }
  durations += successes;
  pieces.push_back(std::make_shared<const ExpositionPiece>(
      gzip ? DeflatePiece(durations) : ExpositionPiece{std::move(durations)}));
  if (gzip) return GzipBody(pieces);
  std::vector<std::shared_ptr<const std::string>> body;
  body.reserve(pieces.size());
  for (const auto& piece : pieces) {
    body.push_back(std::shared_ptr<const std::string>(piece, &piece->bytes));
  }
  return body;
}

std::string Exposition::Unhealthy(int renders) const {
  std::lock_guard lock(mutex_);
  for (const auto& [name, failure] : failing_) {
    if (failure.renders >= renders) {
      return "collector " + name + " failed its last " + std::to_string(failure.renders) +
             " renders: " + failure.message;
    }
  }
  return {};
}

}  // namespace fastapi_exporter
