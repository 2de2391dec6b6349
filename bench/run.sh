#!/usr/bin/env bash
# bench/run.sh: tern's benchmark, side by side with Mosquitto (`make bench`).
#
# For every scenario below, runs build/mqtt_load against a fresh ternd and a
# fresh mosquitto, each started on a free loopback port with the same limits,
# REPS times (alternating which broker goes first), and prints a markdown
# table of medians with min-max ranges and the ternd/mosquitto ratios. The
# table is also written to bench/results/latest.md. docs/benchmarks.md says
# what each scenario measures.
#
# Environment: BUILD (build dir, default build), BENCH_REPS (3),
# BENCH_SECONDS (publishing time per run, 5), TERN_THREADS (ternd worker
# threads, default: one per core), BENCH_ONLY (scenario letters, e.g. "ab").
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build}
REPS=${BENCH_REPS:-3}
SECONDS_PER_RUN=${BENCH_SECONDS:-5}
THREADS=${TERN_THREADS:-$(nproc)}
ONLY=${BENCH_ONLY:-abcde}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
LOAD=$BUILD/mqtt_load
TERND=$BUILD/ternd
OUT_DIR=$ROOT/bench/results

# Scenario letter | what it is | mqtt_load arguments.
SCENARIOS=(
	"a|1 -> 1, QoS 0, 64 B, max rate|-P 1 -S 1 -q 0 -s 64"
	"b|1 -> 1, QoS 1, 64 B, max rate|-P 1 -S 1 -q 1 -s 64"
	"c|10 -> 10 on 10 topics, QoS 0, 64 B, max rate|-P 10 -S 10 -t bench/%i -q 0 -s 64"
	"d|fan-out 1 -> 100, one topic, QoS 0, 64 B, 2000 msg/s|-P 1 -S 100 -t bench/fan -q 0 -s 64 -r 2000"
	"e|10 -> 10, QoS 1, 64 B, 100 msg/s each (latency)|-P 10 -S 10 -q 1 -s 64 -r 100"
)

die() {
	echo "bench: $*" >&2
	exit 1
}

MOSQUITTO=$(command -v mosquitto || true)
[ -z "$MOSQUITTO" ] && [ -x /usr/sbin/mosquitto ] && MOSQUITTO=/usr/sbin/mosquitto
[ -n "$MOSQUITTO" ] || die "mosquitto not found (make deps installs it)"

echo "bench: building $BUILD" >&2
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"${JOBS:-2}" --target ternd mqtt_load >/dev/null
if [ ! -x "$LOAD" ] || [ ! -x "$TERND" ]; then
	die "build did not produce $LOAD and $TERND"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tern-bench.XXXXXX")
BROKER_PID=""
cleanup() {
	if [ -n "$BROKER_PID" ]; then
		kill -KILL "$BROKER_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Something accepts connections on 127.0.0.1:$1.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A loopback port nobody listens on now.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		port_open "$p" || break
	done
	echo "$p"
}

# start_broker KIND LOG: starts ternd or mosquitto on a free port and sets
# BROKER_PID and PORT. Retries with another port if the first is taken.
start_broker() {
	local kind=$1 log=$2 conf=$WORK/broker.conf tries=5
	while [ $tries -gt 0 ]; do
		tries=$((tries - 1))
		PORT=$(free_port)
		cat >"$conf" <<-EOF
			listener $PORT 127.0.0.1
			allow_anonymous true
			max_queued_messages 100000
			max_inflight_messages 20
			persistence false
		EOF
		if [ "$kind" = ternd ]; then
			"$TERND" -c "$conf" --threads "$THREADS" >"$log" 2>&1 &
		else
			"$MOSQUITTO" -c "$conf" >"$log" 2>&1 &
		fi
		BROKER_PID=$!
		for _ in $(seq 100); do
			kill -0 "$BROKER_PID" 2>/dev/null || break
			port_open "$PORT" && return 0
			sleep 0.05
		done
		stop_broker >/dev/null 2>&1 || true
	done
	die "$kind did not start; its log: $(tail -3 "$log")"
}

# Stops the broker; fails if it had already died or exits with an error.
stop_broker() {
	local rc=0
	kill -0 "$BROKER_PID" 2>/dev/null || rc=1
	kill -TERM "$BROKER_PID" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$BROKER_PID" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$BROKER_PID" 2>/dev/null && rc=1
	wait "$BROKER_PID" 2>/dev/null || rc=1
	BROKER_PID=""
	return $rc
}

