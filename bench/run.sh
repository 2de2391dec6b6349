#!/usr/bin/env bash
# bench/run.sh: tern's benchmark, side by side with Mosquitto (`make bench`).
#
# For every scenario below, runs build/mqtt_load against a fresh ternd and a
# fresh mosquitto, each started on free loopback ports (one MQTT listener,
# one WebSocket listener) with the same limits, REPS times (alternating
# which broker goes first), and prints markdown tables of medians with
# min-max ranges and the ratios. The tables are also written to
# bench/results/latest.md. docs/benchmarks.md says what each scenario
# measures.
#
# (a)-(e) are MQTT over TCP; (f)-(j) compare MQTT over WebSocket with MQTT
# over TCP: throughput (f, g), large payloads (h), connection set-up (i) and
# memory per idle connection (j).
#
# Environment: BUILD (build dir, default build), BENCH_REPS (3),
# BENCH_SECONDS (publishing time per run, 5), TERN_THREADS (ternd worker
# threads, default: one per core), BENCH_ONLY (scenario letters, e.g. "ab";
# default all, abcdefghij), BENCH_SWEEP_SECONDS (publishing time per run of
# (h), 3), BENCH_SWEEP_REPS (runs of (h), 1), BENCH_CONNS (connections in
# (i), 1000), BENCH_CONN_RATE (connections/s of (i)'s latency run, 500),
# BENCH_IDLE_CONNS (connections in (j), 5000), BENCH_MEM_REPS (runs of (j),
# 1).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build}
REPS=${BENCH_REPS:-3}
SECONDS_PER_RUN=${BENCH_SECONDS:-5}
THREADS=${TERN_THREADS:-$(nproc)}
ONLY=${BENCH_ONLY:-abcdefghij}
SWEEP_SECONDS=${BENCH_SWEEP_SECONDS:-3}
SWEEP_REPS=${BENCH_SWEEP_REPS:-1}
CONNS=${BENCH_CONNS:-1000}
CONN_RATE=${BENCH_CONN_RATE:-500}
IDLE_CONNS=${BENCH_IDLE_CONNS:-5000}
MEM_REPS=${BENCH_MEM_REPS:-1}
IDLE_SECONDS=2
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

# WebSocket throughput: letter | what | mqtt_load arguments. Each runs on
# ternd over TCP, ternd over WebSocket and mosquitto over WebSocket.
WS_SCENARIOS=(
	"f|ws 1 -> 1, QoS 0, 64 B, max rate|-P 1 -S 1 -q 0 -s 64"
	"g|ws 1 -> 1, QoS 0, 1 KiB, max rate|-P 1 -S 1 -q 0 -s 1024"
)
WS_VARIANTS="ternd ternd-ws mosquitto-ws"

# (h) payload sweep: id | payload | mqtt_load arguments; every variant.
SWEEP=(
	"h64k|64 KiB|-P 1 -S 1 -q 1 -s 65536"
	"h1m|1 MiB|-P 1 -S 1 -q 1 -s 1048576"
)
ALL_VARIANTS="ternd ternd-ws mosquitto mosquitto-ws"

# Files each broker may need: 5000 idle connections in (j), and mqtt_load.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

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

# start_broker KIND LOG: starts ternd or mosquitto on free ports and sets
# BROKER_PID, PORT (MQTT) and WSPORT (MQTT over WebSocket, path /mqtt).
# Retries with other ports if the first are taken. Mosquitto 2.0.11 serves
# WebSocket only next to a plain listener, and binds it to every address
# (its websockets listener ignores the bind address).
start_broker() {
	local kind=$1 log=$2 conf=$WORK/broker.conf tries=5 wsbind=127.0.0.1
	[ "$kind" = mosquitto ] && wsbind=""
	while [ $tries -gt 0 ]; do
		tries=$((tries - 1))
		PORT=$(free_port)
		WSPORT=$(free_port)
		[ "$WSPORT" = "$PORT" ] && continue
		cat >"$conf" <<-EOF
			listener $PORT 127.0.0.1
			listener $WSPORT $wsbind
			protocol websockets
			allow_anonymous true
			max_queued_messages 100000
			max_inflight_messages 20
			max_packet_size 20000000
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
			port_open "$PORT" && port_open "$WSPORT" && return 0
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
	BROKER_RC=0
	wait "$BROKER_PID" 2>/dev/null || BROKER_RC=$?
	[ "$BROKER_RC" -ne 0 ] && rc=1
	BROKER_PID=""
	return $rc
}

