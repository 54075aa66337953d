# The two entry points of the README. Both install missing Debian packages first
# (packaging/install-deps.sh is idempotent and does nothing when all are present).
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
BUILD_FUZZ ?= build-fuzz
BUILD_RELEASE ?= build-release
BUILD_CLANG ?= build-clang
CONFIG     ?=
CMAKE_ARGS ?=
# The project's own builds (tests, CI) treat warnings as errors; `make build`/`make run` and
# packagers' builds do not, so that a newer compiler's new warning breaks nobody's install.
WERROR := -DFASTAPI_EXPORTER_WERROR=ON

.PHONY: run test build build-asan build-tsan build-fuzz build-matrix fuzz bench package deps deps-run deps-test clean

deps:
	@packaging/install-deps.sh

deps-run:
	@packaging/install-deps.sh --with-run

deps-test:
	@packaging/install-deps.sh --with-tests

# The daemon alone: the tests need packages (googletest, benchmark) that only
# `install-deps.sh --with-tests` installs, and `make run` on a fresh machine must not need them.
build: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DFASTAPI_EXPORTER_BUILD_TESTS=OFF $(CMAKE_ARGS)
	cmake --build $(BUILD)

# Builds and starts the example FastAPI app (uvicorn, 2 workers), a steady traffic mix and
# the exporter watching it; the live view is on http://127.0.0.1:9869/. With CONFIG=file:
# the exporter alone on that configuration. Ctrl-C stops all of it.
run: build deps-run
	@if [ -n "$(CONFIG)" ]; then \
	  exec $(BUILD)/daemon/fastapi-exporter --config.file=$(CONFIG); \
	else \
	  exec examples/fastapi-app/run.sh $(BUILD)/daemon/fastapi-exporter; \
	fi

build-asan: deps-test
	cmake -S . -B $(BUILD_ASAN) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFASTAPI_EXPORTER_SANITIZE=ON $(WERROR)
	cmake --build $(BUILD_ASAN)

build-tsan: deps-test
	cmake -S . -B $(BUILD_TSAN) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFASTAPI_EXPORTER_TSAN=ON $(WERROR)
	cmake --build $(BUILD_TSAN)

# The libFuzzer targets (clang 14, ASan + UBSan); see docs/fuzzing.md. FUZZ_SANITIZERS=undefined
# (in another BUILD_FUZZ) builds them for runs of many millions of executions.
FUZZ_SANITIZERS ?= address,undefined
build-fuzz: deps-test
	CC=clang-14 CXX=clang++-14 cmake -S . -B $(BUILD_FUZZ) -G Ninja \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFASTAPI_EXPORTER_FUZZ=ON \
	  -DFASTAPI_EXPORTER_FUZZ_SANITIZERS=$(FUZZ_SANITIZERS) $(WERROR)
	cmake --build $(BUILD_FUZZ)

# The other build types users and packagers pick, warning-free (compiled, not run: the tests
# run on RelWithDebInfo and the sanitizer builds): Release with GCC (-O3 has its own warnings,
# e.g. GCC 12's -Wrestrict), Debug with clang (another compiler's warnings, no optimisation).
# What users build, the daemon and every library it links; the tests are compiled by the
# other builds (GCC here, clang in build-fuzz), which keeps CI well inside its time.
build-matrix: deps-test
	cmake -S . -B $(BUILD_RELEASE) -G Ninja -DCMAKE_BUILD_TYPE=Release $(WERROR)
	cmake --build $(BUILD_RELEASE) --target fastapi-exporter
	CC=clang-14 CXX=clang++-14 cmake -S . -B $(BUILD_CLANG) -G Ninja -DCMAKE_BUILD_TYPE=Debug $(WERROR)
	cmake --build $(BUILD_CLANG) --target fastapi-exporter

# Each fuzz target for FUZZ_SECONDS (default 600) on its corpus, one after the other.
FUZZ_SECONDS ?= 600
fuzz: build-fuzz
	for t in $$(ls $(BUILD_FUZZ)/tests/fuzz | grep '^fuzz_'); do \
	  tests/fuzz/smoke.sh $(BUILD_FUZZ)/tests/fuzz/$$t tests/fuzz/corpus/$$t $(FUZZ_SECONDS) || exit 1; \
	done

# Every test: unit and integration, on the normal build, again under ASan + UBSan, and again
# under TSan (a data race stops the daemon, and so fails its test); and each fuzz target for a
# short smoke run (differential checks included).
test: deps-test
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DFASTAPI_EXPORTER_BUILD_TESTS=ON $(WERROR) $(CMAKE_ARGS)
	cmake --build $(BUILD)
	ctest --test-dir $(BUILD) --output-on-failure --timeout 900
	$(MAKE) build-matrix
	$(MAKE) build-fuzz
	ctest --test-dir $(BUILD_FUZZ) --output-on-failure --timeout 900
	$(MAKE) build-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(BUILD_ASAN) --output-on-failure --timeout 900
	$(MAKE) build-tsan
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --test-dir $(BUILD_TSAN) --output-on-failure --timeout 900

# The Debian package: build/fastapi-exporter_<version>_<arch>.deb (see docs/running.md).
package: build
	cd $(BUILD) && cpack -G DEB

# Every row of docs/BENCHMARKS.md, beside mtail and process-exporter (several minutes).
bench:
	@packaging/install-deps.sh --with-bench
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DFASTAPI_EXPORTER_BUILD_TESTS=ON $(CMAKE_ARGS)
	cmake --build $(BUILD)
	/usr/bin/python3 bench/run.py

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) $(BUILD_FUZZ) $(BUILD_RELEASE) $(BUILD_CLANG)
