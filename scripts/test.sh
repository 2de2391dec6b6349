#!/bin/sh
# `make test`: builds and runs every test in three configurations. Exits
# non-zero on the first failing stage and prints a summary line per stage.
set -eu
cd "$(dirname "$0")/.."
JOBS=${JOBS:-2}
NODE_TEST="node --test --test-timeout=120000"

# e2e VAR=VALUE...: the end-to-end suite (tests/e2e/*.test.mjs) in two
# passes, with that environment (TERND, TERN_THREADS...). Most files spend
# their time waiting on the broker's timers (keep alive, expiry, $SYS
# intervals, reload), so they run three at a time. The files that bound
# a duration, a rate or memory, drive Chromium, or load the machine run
# one at a time afterwards, as before. A file added to tests/e2e joins the
# first pass unless it is named here.
E2E_ALONE="badinput2 bench browser browser_tls durability jwt limits load \
paho privdrop ratelimit slowconsumer tls webclient"
e2e() {
	together="" alone=""
	for f in tests/e2e/*.test.mjs; do
		n=${f##*/}
		n=${n%.test.mjs}
		case " $E2E_ALONE " in
		*" $n "*) alone="$alone $f" ;;
		*) together="$together $f" ;;
		esac
	done
	# shellcheck disable=SC2086 # lists of file names without spaces
	env "$@" $NODE_TEST --test-concurrency=3 $together
	# shellcheck disable=SC2086
	env "$@" $NODE_TEST --test-concurrency=1 $alone
}

build() { # dir, extra cmake args...
	dir=$1; shift
	cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
	cmake --build "$dir" -j"$JOBS"
}

START=$(date +%s)
# Each stage line carries the minutes and seconds since the start, so a CI
# log shows where the time goes (make test must stay under 20 minutes).
stage() {
	t=$(($(date +%s) - START))
	echo; printf '=== [%d:%02d] %s ===\n' $((t / 60)) $((t % 60)) "$*"
}

stage "format check"
if command -v clang-format >/dev/null 2>&1; then
	clang-format --dry-run --Werror $(git ls-files '*.c' '*.h') 
fi

stage "build (release)"
build build
stage "unit tests (release)"
(cd build && ctest --output-on-failure)
stage "end-to-end, 1 thread, MQTT.js over TCP (release)"
e2e TERND=build/ternd TERN_THREADS=1
stage "bench-check: instructions per message under callgrind (release)"
BUILD=build BENCH_BUILD=0 ./bench/check.sh

stage "build (ASan+UBSan)"
build build-asan -DTERN_SANITIZE=address,undefined
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
stage "unit tests (ASan+UBSan)"
(cd build-asan && ctest --output-on-failure)
stage "end-to-end, 2 threads (ASan+UBSan)"
e2e TERND=build-asan/ternd TERN_THREADS=2

stage "build (TSan)"
build build-tsan -DTERN_SANITIZE=thread
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
# The threaded run puts every MQTT.js client on WebSocket (raw-packet tests
# stay on TCP): 4 workers, the ws transport and ThreadSanitizer get the whole
# feature suite in one run, where a separate release run with 4 threads
# over ws used to cost another four minutes.
stage "end-to-end, 4 threads, MQTT.js over WebSocket (TSan)"
e2e TERND=build-tsan/ternd TERN_THREADS=4 TERN_E2E_TRANSPORT=ws

stage "fuzz targets (${FUZZ_SECONDS:-5} s each, ASan+UBSan)"
./scripts/fuzz.sh "${FUZZ_SECONDS:-5}"

t=$(($(date +%s) - START))
echo
printf 'all test stages passed in %d:%02d\n' $((t / 60)) $((t % 60))
