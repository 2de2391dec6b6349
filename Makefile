# tern — the two commands are `make run` and `make test`.
# Everything below is CMake underneath; this file only strings steps together.

JOBS    ?= 2
BUILD   ?= build
CMAKE   ?= cmake
NODE_TEST = node --test --test-concurrency=1 --test-timeout=120000

.PHONY: all deps build run test unit e2e test-asan test-tsan fuzz bench bench-check format clean

all: build

deps:
	@./scripts/deps.sh

# Release-with-debug-info build of ternd, the core library and unit tests.
build:
	@$(CMAKE) -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@$(CMAKE) --build $(BUILD) -j$(JOBS)

# Local development: MQTT, WebSocket, TLS and WebSocket over TLS on
# loopback, with a development CA made on first run (data/, not committed).
run: deps build
	@./scripts/devcert.sh
	@echo "ternd: mqtt://localhost:1883  ws://localhost:8083/mqtt  mqtts://localhost:8883  wss://localhost:8084/mqtt"
	@echo "ternd: web client http://localhost:8083/ (and https://localhost:8084/) ; trust $(CURDIR)/data/tls/ca.crt for mqtts/wss/https"
	./$(BUILD)/ternd -c data/ternd.conf -v

# Every test: unit and end-to-end (1 worker thread) on the normal build, then
# the same under ASan+UBSan, then the suite with 4 threads over WebSocket
# under ThreadSanitizer, then the fuzz targets (scripts/test.sh).
test: deps
	@./scripts/test.sh

unit: build
	cd $(BUILD) && ctest --output-on-failure

e2e: build
	TERND=$(BUILD)/ternd TERN_THREADS=1 $(NODE_TEST) tests/e2e/
	TERND=$(BUILD)/ternd TERN_THREADS=4 TERN_E2E_TRANSPORT=ws $(NODE_TEST) tests/e2e/

fuzz: deps
	@./scripts/fuzz.sh $(FUZZ_SECONDS)

bench: deps build
	@./bench/run.sh

# The performance regression guard: ternd's instructions per delivered
# message under callgrind against bench/baseline.json (fails above +10%).
# UPDATE=1 rewrites the baseline instead (commit it with the change).
bench-check: deps build
	@./bench/check.sh $(if $(filter 1,$(UPDATE)),--update)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-tsan build-fuzz