# run_load VARIANT ID REP ARGS...: one measurement against a fresh broker.
# VARIANT is ternd or mosquitto (MQTT over TCP), or ternd-ws or
# mosquitto-ws (over WebSocket). The JSON line of mqtt_load goes to
# $WORK/ID.VARIANT.REP.json. Problems go to PROBLEMS.
PROBLEMS=$WORK/problems
: >"$PROBLEMS"
run_load() {
	local var=$1 id=$2 rep=$3
	shift 3
	local kind=${var%-ws} base=$WORK/$id.$var.$rep rc=0 url
	start_broker "$kind" "$base.log"
	url=mqtt://127.0.0.1:$PORT
	[ "$var" != "$kind" ] && url=ws://127.0.0.1:$WSPORT/mqtt
	"$LOAD" -L "$url" --pid "$BROKER_PID" "$@" \
		>"$base.out" 2>"$base.err" || rc=$?
	if ! stop_broker; then
		echo "- ($id) $var rep $rep: broker died or did not stop" \
			"cleanly (exit status $BROKER_RC; log ends:" \
			"\"$(tail -1 "$base.log" | cut -c1-120)\");" \
			"command: mqtt_load -L $url $*" >>"$PROBLEMS"
		mkdir -p "$OUT_DIR"
		cp "$base.log" "$OUT_DIR/$id.$var.$rep.broker.log"
	fi
	if [ $rc -ne 0 ]; then
		echo "- ($id) $var rep $rep: mqtt_load -L $url $* exit $rc:" \
			"$(tr '\n' ' ' <"$base.err" | cut -c1-300)" >>"$PROBLEMS"
	fi
	grep '^{' "$base.out" >"$base.json" || : >"$base.json"
	printf '  %-4s %-12s rep %d: %s\n' "$id" "$var" "$rep" \
		"$(grep -m1 -E '^  (delivered|up) ' "$base.out" |
			sed 's/^ *//')" >&2
}

# run_one KIND LETTER REP ARGS...: a run of (a)-(e), over TCP.
run_one() {
	local kind=$1 letter=$2 rep=$3
	shift 3
	run_load "$kind" "$letter" "$rep" -d "$SECONDS_PER_RUN" "$@"
}

# rotate N WORDS...: the words rotated left by N, so that no broker or
# transport always runs first.
rotate() {
	local n=$1
	shift
	local w=("$@") i
	for i in "${!w[@]}"; do
		echo -n "${w[$(((i + n) % ${#w[@]}))]} "
	done
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
		a == "" || b == "" || b <= 0 || a < 0) print "-";
		else if (a / b < 0.1) printf "%.3f×", a / b;
		else printf "%.2f×", a / b }'
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

for s in "${WS_SCENARIOS[@]}"; do
	IFS='|' read -r letter desc args <<<"$s"
	case $ONLY in *"$letter"*) ;; *) continue ;; esac
	echo "bench: ($letter) $desc" >&2
	for rep in $(seq "$REPS"); do
		# shellcheck disable=SC2086
		for var in $(rotate "$rep" $WS_VARIANTS); do
			# shellcheck disable=SC2086
			run_load "$var" "$letter" "$rep" -d "$SECONDS_PER_RUN" $args
		done
	done
done

