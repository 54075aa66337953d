// The positions file: whatever is on disk, loading returns (a corrupt file is a warning, not
// a crash), and what was loaded saves and loads back to the same positions.
#include <unistd.h>

#include <fstream>

#include "collectors/access_log/positions.hpp"
#include "tests/fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace fastapi_exporter;
  // Saving fsyncs the file and its folder: on tmpfs that costs nothing, on a disk it would
  // be nearly all of each execution.
  static const std::string folder = [] {
    char shm[] = "/dev/shm/fuzz_positions.XXXXXX";
    char tmp[] = "/tmp/fuzz_positions.XXXXXX";
    const char* made = ::mkdtemp(shm);
    if (!made) made = ::mkdtemp(tmp);
    if (!made) fuzz::Fail("mkdtemp");
    return std::string(made);
  }();
  const std::string path = folder + "/positions.yaml";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  }
  std::string warning;
  const access_log::Positions loaded = access_log::LoadPositions(path, warning);
  std::string error;
  if (!access_log::SavePositions(path, loaded, error)) fuzz::Fail("save: " + error);
  std::string second_warning;
  const access_log::Positions reloaded = access_log::LoadPositions(path, second_warning);
  if (!second_warning.empty()) fuzz::Fail("its own file did not load: " + second_warning);
  if (reloaded.files != loaded.files) fuzz::Fail("positions changed through save and load");
  return 0;
}
