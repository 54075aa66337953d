#include "collectors/exposition.hpp"

#include <prometheus/text_serializer.h>

#include <sstream>

namespace fastapi_exporter {

void Exposition::Register(std::shared_ptr<prometheus::Collectable> collectable) {
  std::lock_guard lock(mutex_);
  collectables_.push_back(std::move(collectable));
}

void Exposition::Register(std::shared_ptr<TextSource> source) {
  std::lock_guard lock(mutex_);
  text_sources_.push_back(std::move(source));
}

std::string Exposition::Render() const {
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
  std::string text = out.str();
  for (const auto& source : text_sources) source->RenderText(text);
  return text;
}

}  // namespace fastapi_exporter