# (h): at most SWEEP_SECONDS of publishing and as long again of drain, so
# that a broker that stalls costs little time.
if [[ $ONLY == *h* ]]; then
	for s in "${SWEEP[@]}"; do
		IFS='|' read -r id desc args <<<"$s"
		echo "bench: (h) QoS 1, $desc payload" >&2
		for rep in $(seq "$SWEEP_REPS"); do
			# shellcheck disable=SC2086
			for var in $(rotate "$rep" $ALL_VARIANTS); do
				# shellcheck disable=SC2086
				run_load "$var" "$id" "$rep" -d "$SWEEP_SECONDS" \
					--drain "$SWEEP_SECONDS" $args
			done
		done
	done
fi

# (i): CONNS connections at CONN_RATE a second (set-up time without
# queueing), then CONNS as fast as possible (connections/s), each against
# a fresh broker.
if [[ $ONLY == *i* ]]; then
	echo "bench: (i) connection set-up, $CONNS connections" >&2
	for rep in $(seq "$REPS"); do
		# shellcheck disable=SC2086
		for var in $(rotate "$rep" $ALL_VARIANTS); do
			run_load "$var" i "$rep" --conn "$CONNS" -r "$CONN_RATE"
			run_load "$var" imax "$rep" --conn "$CONNS"
		done
	done
fi

# (j): IDLE_CONNS idle connections, held IDLE_SECONDS; broker VmRSS before
# and after.
if [[ $ONLY == *j* ]]; then
	echo "bench: (j) memory, $IDLE_CONNS idle connections" >&2
	for rep in $(seq "$MEM_REPS"); do
		# shellcheck disable=SC2086
		for var in $(rotate "$rep" $ALL_VARIANTS); do
			run_load "$var" j "$rep" --conn "$IDLE_CONNS" \
				--idle "$IDLE_SECONDS"
		done
	done
fi

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
	n=$(jget connections "$f")
	if [ -n "$n" ] && [ "$(jget ready "$f")" != "$n" ]; then
		echo "- $name: $(jget ready "$f") of $n connections up" \
			>>"$PROBLEMS"
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
		"max_inflight_messages 20, max_packet_size 20000000," \
		"persistence false; an MQTT listener and a websockets listener"
	if [[ $ONLY == *[abcde]* ]]; then
		tcp_table
	fi
	if [[ $ONLY == *[fg]* ]]; then
		ws_table
	fi
	if [[ $ONLY == *h* ]]; then
		sweep_table
	fi
	if [[ $ONLY == *i* ]]; then
		conn_table
	fi
	if [[ $ONLY == *j* ]]; then
		mem_table
	fi
	if [ -s "$PROBLEMS" ]; then
		echo
		echo "## Problems"
		echo
		cat "$PROBLEMS"
	fi
}

# (a)-(e): ternd and mosquitto over TCP.
tcp_table() {
	local s letter desc args kind mt mm ct cm
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
}

# median ID VARIANT KEY: the median over the repetitions.
median() {
	stats "$1" "$2" "$3" | cut -d' ' -f1
}

# target VALUE le|ge LIMIT: whether a ratio meets its target.
target() {
	awk -v x="$1" -v op="$2" -v t="$3" 'BEGIN {
		if (x == "nan" || x == "") print "not measured";
		else if ((op == "ge" && x >= t) || (op == "le" && x <= t))
			print "met";
		else print "**not met**" }'
}

# ratio_of A B: A/B as a plain number, or nan.
ratio_of() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" ||
		a == "" || b == "" || b <= 0 || a < 0) print "nan";
		else printf "%.3f", a / b }'
}

fmt_kib() {
	awk -v x="$1" 'BEGIN { if (x == "nan" || x < 0) print "-";
		else if (x >= 10240) printf "%.1f MiB", x / 1024;
		else printf "%.0f KiB", x }'
}
fmt_bytes() {
	awk -v x="$1" 'BEGIN { if (x == "nan" || x < 0) print "-";
		else if (x >= 1024) printf "%.1f KiB", x / 1024;
		else printf "%.0f B", x }'
}

transport_of() {
	case $1 in *-ws) echo WebSocket ;; *) echo TCP ;; esac
}

