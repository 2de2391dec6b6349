#!/bin/sh
# Long fuzzing runs that add up across sessions: scripts/fuzz_long.sh
# SECONDS TARGET... runs each target (name without _fuzz) for SECONDS on a
# working corpus kept in build-fuzz/long/<name>/ (seeded from the checked-in
# corpus on first use), then appends one line per run to
# build-fuzz/long/runs.log: date, target, seconds asked, wall seconds run,
# CPU seconds used (user+sys: a nice'd fuzzer next to other work gets less
# than a core, and the CPU figure is what counts towards the hours),
# executions, corpus size, exit status. SIGINT to the fuzzer ends a run early
# and still logs it. Crash inputs land in build-fuzz/artifacts/. Run nice'd next to
# other work; `-merge=1` into tests/fuzz/corpus/<name>/ is a separate,
# deliberate step (see tests/README.md).
set -eu
cd "$(dirname "$0")/.."
secs=$1
shift
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DTERN_FUZZ=ON -DTERN_SANITIZE=address,undefined \
	-DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
mkdir -p build-fuzz/artifacts build-fuzz/long
status=0
# User+system seconds of finished children so far, from the shell's `times`
# (written to a file by this shell itself: a forked subshell would start its
# children's times at zero).
# One file per shell: two chains run side by side, and a shared file once
# let one overwrite the other's start figure.
cputimes=build-fuzz/long/.times.$$
child_cpu() {
	times >"$cputimes"
	awk 'NR == 2 { split($1, u, "m"); split($2, s, "m")
		printf "%d\n", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$cputimes"
}
for t in "$@"; do
	name=${t%_fuzz}_fuzz
	short=${name%_fuzz}
	cmake --build build-fuzz --target "$name" -j1 >/dev/null
	work=build-fuzz/long/$short
	if [ ! -d "$work" ]; then
		mkdir -p "$work"
		cp -R tests/fuzz/corpus/"$short"/. "$work"/ 2>/dev/null || true
	fi
	log=build-fuzz/long/$short.$(date +%s).log
	rc=0
	t0=$(date +%s)
	child_cpu >"$cputimes.0"
	"build-fuzz/$name" -max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix=build-fuzz/artifacts/"$name"- "$work" >"$log" 2>&1 || rc=$?
	wall=$(($(date +%s) - t0))
	child_cpu >"$cputimes.1"
	cpu=$(($(cat "$cputimes.1") - $(cat "$cputimes.0")))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	files=$(find "$work" -type f | wc -l)
	bytes=$(du -sb "$work" | cut -f1)
	echo "$(date -u +%FT%TZ) $short ${secs}s wall=${wall}s cpu=${cpu}s execs=${execs:-?} corpus=${files}/${bytes}B rc=$rc" \
		>>build-fuzz/long/runs.log
	[ "$rc" = 0 ] || status=1
done
rm -f "$cputimes" "$cputimes.0" "$cputimes.1"
exit $status
