#include "collectors/exposition.hpp"

#include <prometheus/text_serializer.h>

#include <sstream>

namespace fastapi_exporter {

void TextSource::Serve(bool gzip, const GzipMember& gzip_member, ExpositionPieces& out) const {
  std::string text;
  RenderText(text);
  out.push_back(std::make_shared<const std::string>(gzip ? gzip_member(text) : std::move(text)));
}

Exposition::Exposition(GzipMember gzip_member) : gzip_member_(std::move(gzip_member)) {}

void Exposition::Register(std::shared_ptr<prometheus::Collectable> collectable) {
  std::lock_guard lock(mutex_);
  collectables_.push_back(std::move(collectable));
}

void Exposition::Register(std::shared_ptr<TextSource> source) {
  std::lock_guard lock(mutex_);
  text_sources_.push_back(std::move(source));
}

std::string Exposition::Render() const {
  std::string text;
  for (const auto& piece : Serve(false)) text += *piece;
  return text;
}

ExpositionPieces Exposition::Serve(bool gzip) const {
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables;
  std::vector<std::shared_ptr<TextSource>> text_sources;
  {
    std::lock_guard lock(mutex_);
    collectables = collectables_;
    text_sources = text_sources_;
  }
  std::vector<prometheus::MetricFamily> families;
  for (const auto& collectable : collectables) {
    auto collected = collectable->Collect();
    std::move(collected.begin(), collected.end(), std::back_inserter(families));
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  ExpositionPieces pieces;
  // Always there, even empty: a gzip body of no member at all is not a valid gzip file.
  pieces.push_back(
      std::make_shared<const std::string>(gzip ? gzip_member_(out.view()) : out.str()));
  for (const auto& source : text_sources) source->Serve(gzip, gzip_member_, pieces);
  return pieces;
}

}  // namespace fastapi_exporter
