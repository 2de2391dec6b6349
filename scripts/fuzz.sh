#!/bin/sh
# Builds every libFuzzer target (tests/fuzz/*_fuzz.c) with clang, ASan and
# UBSan, then runs each for ${1:-60} seconds on a scratch copy of its seed
# corpus tests/fuzz/corpus/<name without _fuzz>/, so the checked-in corpus
# only changes when someone copies new inputs in on purpose. Crash inputs
# land in build-fuzz/artifacts/. Exits non-zero if any target crashed.
set -eu
cd "$(dirname "$0")/.."
secs=${1:-60}

# fuzzer-no-link gives the libraries coverage instrumentation too; without
# it libFuzzer only sees the edges of the target file itself.
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DTERN_FUZZ=ON -DTERN_SANITIZE=address,undefined \
	-DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
mkdir -p build-fuzz/artifacts

status=0
for src in tests/fuzz/*_fuzz.c; do
	name=$(basename "$src" .c)
	# Build only the fuzz targets, so unrelated parts cannot block fuzzing.
	cmake --build build-fuzz --target "$name" -j"${JOBS:-2}"
	corpus=tests/fuzz/corpus/${name%_fuzz}
	work=$(mktemp -d)
	[ -d "$corpus" ] && cp -R "$corpus"/. "$work"/
	echo "=== $name: ${secs}s on $corpus ==="
	if ! "build-fuzz/$name" -max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix=build-fuzz/artifacts/"$name"- "$work"; then
		echo "$name: CRASH (input in build-fuzz/artifacts/)"
		status=1
	fi
	rm -rf "$work"
done
exit $status
