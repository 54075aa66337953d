#!/usr/bin/env bash
# Installs the Debian 12 packages needed to build, run and test fastapi-exporter.
# Idempotent: packages already present are not touched, and apt is not called at all
# when nothing is missing, so a second run costs a few milliseconds.
set -euo pipefail

build_deps=(
  cmake ninja-build g++ make pkg-config git
  prometheus-cpp-dev libcivetweb-dev zlib1g-dev libisal-dev
  libspdlog-dev libfmt-dev libyaml-cpp-dev libre2-dev libcli11-dev
  libsimdjson-dev libsystemd-dev libssl-dev libcrypt-dev
  libcurl4-openssl-dev            # fetching the services' OpenAPI documents (routes_from)
  libpcap-dev libhttp-parser-dev  # the wire source: capture, HTTP/1.x parsing
  dpkg-dev file                   # cpack -G DEB: dpkg-shlibdeps and its helpers
  libjs-dygraphs                  # the live view's charts, embedded in the binary
)
run_deps=(python3-fastapi python3-uvicorn)  # make run: the example FastAPI app
test_deps=(
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  prometheus                      # promtool, and a real Prometheus for end-to-end tests
  python3-fastapi python3-uvicorn # the example FastAPI app, run with /usr/bin/python3
  python3-gunicorn                # gunicorn with uvicorn workers (test_real_world_lines.py)
  python3-pytest python3-prometheus-client
  python3-yaml                    # the Kubernetes manifests (tests/integration/test_dashboard.py)
  curl procps openssl             # test certificates
  lintian systemd strace          # package checks: lintian, systemd-analyze; the unit's syscall filter
  clang-14 libclang-rt-14-dev     # libFuzzer targets (tests/fuzz)
  logrotate                       # real copytruncate rotations (tests/integration/test_rotation.py)
  systemd-journal-remote          # real journal files for the journal source's tests
  chromium                        # the live view's browser test (headless)
)

bench_deps=(mtail prometheus-process-exporter wrk tcpdump nginx)  # the peers measured beside the exporter; nginx: the wire capture's ceiling

wanted=("${build_deps[@]}")
[[ "${1:-}" == "--with-run" ]] && wanted+=("${run_deps[@]}")
[[ "${1:-}" == "--with-tests" ]] && wanted+=("${test_deps[@]}")
[[ "${1:-}" == "--with-bench" ]] && wanted+=("${test_deps[@]}" "${bench_deps[@]}")

missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]}; run as root or install them" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q -o DPkg::Lock::Timeout=300
apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}"