# run_one KIND LETTER REP ARGS...: one measurement; the JSON line of
# mqtt_load goes to $WORK/LETTER.KIND.REP.json. Problems go to PROBLEMS.
PROBLEMS=$WORK/problems
: >"$PROBLEMS"
run_one() {
	local kind=$1 letter=$2 rep=$3
	shift 3
	local base=$WORK/$letter.$kind.$rep rc=0
	start_broker "$kind" "$base.log"
	"$LOAD" -p "$PORT" -d "$SECONDS_PER_RUN" --pid "$BROKER_PID" "$@" \
		>"$base.out" 2>"$base.err" || rc=$?
	if ! stop_broker; then
		echo "- ($letter) $kind rep $rep: broker died or did not stop" \
			"cleanly; command: mqtt_load -d $SECONDS_PER_RUN $*" \
			>>"$PROBLEMS"
		mkdir -p "$OUT_DIR"
		cp "$base.log" "$OUT_DIR/$letter.$kind.$rep.broker.log"
	fi
	if [ $rc -ne 0 ]; then
		echo "- ($letter) $kind rep $rep: mqtt_load exit $rc:" \
			"$(tr '\n' ' ' <"$base.err" | cut -c1-300)" >>"$PROBLEMS"
	fi
	grep '^{' "$base.out" >"$base.json" || : >"$base.json"
	printf '  %s %-9s rep %d: %s\n' "$letter" "$kind" "$rep" \
		"$(sed -n 3p "$base.out" | sed 's/^ *//')" >&2
}

# jget KEY FILE: a number from a JSON line of mqtt_load.
jget() {
	{ grep -o "\"$1\":[-0-9.e+]*" "$2" 2>/dev/null || true; } |
		head -1 | cut -d: -f2
}

# stats LETTER KIND KEY: "median min max" over the repetitions.
stats() {
	local f v
	for f in "$WORK/$1.$2".*.json; do
		v=$(jget "$3" "$f")
		[ -n "$v" ] && echo "$v"
	done | sort -g | awk '{ v[NR] = $1 }
		END { if (NR == 0) print "nan nan nan";
		      else print v[int((NR + 1) / 2)], v[1], v[NR] }'
}

# Number formatting for the table.
fmt_rate() {
	awk -v x="$1" 'BEGIN { if (x == "nan") print "-";
		else if (x >= 1e6) printf "%.2fM", x / 1e6;
		else if (x >= 1e4) printf "%.0fk", x / 1e3;
		else if (x >= 1e3) printf "%.1fk", x / 1e3;
		else printf "%.0f", x }'
}
fmt_cpu() {
	awk -v x="$1" 'BEGIN { if (x == "nan" || x < 0) print "-";
		else if (x >= 100) printf "%.0f", x;
		else if (x >= 10) printf "%.1f", x; else printf "%.2f", x }'
}
fmt_lat() {
	awk -v x="$1" 'BEGIN { if (x == "nan") print "-";
		else if (x >= 1e4) printf "%.0f ms", x / 1e3;
		else if (x >= 1e3) printf "%.1f ms", x / 1e3;
		else printf "%.0f µs", x }'
}
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" ||
		b <= 0 || a < 0) print "-"; else printf "%.2f×", a / b }'
}

# lost LETTER KIND: the largest loss over the repetitions, marked with a
# dagger when a run's drain timed out with messages still on their way.
lost() {
	local n
	n=$(stats "$1" "$2" lost | cut -d' ' -f3)
	if grep -qs '"tail":"timeout"' "$WORK/$1.$2".*.json; then
		echo "$n†"
	else
		echo "$n"
	fi
}

# cell FORMAT LETTER KIND KEY: "median (min–max)".
cell() {
	local s med lo hi
	s=$(stats "$2" "$3" "$4")
	read -r med lo hi <<<"$s"
	if [ "$REPS" -gt 1 ]; then
		echo "$($1 "$med") ($($1 "$lo")–$($1 "$hi"))"
	else
		$1 "$med"
	fi
}

echo "bench: $REPS reps x ${SECONDS_PER_RUN}s per scenario and broker," \
	"ternd --threads $THREADS" >&2
