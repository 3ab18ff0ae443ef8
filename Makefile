# Tessera — the two commands a newcomer needs:
#   make demo   install what is missing, build, run the main job on the embedded default
#   make test   install what is missing, build (Release + ASan/UBSan + TSan), run the whole suite
JOBS ?= $(shell nproc)
# --no-tests=error: a label or pattern that matches nothing is a failure, not a pass.
CTEST_FLAGS ?= --output-on-failure --no-tests=error
# Label sets: the Release build runs everything; the sanitizer build runs what is quick
# enough under ASan (unit and parity tests, the integration tests labelled `sanitized` in
# tests/CMakeLists.txt) plus the bounded fuzzers.
SAN_LABELS ?= unit|parity|fuzz|sanitized
# After each ctest run: fail on a skipped test that tests/expected_skips.txt does not list.
CHECK_SKIPS = python3 tests/check_skips.py
# ThreadSanitizer: the tests labelled `threaded` (THREADED_TESTS in tests/CMakeLists.txt).
# Reports go to files (log_path), so that one from a background process a test does not
# wait for still fails the run. ignore_noninstrumented_modules: what uninstrumented libraries
# (ZeroMQ, libsodium, OpenBLAS, oneDNN, libomp) do is not checked, our code all is; archer
# tells TSan what OpenMP orders. tests/tsan.supp may name third-party libraries only.
TSAN_REPORTS = $(CURDIR)/build/tsan/tsan-reports
TSAN_ENV = TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp ignore_noninstrumented_modules=1 log_path=$(TSAN_REPORTS)/report exitcode=66 second_deadlock_stack=1 history_size=4" \
  OMP_TOOL_LIBRARIES=$(shell ls /usr/lib/llvm-14/lib/libarcher.so 2>/dev/null)

.PHONY: all deps release asan tsan test test-release test-asan test-tsan demo clean

all: release

deps:
	@bash tools/install-deps.sh

release: deps
	@cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build/release -j $(JOBS)

# clang, because libFuzzer comes with it; -O1 keeps the parity tests quick under ASan.
asan: deps
	@CC=clang CXX=clang++ cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug \
	  -DCMAKE_C_FLAGS="-O1 -g" -DTESSERA_SANITIZE=ON -DTESSERA_FUZZ=ON -DTESSERA_NATIVE=OFF >/dev/null
	@cmake --build build/asan -j $(JOBS)

# clang + libomp under TSan; only the threaded tests (and what they run) are built.
tsan: deps
	@CC=clang CXX=clang++ cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=Debug \
	  -DCMAKE_C_FLAGS="-O1 -g" -DTESSERA_TSAN=ON -DTESSERA_NATIVE=OFF >/dev/null
	@cmake --build build/tsan -j $(JOBS)

test-release: release
	cd build/release && ctest $(CTEST_FLAGS) -j $(JOBS) --output-junit junit.xml
	$(CHECK_SKIPS) build/release/junit.xml

test-asan: asan
	cd build/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest $(CTEST_FLAGS) -L '$(SAN_LABELS)' --output-junit junit.xml
	$(CHECK_SKIPS) build/asan/junit.xml

test-tsan: tsan
	@rm -rf $(TSAN_REPORTS) && mkdir -p $(TSAN_REPORTS)
	cd build/tsan && $(TSAN_ENV) ctest $(CTEST_FLAGS) -j $(JOBS) -L threaded --output-junit junit.xml; \
	  rc=$$?; for f in $(TSAN_REPORTS)/report*; do [ -e "$$f" ] && { cat "$$f"; rc=1; }; done; \
	  [ $$rc -eq 0 ] || echo "test-tsan: failed (ThreadSanitizer reports, if any, are above)"; exit $$rc
	$(CHECK_SKIPS) build/tsan/junit.xml

test: test-release test-asan test-tsan

demo: release
	@bash tools/demo.sh build/release/tessera

clean:
	rm -rf build
