#!/usr/bin/env bash
# bench/check.sh: the performance regression guard (`make bench-check`).
#
# Timing a broker on a shared, noisy machine tells little from one run to
# the next; counting the instructions it executes does. For a few small
# fixed loads (scenarios below, over TCP and over WebSocket, one worker
# thread), ternd runs under `valgrind --tool=callgrind`, driven by
# `tern bench pubsub -n COUNT`, twice: with a few messages (connections,
# subscriptions, start-up and shut-down, and a little traffic) and with
# many more. The difference of the two instruction totals over the
# difference of the messages delivered is the cost of one delivered
# message, with everything fixed cancelled out. Each figure is compared
# with bench/baseline.json; more than BENCH_CHECK_LIMIT percent (10) above
# its baseline fails (after two more runs of that scenario, on the median).
#
#   bench/check.sh            compare with the baseline (exit 1 on a regression)
#   bench/check.sh --update   measure and rewrite bench/baseline.json
#
# Environment: BUILD (build directory, default build), BENCH_BUILD (0: use
# BUILD's ternd and tern as they are), BENCH_CHECK_LIMIT (percent, 10),
# BENCH_COMMIT (with --update: the commit BUILD was made from, when not
# the working tree's HEAD with its uncommitted changes).
#
# Instruction counts depend on the compiler and its flags: the baseline
# records both, and is only meaningful for the RelWithDebInfo build made
# the same way. When a change makes ternd cheaper or dearer on purpose
# (or other work moved the figures), rewrite the baseline with
# `make bench-check UPDATE=1` and commit it with the change.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
ROOT=$PWD
BUILD=${BUILD:-build}
LIMIT=${BENCH_CHECK_LIMIT:-10}
BASELINE=$ROOT/bench/baseline.json
UPDATE=0
case ${1:-} in
--update) UPDATE=1 ;;
"") ;;
*)
	echo "usage: bench/check.sh [--update]" >&2
	exit 2
	;;
esac
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
TERND=$BUILD/ternd
LOAD=$BUILD/tern

# Scenario | `tern bench pubsub` arguments | messages published, small and
# large run. At max rate ternd under callgrind is always behind, so its
# reads come full and the batching (what one read, one epoll_wait and one
# write are shared by) is about the same from run to run; at a fixed rate
# it depends on timing, and the counts vary more. Deliveries are what the
# subscribers counted.
SCENARIOS=(
	"p2p-qos0|-P 1 -S 1 -q 0 -s 64|1000 8000"
	"p2p-qos1|-P 1 -S 1 -q 1 -s 64|1000 8000"
	"fanout10-qos0|-P 1 -S 10 -t bench/fan -q 0 -s 64|100 800"
)
TRANSPORTS="tcp ws"

die() {
	echo "bench-check: $*" >&2
	exit 1
}

command -v valgrind >/dev/null || die "valgrind not found (make deps installs it)"
if [ "${BENCH_BUILD:-1}" != 0 ]; then
	cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$BUILD" -j"${JOBS:-2}" --target ternd tern_cli >/dev/null
fi
if [ ! -x "$TERND" ] || [ ! -x "$LOAD" ]; then
	die "no $TERND and $LOAD"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tern-bench-check.XXXXXX")
PID=""
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	if [ -n "$PID" ]; then
		kill -KILL "$PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# attempt TRANSPORT ARGS...: runs a fresh ternd (one worker thread)
# under callgrind and `tern bench pubsub ARGS` against it; prints
# "instructions delivered". Fails (saying why on stderr) on any loss above
# QoS 0, an error, or a broker that does not exit cleanly.
attempt() {
	local t=$1 port wsport url out rc=0
	shift
	port=$(free_port)
	wsport=$(free_port)
	[ "$port" != "$wsport" ] || wsport=$((port + 1))
	printf '%s\n' "listener $port 127.0.0.1" "listener $wsport 127.0.0.1" \
		"protocol websockets" "allow_anonymous true" \
		"persistence false" >"$WORK/ternd.conf"
	out=$WORK/callgrind.out
	rm -f "$out"
	valgrind --tool=callgrind --callgrind-out-file="$out" \
		"$TERND" -c "$WORK/ternd.conf" --threads 1 \
		>"$WORK/ternd.log" 2>&1 &
	PID=$!
	# Valgrind takes a second or two to start ternd.
	if ! wait_ports "$PID" 600 "$port" "$wsport"; then
		echo "bench-check: ternd did not start: $(tail -2 "$WORK/ternd.log")" >&2
		kill -KILL "$PID" 2>/dev/null || true
		wait "$PID" || true
		PID=""
		return 1
	fi
	[ "$t" = ws ] && url=ws://127.0.0.1:$wsport/mqtt || url=mqtt://127.0.0.1:$port
	"$LOAD" bench pubsub -L "$url" --quiet --drain 30 "$@" \
		>"$WORK/bench.out" 2>"$WORK/bench.err" || rc=$?
	kill -TERM "$PID" 2>/dev/null || true
	wait "$PID" || rc=$((rc ? rc : 100))
	PID=""
	if [ "$rc" != 0 ]; then
		echo "bench-check: tern bench pubsub -L $url $*: exit $rc:" \
			"$(tail -2 "$WORK/bench.err" | tr '\n' ' ')" >&2
		return 1
	fi
	local j
	j=$(grep '^{' "$WORK/bench.out")
	jnum() { grep -o "\"$1\":[0-9.]*" <<<"$j" | head -1 | cut -d: -f2; }
	if [ "$(jnum errors)" != 0 ] || [ "$(jnum duplicates)" != 0 ] ||
		{ [ "$(jnum qos)" != 0 ] && [ "$(jnum lost)" != 0 ]; }; then
		echo "bench-check: tern bench pubsub $*: $j" >&2
		return 1
	fi
	echo "$(awk '$1 == "summary:" { print $2 }' "$out") $(jnum delivered)"
}