# (f), (g): ternd over TCP and WebSocket, mosquitto over WebSocket.
ws_table() {
	local s letter desc args var rt rw rm ct cw cm r
	echo
	echo "## MQTT over WebSocket"
	echo
	echo "### (f), (g) WebSocket throughput"
	echo
	echo "| scenario | broker | transport | delivered msg/s |" \
		"broker CPU µs/msg | latency p50 | latency p99 | lost (max) |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
	for s in "${WS_SCENARIOS[@]}"; do
		IFS='|' read -r letter desc args <<<"$s"
		case $ONLY in *"$letter"*) ;; *) continue ;; esac
		for var in $WS_VARIANTS; do
			echo "| ($letter) $desc | ${var%-ws} | $(transport_of "$var")" \
				"| $(cell fmt_rate "$letter" "$var" delivered_per_s)" \
				"| $(cell fmt_cpu "$letter" "$var" broker_cpu_us_per_msg)" \
				"| $(fmt_lat "$(median "$letter" "$var" lat_p50_us)")" \
				"| $(fmt_lat "$(median "$letter" "$var" lat_p99_us)")" \
				"| $(lost "$letter" "$var") |"
		done
		rt=$(median "$letter" ternd delivered_per_s)
		rw=$(median "$letter" ternd-ws delivered_per_s)
		rm=$(median "$letter" mosquitto-ws delivered_per_s)
		ct=$(median "$letter" ternd broker_cpu_us_per_msg)
		cw=$(median "$letter" ternd-ws broker_cpu_us_per_msg)
		cm=$(median "$letter" mosquitto-ws broker_cpu_us_per_msg)
		r=$(ratio_of "$rw" "$rt")
		echo "| ($letter) | **ternd ws/tcp** | | **$(ratio "$rw" "$rt")**" \
			"(target ≥ 0.9: $(target "$r" ge 0.9))" \
			"| $(ratio "$cw" "$ct") | | | |"
		r=$(ratio_of "$cw" "$cm")
		echo "| ($letter) | **ternd/mosquitto, ws** | |" \
			"$(ratio "$rw" "$rm") | **$(ratio "$cw" "$cm")**" \
			"(target ≤ 0.33: $(target "$r" le 0.33)) | | | |"
	done
}

# (h): payload sweep, every variant.
sweep_table() {
	local s id desc args var
	echo
	echo "### (h) large payloads, QoS 1, 1 -> 1, ${SWEEP_SECONDS} s" \
		"(+ at most ${SWEEP_SECONDS} s drain)"
	echo
	echo "| payload | broker | transport | delivered msg/s |" \
		"published | delivered | lost | broker CPU µs/msg | drain |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	for s in "${SWEEP[@]}"; do
		IFS='|' read -r id desc args <<<"$s"
		for var in $ALL_VARIANTS; do
			echo "| $desc | ${var%-ws} | $(transport_of "$var")" \
				"| $(REPS=$SWEEP_REPS cell fmt_rate "$id" "$var" delivered_per_s)" \
				"| $(median "$id" "$var" published)" \
				"| $(median "$id" "$var" delivered)" \
				"| $(lost "$id" "$var")" \
				"| $(fmt_cpu "$(median "$id" "$var" broker_cpu_us_per_msg)")" \
				"| $(grep -ho '"tail":"[a-z]*"' "$WORK/$id.$var".*.json 2>/dev/null |
					cut -d'"' -f4 | sort | uniq -c | awk '{ printf "%s%s", (NR > 1 ? ", " : ""), $2 }') |"
		done
		echo "| $desc | **ws/tcp** | |" \
			"ternd $(ratio "$(median "$id" ternd-ws delivered_per_s)" \
				"$(median "$id" ternd delivered_per_s)")," \
			"mosquitto $(ratio "$(median "$id" mosquitto-ws delivered_per_s)" \
				"$(median "$id" mosquitto delivered_per_s)") | | | | | |"
	done
}