for s in "${SCENARIOS[@]}"; do
	IFS='|' read -r letter desc args <<<"$s"
	case $ONLY in *"$letter"*) ;; *) continue ;; esac
	echo "bench: ($letter) $desc" >&2
	for rep in $(seq "$REPS"); do
		# Alternate the order so neither broker always runs first.
		if [ $((rep % 2)) -eq 1 ]; then order="ternd mosquitto"
		else order="mosquitto ternd"; fi
		for kind in $order; do
			# shellcheck disable=SC2086
			run_one "$kind" "$letter" "$rep" $args
		done
	done
done

# Flags what a benchmark must not hide: loss above QoS 0, duplicates,
# reordering, errors.
for f in "$WORK"/*.json; do
	[ -s "$f" ] || continue
	name=$(basename "$f" .json)
	q=$(jget qos "$f")
	if grep -q '"tail":"timeout"' "$f"; then
		echo "- $name: drain timed out after $(jget elapsed_s "$f") s" \
			"with $(jget lost "$f") messages undelivered" >>"$PROBLEMS"
	fi
	for k in lost duplicates reordered late errors; do
		v=$(jget "$k" "$f")
		[ "$k" = lost ] && [ "$q" = 0 ] && continue
		if [ -n "$v" ] && [ "$v" != 0 ]; then
			echo "- $name: $k = $v (of $(jget expected "$f") expected)" \
				>>"$PROBLEMS"
		fi
	done
done

table() {
	local s letter desc args kind mt mm ct cm
	echo "# tern vs Mosquitto: \`make bench\`"
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- machine: $(nproc) cores," \
		"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'),"\
		"Linux $(uname -r)"
	echo "- ternd $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null ||
		echo '?') (--threads $THREADS), $("$MOSQUITTO" -h 2>/dev/null |
		head -1 | sed 's/ is an MQTT.*//')"
	echo "- $REPS runs of ${SECONDS_PER_RUN} s per scenario and broker;" \
		"median (min–max). Client and brokers share the machine, so" \
		"only the ratios mean much."
	echo "- both brokers: max_queued_messages 100000," \
		"max_inflight_messages 20, persistence false"
	echo
	echo "| scenario | broker | delivered msg/s | broker CPU µs/msg |" \
		"latency p50 | latency p99 | lost (max) |"
	echo "| --- | --- | --- | --- | --- | --- | --- |"
	for s in "${SCENARIOS[@]}"; do
		IFS='|' read -r letter desc args <<<"$s"
		case $ONLY in *"$letter"*) ;; *) continue ;; esac
		for kind in ternd mosquitto; do
			echo "| ($letter) $desc | $kind" \
				"| $(cell fmt_rate "$letter" "$kind" delivered_per_s)" \
				"| $(cell fmt_cpu "$letter" "$kind" broker_cpu_us_per_msg)" \
				"| $(fmt_lat "$(stats "$letter" "$kind" lat_p50_us | cut -d' ' -f1)")" \
				"| $(fmt_lat "$(stats "$letter" "$kind" lat_p99_us | cut -d' ' -f1)")" \
				"| $(lost "$letter" "$kind") |"
		done
		mt=$(stats "$letter" ternd delivered_per_s | cut -d' ' -f1)
		mm=$(stats "$letter" mosquitto delivered_per_s | cut -d' ' -f1)
		ct=$(stats "$letter" ternd broker_cpu_us_per_msg | cut -d' ' -f1)
		cm=$(stats "$letter" mosquitto broker_cpu_us_per_msg | cut -d' ' -f1)
		echo "| ($letter) | **ternd/mosquitto** | **$(ratio "$mt" "$mm")**" \
			"| **$(ratio "$ct" "$cm")** | | | |"
	done
	echo
	echo "Delivered msg/s counts messages that reached subscribers while" \
		"publishers were publishing. Broker CPU is the broker's" \
		"utime+stime from the start of publishing to the end of the" \
		"drain, per delivered message. Latency is end to end" \
		"(publisher send to subscriber receive); at max rate it is" \
		"mostly queueing in socket buffers and the broker, so compare" \
		"it only in (d) and (e). Lost counts messages published but" \
		"never delivered (QoS 0 may be dropped under overload; above" \
		"QoS 0 only queue overflow may drop, which the broker counts in" \
		"\$SYS/broker/publish/messages/dropped); † marks runs whose drain" \
		"timed out with messages still arriving, whose count includes" \
		"messages that were queued, not dropped."
	if [ -s "$PROBLEMS" ]; then
		echo
		echo "## Problems"
		echo
		cat "$PROBLEMS"
	fi
}

mkdir -p "$OUT_DIR"
table | tee "$OUT_DIR/latest.md"
