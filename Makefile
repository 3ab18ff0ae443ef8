# Tessera — the two commands a newcomer needs:
#   make demo   install what is missing, build, run the main job on the embedded default
#   make test   install what is missing, build (Release + ASan/UBSan), run the whole suite
JOBS ?= $(shell nproc)
CTEST_FLAGS ?= --output-on-failure
# Label sets: the Release build runs everything; the sanitizer build runs what is quick
# enough under ASan (unit and parity tests) plus the bounded fuzzers.
SAN_LABELS ?= unit|parity|fuzz

.PHONY: all deps release asan test test-release test-asan demo clean

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

test-release: release
	cd build/release && ctest $(CTEST_FLAGS) -j $(JOBS)

test-asan: asan
	cd build/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest $(CTEST_FLAGS) -L '$(SAN_LABELS)'

test: test-release test-asan

demo: release
	@bash tools/demo.sh build/release/tessera

clean:
	rm -rf build
