// The route normalizer with a small max_paths, on request targets in sequence. Checks:
// - the number of distinct labels stays within routes + max_paths + the overflow label;
// - a label is valid UTF-8 and starts with '/' (or is the overflow label);
// - normalizing the same target again gives the same answer;
// - differential: a fresh normalizer gives the same label, unless the warm one's cap made it
//   the overflow label.
#include <simdjson.h>

#include "collectors/access_log/route_normalizer.hpp"
#include "tests/fuzz/fuzz_common.hpp"

namespace {
constexpr int kMaxPaths = 4;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace fastapi_exporter;
  using access_log::RouteNormalizer;
  static const config::ServiceConfig service = fuzz::ServiceOf(
      "{path: /l, format: json}",
      "    routes: ['/api/users/{user_id:int}', '/items/{item_id}', '/files/{p:path}', "
      "'/u/{id:uuid}', '/f/{x:float}', '/a%2Fb']\n"
      "    exclude_paths: [/health, /metrics]\n");
  // A copy of a normalizer that has normalized nothing is a fresh one: copying it for each
  // line costs a fraction of building the route tables again (which was most of a run).
  static const RouteNormalizer pristine(service.routes, service.exclude_paths, kMaxPaths);
  RouteNormalizer warm = pristine;
  const std::size_t max_labels = service.routes.size() + 1 + kMaxPaths;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  for (std::string_view target : fuzz::SplitLines(input)) {
    const RouteNormalizer::Result result = warm.Normalize(target);
    if (warm.distinct_paths() > max_labels) fuzz::Fail("more labels than the cap allows");
    const RouteNormalizer::Result again = warm.Normalize(target);
    if (again.outcome != result.outcome ||
        (result.outcome == RouteNormalizer::Outcome::kPath && again.path_id != result.path_id)) {
      fuzz::Fail("the same target normalized twice differs");
    }
    if (result.outcome != RouteNormalizer::Outcome::kPath) continue;
    const std::string& label = warm.PathLabel(result.path_id);
    if (!simdjson::validate_utf8(label.data(), label.size())) fuzz::Fail("label not UTF-8");
    if (label != RouteNormalizer::kOverflowLabel && (label.empty() || label[0] != '/')) {
      fuzz::Fail("label does not start with '/': " + label);
    }
    RouteNormalizer fresh = pristine;
    const RouteNormalizer::Result fresh_result = fresh.Normalize(target);
    if (fresh_result.outcome != result.outcome) fuzz::Fail("fresh normalizer: other outcome");
    if (label != RouteNormalizer::kOverflowLabel &&
        fresh.PathLabel(fresh_result.path_id) != label) {
      fuzz::Fail("fresh normalizer: label " + fresh.PathLabel(fresh_result.path_id) + " vs " +
                 label);
    }
  }
  return 0;
}