# instructions TRANSPORT ARGS...: attempt(), tried up to 3 times (a port
# picked as free may be taken by another program before ternd binds it).
instructions() {
	local n
	for n in 1 2 3; do
		attempt "$@" && return 0
		echo "bench-check: attempt $n failed" >&2
	done
	return 1
}

# per_message NAME: instructions per delivered message of scenario NAME
# over transport T, from a small and a large run.
measure() {
	local t=$1 args=$2 small=$3 large=$4 a b
	# shellcheck disable=SC2086
	a=$(instructions "$t" $args -n "$small") || return 1
	# shellcheck disable=SC2086
	b=$(instructions "$t" $args -n "$large") || return 1
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
		if (y[2] <= x[2]) exit 1;
		printf "%.1f\n", (y[1] - x[1]) / (y[2] - x[2]) }'
}

# The baseline's figure for NAME, or nothing.
base_of() {
	[ -f "$BASELINE" ] || return 0
	grep -o "\"$1\": [0-9.]*" "$BASELINE" | head -1 | cut -d' ' -f2
}

# The baseline is only comparable with the same compiler.
CC_NOW="RelWithDebInfo, $(cc --version | head -1)"
if [ "$UPDATE" = 0 ] && [ -f "$BASELINE" ] &&
	! grep -qF "\"build\": \"$CC_NOW\"" "$BASELINE"; then
	echo "bench-check: warning: the baseline was made with" \
		"$(grep -o '"build": "[^"]*"' "$BASELINE" | cut -d'"' -f4)," \
		"this is $CC_NOW: the counts may differ for that alone" >&2
fi

# over_limit NAME VALUE: VALUE is more than LIMIT% above NAME's baseline.
over_limit() {
	local b
	b=$(base_of "$1")
	awk -v a="$2" -v b="${b:-0}" -v l="$LIMIT" \
		'BEGIN { exit !(b > 0 && a > b * (1 + l / 100)) }'
}

# median3 A B C
median3() {
	printf '%s\n' "$@" | sort -g | sed -n 2p
}

# The same binary gives the same count to within a few percent, but now
# and then one run lands a few percent off (how reads happened to batch).
# So the baseline is the median of three runs, and a check that finds a
# scenario over the limit measures it twice more and judges the median.
START=$(date +%s)
declare -A NOW
names=()
for s in "${SCENARIOS[@]}"; do
	IFS='|' read -r name args counts <<<"$s"
	read -r small large <<<"$counts"
	for t in $TRANSPORTS; do
		n=$name-$t
		names+=("$n")
		v1=$(measure "$t" "$args" "$small" "$large") ||
			die "$name over $t could not be measured"
		if [ "$UPDATE" = 1 ] || over_limit "$n" "$v1"; then
			[ "$UPDATE" = 1 ] ||
				echo "bench-check: $n: $v1 over the limit, measuring twice more" >&2
			v2=$(measure "$t" "$args" "$small" "$large") ||
				die "$name over $t could not be measured"
			v3=$(measure "$t" "$args" "$small" "$large") ||
				die "$name over $t could not be measured"
			v1=$(median3 "$v1" "$v2" "$v3")
		fi
		NOW[$n]=$v1
	done
done

status=0
printf '%-20s %12s %12s %8s\n' scenario baseline now ratio
for n in "${names[@]}"; do
	b=$(base_of "$n")
	r=$(awk -v a="${NOW[$n]}" -v b="${b:-0}" -v l="$LIMIT" 'BEGIN {
		if (b <= 0) { print "new"; exit }
		r = a / b
		printf "%.3f%s", r, (r > 1 + l / 100 ? " REGRESSION" : "") }')
	case $r in *REGRESSION*) status=1 ;; esac
	printf '%-20s %12s %12s %8s\n' "$n" "${b:--}" "${NOW[$n]}" "$r"
done
echo "(instructions per delivered message, ternd under callgrind, 1 worker" \
	"thread; a regression is more than $LIMIT% above the baseline;" \
	"$(($(date +%s) - START)) s)"

if [ "$UPDATE" = 1 ]; then
	{
		echo "{"
		echo "  \"commit\": \"${BENCH_COMMIT:-$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src apps 2>/dev/null || echo '+changes')}\","
		echo "  \"made\": \"$(date -u '+%Y-%m-%d %H:%M UTC')\","
		echo "  \"build\": \"$CC_NOW\","
		echo "  \"valgrind\": \"$(valgrind --version)\","
		echo "  \"unit\": \"instructions per delivered message\","
		echo "  \"scenarios\": {"
		i=0
		for n in "${names[@]}"; do
			i=$((i + 1))
			sep=,
			[ $i = ${#names[@]} ] && sep=
			echo "    \"$n\": ${NOW[$n]}$sep"
		done
		echo "  }"
		echo "}"
	} >"$BASELINE"
	echo "bench-check: $BASELINE rewritten"
	exit 0
fi
if [ ! -f "$BASELINE" ]; then
	echo "bench-check: no baseline; make one with make bench-check UPDATE=1" >&2
	exit 1
fi
if [ "$status" != 0 ]; then
	echo "bench-check: regression above $LIMIT% (if it is expected, update" \
		"the baseline: make bench-check UPDATE=1)" >&2
fi
exit $status
