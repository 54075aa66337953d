// The live view's page and its chart library, embedded at build time (web/embed.cmake):
// index.html, app.js, app.css from web/, and dygraph.min.js and dygraph.min.css from
// Debian's libjs-dygraphs.
#pragma once

#include <string_view>
#include <vector>

namespace fastapi_exporter::web {

struct Asset {
  std::string_view name;  // the file name, e.g. "app.js"
  std::string_view bytes;
};

const std::vector<Asset>& Assets();

}  // namespace fastapi_exporter::web