# (i): connection set-up.
conn_table() {
	local var
	echo
	echo "### (i) connection set-up, $CONNS connections" \
		"(connect() to CONNACK, WebSocket upgrade included)"
	echo
	echo "| broker | transport | set-up p50 at $CONN_RATE/s |" \
		"set-up p99 at $CONN_RATE/s | connections/s, max rate |" \
		"set-up p50 / p99 at max rate |"
	echo "| --- | --- | --- | --- | --- | --- |"
	for var in $ALL_VARIANTS; do
		echo "| ${var%-ws} | $(transport_of "$var")" \
			"| $(fmt_lat "$(median i "$var" setup_p50_us)")" \
			"| $(fmt_lat "$(median i "$var" setup_p99_us)")" \
			"| $(cell fmt_rate imax "$var" conn_per_s)" \
			"| $(fmt_lat "$(median imax "$var" setup_p50_us)") /" \
			"$(fmt_lat "$(median imax "$var" setup_p99_us)") |"
	done
	echo "| **ternd ws/tcp** | |" \
		"$(ratio "$(median i ternd-ws setup_p50_us)" "$(median i ternd setup_p50_us)")" \
		"| $(ratio "$(median i ternd-ws setup_p99_us)" "$(median i ternd setup_p99_us)")" \
		"| $(ratio "$(median imax ternd-ws conn_per_s)" "$(median imax ternd conn_per_s)") | |"
	echo "| **ternd/mosquitto, ws** | |" \
		"$(ratio "$(median i ternd-ws setup_p50_us)" "$(median i mosquitto-ws setup_p50_us)")" \
		"| $(ratio "$(median i ternd-ws setup_p99_us)" "$(median i mosquitto-ws setup_p99_us)")" \
		"| $(ratio "$(median imax ternd-ws conn_per_s)" "$(median imax mosquitto-ws conn_per_s)") | |"
}

# (j): memory per idle connection.
mem_table() {
	local var b pt pw r
	echo
	echo "### (j) memory, $IDLE_CONNS idle connections held ${IDLE_SECONDS} s"
	echo
	echo "| broker | transport | VmRSS before | VmRSS with connections |" \
		"per connection | TCP sockets (system) | Slab (system) |"
	echo "| --- | --- | --- | --- | --- | --- | --- |"
	for var in $ALL_VARIANTS; do
		echo "| ${var%-ws} | $(transport_of "$var")" \
			"| $(fmt_kib "$(median j "$var" rss_before_kb)")" \
			"| $(fmt_kib "$(median j "$var" rss_idle_kb)")" \
			"| $(fmt_bytes "$(median j "$var" rss_per_conn_b)")" \
			"| $(median j "$var" tcp_inuse_before) → $(median j "$var" tcp_inuse_idle)" \
			"| +$(fmt_kib "$(awk -v a="$(median j "$var" slab_idle_kb)" \
				-v b="$(median j "$var" slab_before_kb)" 'BEGIN { print a - b }')") |"
	done
	for b in ternd mosquitto; do
		pt=$(median j "$b" rss_per_conn_b)
		pw=$(median j "$b-ws" rss_per_conn_b)
		r=$(ratio_of "$pw" "$pt")
		if [ "$b" = ternd ]; then
			echo "| **ternd ws/tcp** | | | | **$(ratio "$pw" "$pt")**" \
				"(target ≤ 1.5: $(target "$r" le 1.5)) | | |"
		else
			echo "| mosquitto ws/tcp | | | | $(ratio "$pw" "$pt") | | |"
		fi
	done
	echo
	echo "VmRSS is the broker's resident memory (/proc/PID/status) before" \
		"the first connection and after ${IDLE_SECONDS} s idle with all" \
		"of them; per connection is the growth divided by the number of" \
		"connections. Kernel memory is not in it: TCP sockets and Slab are" \
		"system-wide (/proc/net/sockstat{,6}, /proc/meminfo), so they" \
		"count both ends of every loopback connection and whatever else" \
		"runs on the machine. Idle sockets hold no buffer pages" \
		"(sockstat TCP mem stays near 0)."
}

mkdir -p "$OUT_DIR"
table | tee "$OUT_DIR/latest.md"
