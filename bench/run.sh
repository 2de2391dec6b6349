#!/usr/bin/env bash
# bench/run.sh: tern's benchmark, side by side with Mosquitto (`make bench`).
#
# For every scenario below, runs `tern bench` (build/tern) against a fresh
# ternd and a fresh mosquitto, each started on free loopback ports (one
# MQTT listener, one WebSocket listener, and for TLS an mqtts and a wss
# listener) with the same limits, REPS times (alternating which broker
# goes first), and prints markdown tables of medians with min-max ranges
# and the ratios. The tables are also written to bench/results/latest.md,
# and a run of every scenario (no BENCH_ONLY) writes them into the
# generated section of docs/benchmarks.md.
# docs/benchmarks.md says what each scenario measures.
#
# (a)-(e) are MQTT over TCP; (f)-(j) compare MQTT over WebSocket with MQTT
# over TCP: throughput (f, g), large payloads (h), connection set-up (i) and
# memory per idle connection (j: tcp, ws, mqtts, wss); (k)-(m) do the same
# for TLS (mqtts and wss, with a throwaway CA and server certificate made
# here): throughput (k), handshakes per second (l) and memory per idle TLS
# connection (m). (n) is the matrix of issue 5: point-to-point 10 -> 10,
# fan-out 1 -> 100 and fan-in 100 -> 1 over tcp, ws, mqtts and wss; the
# payload sweep (h) runs 16 B to 1 MiB over the same four transports.
# (o) compares the client side: how fast `tern bench` drives ternd from
# one process against the mosquitto_pub/mosquitto_sub pair.
#
# Issue 9's scenarios, every one for both brokers side by side, REPS runs:
# (n) is now the matrix over tcp, ws, mqtts and wss: point-to-point
# 10 -> 10 and 1000 -> 1000 at QoS 0, 1 and 2, fan-out 1 -> 1000 and
# 20 -> 1000 on t/#, fan-in 1000 -> 1 and 1000 -> $share/g/t/# (10
# members); (h) goes to 8 MiB; (l) has resumed handshakes too (--resume);
# (p) is fixed-rate latency, 100 publishers x 100 msg/s at QoS 1 (mosquitto
# with set_tcp_nodelay true); (q) holds 19,000 idle connections, tcp and ws
# mixed, opened at once by several client processes (the connect storm);
# (r) is ternd with 1 and with 2 worker threads; (s) is durable online
# throughput with persistent sessions, in memory and on disk.
#
# Environment: BUILD (build dir, default build), BENCH_REPS (3),
# BENCH_SECONDS (publishing time per run, 2), TERN_THREADS (ternd worker
# threads, default 2, as issue 9 asks), BENCH_ONLY (scenario letters, e.g. "ab";
# default all, abcdefghijklmnopqrs), BENCH_SWEEP_SECONDS (publishing time per
# run of (h), 2), BENCH_SWEEP_REPS (runs of (h), 3), BENCH_SWEEP_DRAIN
# (longest drain of (h), 3), BENCH_CONNS
# (connections in (i), 1000), BENCH_CONN_RATE (connections/s of (i)'s
# latency run, 500), BENCH_IDLE_CONNS (connections in (j), 10000),
# BENCH_MEM_REPS (runs of (j) and (m), 1), BENCH_MATRIX_SECONDS (publishing
# time per run of (n), 1), BENCH_MATRIX_REPS (runs of (n), 3),
# BENCH_MATRIX_IDS (loads of (n) to run, e.g. "n1 n9"; all),
# BENCH_SPEED_MSGS (messages of (o), 500000), BENCH_TLS_SECONDS (publishing
# time per run of (k), 1),
# BENCH_TLS_DRAIN (longest drain of (k), 2), BENCH_TLS_REPS (runs of (k)
# and (l), 3), BENCH_TLS_CONNS (connections in (l), 1000),
# BENCH_TLS_IDLE_CONNS (connections in (m), 2000), BENCH_TLS_KEY (server
# key of (k)-(m): rsa for RSA 2048, ec for P-256; rsa), BENCH_BUILD (0:
# use the ternd and tern already in BUILD instead of building them),
# BENCH_LAT_SECONDS (publishing time of (p), 3), BENCH_STORM_CONNS
# (connections of (q), 19000), BENCH_STORM_PROCS (client processes of (q),
# half over tcp, half over ws, 4), BENCH_SCALE_SECONDS (publishing time
# of (r) and (s), 2), BENCH_OUT_DIR (where the tables and failed brokers'
# logs go, bench/results), BENCH_STOP_WAIT (seconds a broker has to exit
# after SIGTERM before SIGKILL, 20).
#
# Time, estimated from runs of single scenarios (a whole run was not
# timed): about 35 minutes for every scenario on a quiet 2-core machine;
# (n) is the longest (10 loads x 8 transports x 3 runs, 1 s each plus
# set-up, up to 2,000 connections, and drain: about 3.5 s a run, 14
# minutes), then (h) (120 runs, about 7 minutes). On a loaded machine
# (load average 18) a run of (n) took 8.7 s.
set -eEuo pipefail
# set -e ends the script at the first failing command: the ERR trap (-E
# carries it into functions) notes which, and the EXIT trap (cleanup) says
# it, so that no failure exits silently.
FAILED=""
trap 'FAILED="line $LINENO: \"$BASH_COMMAND\" failed with status $?"' ERR

cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
ROOT=$PWD
BUILD=${BUILD:-build}
REPS=${BENCH_REPS:-3}
SECONDS_PER_RUN=${BENCH_SECONDS:-2}
THREADS=${TERN_THREADS:-2}
ONLY=${BENCH_ONLY:-abcdefghijklmnopqrs}
SWEEP_SECONDS=${BENCH_SWEEP_SECONDS:-2}
SWEEP_REPS=${BENCH_SWEEP_REPS:-3}
SWEEP_DRAIN=${BENCH_SWEEP_DRAIN:-3}
CONNS=${BENCH_CONNS:-1000}
CONN_RATE=${BENCH_CONN_RATE:-500}
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
MEM_REPS=${BENCH_MEM_REPS:-1}
TLS_SECONDS=${BENCH_TLS_SECONDS:-1}
TLS_DRAIN=${BENCH_TLS_DRAIN:-2}
TLS_REPS=${BENCH_TLS_REPS:-3}
TLS_CONNS=${BENCH_TLS_CONNS:-1000}
TLS_IDLE_CONNS=${BENCH_TLS_IDLE_CONNS:-2000}
TLS_KEY=${BENCH_TLS_KEY:-rsa}
MATRIX_SECONDS=${BENCH_MATRIX_SECONDS:-1}
MATRIX_REPS=${BENCH_MATRIX_REPS:-3}
MATRIX_IDS=${BENCH_MATRIX_IDS:-n1 n2 n3 n4 n5 n6 n7 n8 n9 n10}
LAT_SECONDS=${BENCH_LAT_SECONDS:-3}
STORM_CONNS=${BENCH_STORM_CONNS:-19000}
STORM_PROCS=${BENCH_STORM_PROCS:-4}
SCALE_SECONDS=${BENCH_SCALE_SECONDS:-2}
SPEED_MSGS=${BENCH_SPEED_MSGS:-500000}
IDLE_SECONDS=2
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
LOAD=$BUILD/tern
TERND=$BUILD/ternd
OUT_DIR=${BENCH_OUT_DIR:-$ROOT/bench/results}

# Scenario letter | what it is | `tern bench` arguments (the mode first).
SCENARIOS=(
	"a|1 -> 1, QoS 0, 64 B, max rate|pubsub -P 1 -S 1 -q 0 -s 64"
	"b|1 -> 1, QoS 1, 64 B, max rate|pubsub -P 1 -S 1 -q 1 -s 64"
	"c|10 -> 10 on 10 topics, QoS 0, 64 B, max rate|pubsub -P 10 -S 10 -t bench/%i -q 0 -s 64"
	"d|fan-out 1 -> 100, one topic, QoS 0, 64 B, 2000 msg/s|pubsub -P 1 -S 100 -t bench/fan -q 0 -s 64 -r 2000"
	"e|10 -> 10, QoS 1, 64 B, 100 msg/s each (latency)|pubsub -P 10 -S 10 -q 1 -s 64 -I 10"
)

# WebSocket throughput: letter | what | `tern bench` arguments. Each runs
# on ternd over TCP, ternd over WebSocket and mosquitto over WebSocket.
WS_SCENARIOS=(
	"f|ws 1 -> 1, QoS 0, 64 B, max rate|pubsub -P 1 -S 1 -q 0 -s 64"
	"g|ws 1 -> 1, QoS 0, 1 KiB, max rate|pubsub -P 1 -S 1 -q 0 -s 1024"
)
WS_VARIANTS="ternd ternd-ws mosquitto-ws"

# (h) payload sweep: id | payload | `tern bench` arguments; every
# transport of both brokers.
SWEEP=(
	"h16|16 B|pubsub -P 1 -S 1 -q 1 -s 16"
	"h1k|1 KiB|pubsub -P 1 -S 1 -q 1 -s 1024"
	"h64k|64 KiB|pubsub -P 1 -S 1 -q 1 -s 65536"
	"h1m|1 MiB|pubsub -P 1 -S 1 -q 1 -s 1048576"
	"h8m|8 MiB|pubsub -P 1 -S 1 -q 1 -s 8388608"
)
ALL_VARIANTS="ternd ternd-ws mosquitto mosquitto-ws"
# Every transport of both brokers: (h), (j) and (n).
EVERY_VARIANT="ternd ternd-ws ternd-mqtts ternd-wss mosquitto mosquitto-ws mosquitto-mqtts mosquitto-wss"

# (n) the matrix of issue 9: id | what | `tern bench` arguments; every
# transport of both brokers, 64 B. Point-to-point runs at max rate; the
# fan-out and fan-in loads at a fixed rate below what either broker
# manages over TCP (100,000 deliveries/s out, 50,000 messages/s in), so
# that they compare CPU per message and latency rather than overload.
MATRIX=(
	"n1|p2p 10 -> 10, QoS 0, max rate|pubsub -P 10 -S 10 -t bench/%i -q 0 -s 64"
	"n2|p2p 10 -> 10, QoS 1, max rate|pubsub -P 10 -S 10 -t bench/%i -q 1 -s 64"
	"n3|p2p 10 -> 10, QoS 2, max rate|pubsub -P 10 -S 10 -t bench/%i -q 2 -s 64"
	"n4|p2p 1000 -> 1000, QoS 0, max rate|pubsub -P 1000 -S 1000 -t bench/%i -q 0 -s 64"
	"n5|p2p 1000 -> 1000, QoS 1, max rate|pubsub -P 1000 -S 1000 -t bench/%i -q 1 -s 64"
	"n6|p2p 1000 -> 1000, QoS 2, max rate|pubsub -P 1000 -S 1000 -t bench/%i -q 2 -s 64"
	"n7|fan-out 1 -> 1000 on one topic, QoS 0, 100 msg/s|pubsub -P 1 -S 1000 -t bench/fan -q 0 -s 64 -I 10"
	"n8|fan-out 20 -> 1000 on t/#, QoS 0, 20 x 5 msg/s|pubsub -P 20 -S 1000 -t t/%i -f t/# -q 0 -s 64 -I 200"
	"n9|fan-in 1000 -> 1 on t/#, QoS 0, 1000 x 50 msg/s|pubsub -P 1000 -S 1 -t t/%i -f t/# -q 0 -s 64 -I 20"
	"n10|fan-in 1000 -> \$share/g/t/# (10 members), QoS 0, 1000 x 50 msg/s|pubsub -P 1000 -S 10 -t t/%i -f \$share/g/t/# -q 0 -s 64 -I 20"
)

# (p) fixed-rate latency: every transport of both brokers.
LATENCY="p|100 publishers x 100 msg/s -> 100 subscribers, QoS 1, 64 B|pubsub -P 100 -S 100 -t bench/%i -q 1 -s 64 -I 10"

# (r) threads: id | what | `tern bench` arguments; ternd with 1 and with
# 2 worker threads, mosquitto (one thread) as the reference, over TCP.
SCALE=(
	"r1|p2p 10 -> 10, QoS 0, max rate|pubsub -P 10 -S 10 -t bench/%i -q 0 -s 64"
	"r2|p2p 10 -> 10, QoS 1, max rate|pubsub -P 10 -S 10 -t bench/%i -q 1 -s 64"
	"r3|p2p 1000 -> 1000, QoS 1, max rate|pubsub -P 1000 -S 1000 -t bench/%i -q 1 -s 64"
	"r4|fan-out 1 -> 1000, QoS 0, 100 msg/s|pubsub -P 1 -S 1000 -t bench/fan -q 0 -s 64 -I 10"
)
SCALE_VARIANTS="ternd1 ternd2 mosquitto"

# (s) durable online throughput: persistent sessions (MQTT 5, clean start
# 0, session expiry 300 s), QoS 1, subscribers online; brokers without and
# with persistence on disk (-disk).
DURABLE="s|p2p 10 -> 10, QoS 1, 64 B, persistent sessions, max rate|pubsub -P 10 -S 10 -t bench/%i -q 1 -s 64 -V 5 --persistent 300"
DURABLE_VARIANTS="ternd ternd-disk mosquitto mosquitto-disk"

# (k) TLS throughput: id | what | `tern bench` arguments. Each runs on
# ternd over TCP (the reference) and every broker over mqtts and wss.
TLS_SCENARIOS=(
	"k0|1 -> 1, QoS 0, 64 B|pubsub -P 1 -S 1 -q 0 -s 64"
	"k1|1 -> 1, QoS 1, 64 B|pubsub -P 1 -S 1 -q 1 -s 64"
	"k2|1 -> 1, QoS 0, 1 KiB|pubsub -P 1 -S 1 -q 0 -s 1024"
	"k3|1 -> 1, QoS 1, 1 KiB|pubsub -P 1 -S 1 -q 1 -s 1024"
	"k4|1 -> 1, QoS 1, 64 KiB|pubsub -P 1 -S 1 -q 1 -s 65536"
)
TLS_VARIANTS="ternd ternd-mqtts ternd-wss mosquitto-mqtts mosquitto-wss"

# Files each broker may need: 10000 idle connections in (j), and tern
# bench.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

die() {
	echo "bench: $*" >&2
	FAILED=""
	exit 1
}

MOSQUITTO=$(command -v mosquitto || true)
[ -z "$MOSQUITTO" ] && [ -x /usr/sbin/mosquitto ] && MOSQUITTO=/usr/sbin/mosquitto
[ -n "$MOSQUITTO" ] || die "mosquitto not found (make deps installs it)"

if [ "${BENCH_BUILD:-1}" != 0 ]; then
	echo "bench: building $BUILD" >&2
	cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$BUILD" -j"${JOBS:-2}" --target ternd tern_cli >/dev/null
fi
if [ ! -x "$LOAD" ] || [ ! -x "$TERND" ]; then
	die "build did not produce $LOAD and $TERND"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tern-bench.XXXXXX")
TLS_DIR=""
BROKER_PID=""
# The EXIT trap: the script's status is the one it exits with, not that of
# the trap's last command (which once turned every run without TLS, such
# as BENCH_ONLY=i, into a silent exit 1).
cleanup() {
	local rc=$?
	if [ "$rc" -ne 0 ] && [ -n "$FAILED" ]; then
		echo "bench: stopped at $FAILED" >&2
	fi
	if [ -n "$BROKER_PID" ]; then
		kill -KILL "$BROKER_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
	if [ -n "$TLS_DIR" ]; then
		rm -rf "$TLS_DIR"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# make_tls: a throwaway CA and a server certificate for localhost,
# 127.0.0.1 and ::1 in TLS_DIR (BENCH_TLS_KEY: RSA 2048 or P-256). The
# directory and key are world-readable: mosquitto started as root reads
# them as its own user. Everything is deleted at exit.
make_tls() {
	local alg=(-newkey rsa:2048)
	[ "$TLS_KEY" = ec ] && alg=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
	TLS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tern-bench-tls.XXXXXX")
	chmod 755 "$TLS_DIR"
	openssl req -x509 "${alg[@]}" -nodes -days 2 -subj "/CN=bench CA" \
		-keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.crt" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	openssl req "${alg[@]}" -nodes -subj "/CN=localhost" \
		-keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.csr" \
		2>/dev/null
	printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
		"extendedKeyUsage=serverAuth" >"$TLS_DIR/server.ext"
	openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.crt" \
		-CAkey "$TLS_DIR/ca.key" -CAcreateserial -days 2 \
		-extfile "$TLS_DIR/server.ext" -out "$TLS_DIR/server.crt" \
		2>/dev/null
	chmod 644 "$TLS_DIR/server.key"
	[ -s "$TLS_DIR/server.crt" ] || die "could not make a TLS certificate"
}

# start_broker KIND LOG: starts ternd or mosquitto on free ports and sets
# BROKER_PID, PORT (MQTT) and WSPORT (MQTT over WebSocket, path /mqtt),
# and with WITH_TLS=1 also TLSPORT (mqtts) and WSSPORT (wss, path /mqtt).
# Retries with other ports if the first are taken. Mosquitto 2.0.11 serves
# WebSocket only next to a plain listener, and binds it to every address
# (its websockets listener ignores the bind address).
# KIND ternd1, ternd2...: ternd with that many worker threads (else
# TERN_THREADS). BROKER_DISK=1: persistence on, in a fresh directory under
# WORK; BROKER_NODELAY=1: mosquitto with set_tcp_nodelay true (ternd always
# sets TCP_NODELAY).
WITH_TLS=0
BROKER_DISK=0
BROKER_NODELAY=0
start_broker() {
	local kind=$1 log=$2 conf=$WORK/broker.conf tries=5 wsbind=127.0.0.1
	local ports threads=$THREADS store=$WORK/store
	case $kind in ternd[0-9]*)
		threads=${kind#ternd}
		kind=ternd
		;;
	esac
	[ "$kind" = mosquitto ] && wsbind=""
	while [ $tries -gt 0 ]; do
		tries=$((tries - 1))
		PORT=$(free_port)
		WSPORT=$(free_port)
		TLSPORT=$(free_port)
		WSSPORT=$(free_port)
		ports="$PORT $WSPORT"
		[ "$WITH_TLS" = 1 ] && ports="$ports $TLSPORT $WSSPORT"
		# shellcheck disable=SC2086
		[ "$(printf '%s\n' $ports | sort -u | wc -l)" = \
			"$(echo $ports | wc -w)" ] || continue
		{
			echo "listener $PORT 127.0.0.1"
			echo "listener $WSPORT $wsbind"
			echo "protocol websockets"
			if [ "$WITH_TLS" = 1 ]; then
				echo "listener $TLSPORT 127.0.0.1"
				echo "certfile $TLS_DIR/server.crt"
				echo "keyfile $TLS_DIR/server.key"
				echo "listener $WSSPORT $wsbind"
				echo "protocol websockets"
				echo "certfile $TLS_DIR/server.crt"
				echo "keyfile $TLS_DIR/server.key"
			fi
			echo "allow_anonymous true"
			echo "max_queued_messages 100000"
			echo "max_inflight_messages 20"
			echo "max_packet_size 20000000"
			if [ "$BROKER_DISK" = 1 ]; then
				rm -rf "$store"
				mkdir -p "$store"
				# mosquitto started as root writes as its own user.
				chmod 777 "$store"
				echo "persistence true"
				echo "persistence_location $store/"
			else
				echo "persistence false"
			fi
			if [ "$BROKER_NODELAY" = 1 ] && [ "$kind" = mosquitto ]; then
				echo "set_tcp_nodelay true"
			fi
		} >"$conf"
		if [ "$kind" = ternd ]; then
			"$TERND" -c "$conf" --threads "$threads" >"$log" 2>&1 &
		else
			"$MOSQUITTO" -c "$conf" >"$log" 2>&1 &
		fi
		BROKER_PID=$!
		# shellcheck disable=SC2086
		wait_ports "$BROKER_PID" 100 $ports && return 0
		stop_broker >/dev/null 2>&1 || true
	done
	die "$kind did not start; its log: $(tail -3 "$log")"
}

# Stops the broker; fails if it had already died, did not exit within
# STOP_WAIT seconds of SIGTERM (then SIGKILL) or exited with an error, and
# says which in BROKER_STOP. A broker flooded by a max-rate run (n4 over
# TLS: mosquitto still working through megabytes of input) may take
# seconds to see the signal; 5 s once turned that into a SIGKILL whose
# cause the report did not give.
STOP_WAIT=${BENCH_STOP_WAIT:-20}
stop_broker() {
	local rc=0 alive=1 i
	BROKER_STOP=""
	if ! kill -0 "$BROKER_PID" 2>/dev/null; then
		rc=1
		alive=0
	fi
	kill -TERM "$BROKER_PID" 2>/dev/null || true
	for ((i = 0; i < STOP_WAIT * 20; i++)); do
		kill -0 "$BROKER_PID" 2>/dev/null || break
		sleep 0.05
	done
	if kill -KILL "$BROKER_PID" 2>/dev/null; then
		rc=1
		BROKER_STOP="did not exit within $STOP_WAIT s of SIGTERM; killed with SIGKILL"
	fi
	BROKER_RC=0
	wait "$BROKER_PID" 2>/dev/null || BROKER_RC=$?
	if [ "$alive" = 0 ]; then
		BROKER_STOP="had died before the end of the run (exit status $BROKER_RC)"
	elif [ -z "$BROKER_STOP" ] && [ "$BROKER_RC" -ne 0 ]; then
		BROKER_STOP="exited with status $BROKER_RC after SIGTERM"
	fi
	[ "$BROKER_RC" -ne 0 ] && rc=1
	BROKER_PID=""
	return $rc
}

# run_load VARIANT ID REP MODE ARGS...: one `tern bench MODE` measurement
# against a fresh broker.
# VARIANT is ternd or mosquitto (MQTT over TCP), or either with -ws (over
# WebSocket), -mqtts (over TLS) or -wss (WebSocket over TLS; both with
# WITH_TLS=1, as localhost, verified against the throwaway CA). The JSON
# line of tern bench goes to $WORK/ID.VARIANT.REP.json. Problems go to
# PROBLEMS.
PROBLEMS=$WORK/problems
: >"$PROBLEMS"
run_load() {
	local var=$1 id=$2 rep=$3 mode=$4
	shift 4
	local kind=${var%%-*} base=$WORK/$id.$var.$rep rc=0 url tls=()
	local BROKER_DISK=0
	case $var in *-disk) BROKER_DISK=1 ;; esac
	start_broker "$kind" "$base.log"
	case $var in
	*-ws) url=ws://127.0.0.1:$WSPORT/mqtt ;;
	*-mqtts) url=mqtts://localhost:$TLSPORT ;;
	*-wss) url=wss://localhost:$WSSPORT/mqtt ;;
	*) url=mqtt://127.0.0.1:$PORT ;;
	esac
	case $var in *-mqtts | *-wss) tls=(--cafile "$TLS_DIR/ca.crt") ;; esac
	# RESUME=1: TLS connections resume the first one's session, which
	# only shortens set-up (not measured) in runs with many connections.
	if [ "${RESUME:-0}" = 1 ] && [ ${#tls[@]} -gt 0 ]; then
		tls+=(--resume)
	fi
	"$LOAD" bench "$mode" -L "$url" "${tls[@]}" --pid "$BROKER_PID" \
		--quiet "$@" \
		>"$base.out" 2>"$base.err" || rc=$?
	if ! stop_broker; then
		echo "- ($id) $var rep $rep: the broker $BROKER_STOP (log" \
			"ends: \"$(tail -1 "$base.log" | cut -c1-120)\");" \
			"command: tern bench $mode -L $url ${tls[*]} $*" >>"$PROBLEMS"
		mkdir -p "$OUT_DIR"
		cp "$base.log" "$OUT_DIR/$id.$var.$rep.broker.log"
	fi
	if [ $rc -ne 0 ]; then
		echo "- ($id) $var rep $rep: tern bench $mode -L $url ${tls[*]} $*" \
			"exit $rc:" \
			"$(tr '\n' ' ' <"$base.err" | cut -c1-300)" >>"$PROBLEMS"
	fi
	grep '^{' "$base.out" >"$base.json" || : >"$base.json"
	printf '  %-4s %-15s rep %d: %s\n' "$id" "$var" "$rep" \
		"$(grep -m1 -E '^  (delivered|up) ' "$base.out" |
			sed 's/^ *//')" >&2
}

# run_one KIND LETTER REP MODE ARGS...: a run of (a)-(e), over TCP.
run_one() {
	local kind=$1 letter=$2 rep=$3 mode=$4
	shift 4
	run_load "$kind" "$letter" "$rep" "$mode" -d "$SECONDS_PER_RUN" "$@"
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

# jget KEY FILE: a number from a JSON line of tern bench.
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

# TLS, with a throwaway CA and server certificate, for (h) and (j)-(n):
# the brokers get an mqtts and a wss listener besides the others.
if [[ $ONLY == *[hjklmnp]* ]]; then
	make_tls
	WITH_TLS=1
fi

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
			run_load "$var" "$letter" "$rep" $args -d "$SECONDS_PER_RUN"
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
			for var in $(rotate "$rep" $EVERY_VARIANT); do
				# shellcheck disable=SC2086
				RESUME=1 run_load "$var" "$id" "$rep" $args \
					-d "$SWEEP_SECONDS" --drain "$SWEEP_DRAIN"
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
			run_load "$var" i "$rep" conn -c "$CONNS" -r "$CONN_RATE"
			run_load "$var" imax "$rep" conn -c "$CONNS"
		done
	done
fi

# (j): IDLE_CONNS idle connections over every transport, held
# IDLE_SECONDS; broker VmRSS before and after.
if [[ $ONLY == *j* ]]; then
	echo "bench: (j) memory, $IDLE_CONNS idle connections" >&2
	for rep in $(seq "$MEM_REPS"); do
		# shellcheck disable=SC2086
		for var in $(rotate "$rep" $EVERY_VARIANT); do
			run_load "$var" j "$rep" conn -c "$IDLE_CONNS" \
				--idle "$IDLE_SECONDS"
		done
	done
fi

# (k): TLS_SECONDS of publishing, at most TLS_DRAIN of drain.
for s in "${TLS_SCENARIOS[@]}"; do
	IFS='|' read -r id desc args <<<"$s"
	[[ $ONLY == *k* ]] || break
	echo "bench: (k) TLS $desc, max rate" >&2
	for rep in $(seq "$TLS_REPS"); do
		# shellcheck disable=SC2086
		for var in $(rotate "$rep" $TLS_VARIANTS); do
			# shellcheck disable=SC2086
			run_load "$var" "$id" "$rep" $args -d "$TLS_SECONDS" \
				--drain "$TLS_DRAIN"
		done
	done
done

# (l): TLS_CONNS new mqtts connections as fast as possible (at most 100
# setting up at once), full handshakes (l), then resuming the first
# connection's session (lr: the first goes alone and is counted).
if [[ $ONLY == *l* ]]; then
	echo "bench: (l) TLS handshakes, $TLS_CONNS connections" >&2
	for rep in $(seq "$TLS_REPS"); do
		for var in $(rotate "$rep" ternd-mqtts mosquitto-mqtts); do
			run_load "$var" l "$rep" conn -c "$TLS_CONNS"
			run_load "$var" lr "$rep" conn -c "$TLS_CONNS" --resume
		done
	done
fi

# (m): TLS_IDLE_CONNS idle connections over TCP and over TLS, held
# IDLE_SECONDS; broker VmRSS before and after.
if [[ $ONLY == *m* ]]; then
	echo "bench: (m) memory, $TLS_IDLE_CONNS idle TLS connections" >&2
	for rep in $(seq "$MEM_REPS"); do
		for var in $(rotate "$rep" ternd ternd-mqtts mosquitto \
			mosquitto-mqtts); do
			run_load "$var" m "$rep" conn -c "$TLS_IDLE_CONNS" \
				--idle "$IDLE_SECONDS"
		done
	done
fi

# (n): the matrix, every transport of both brokers. The drain is at most
# 3 s at QoS 1 and 2 (1000 publishers have up to 32,000 messages in
# flight) and 1 s at QoS 0, whose backlog at max rate may take a broker
# far longer to deliver (or drop) and whose loss is not an error.
if [[ $ONLY == *n* ]]; then
	for s in "${MATRIX[@]}"; do
		IFS='|' read -r id desc args <<<"$s"
		case " $MATRIX_IDS " in *" $id "*) ;; *) continue ;; esac
		echo "bench: (n) $desc" >&2
		drain=3
		case $args in *"-q 0"*) drain=1 ;; esac
		for rep in $(seq "$MATRIX_REPS"); do
			# shellcheck disable=SC2086
			for var in $(rotate "$rep" $EVERY_VARIANT); do
				# shellcheck disable=SC2086
				RESUME=1 run_load "$var" "$id" "$rep" $args \
					-d "$MATRIX_SECONDS" --drain "$drain"
			done
		done
	done
fi

# (p): fixed-rate latency over every transport; mosquitto with
# set_tcp_nodelay true, as ternd always sets TCP_NODELAY.
if [[ $ONLY == *p* ]]; then
	IFS='|' read -r id desc args <<<"$LATENCY"
	echo "bench: (p) $desc" >&2
	for rep in $(seq "$REPS"); do
		# shellcheck disable=SC2086
		for var in $(rotate "$rep" $EVERY_VARIANT); do
			# shellcheck disable=SC2086
			BROKER_NODELAY=1 RESUME=1 run_load "$var" p "$rep" $args \
				-d "$LAT_SECONDS" --drain 2
		done
	done
fi

# (r): ternd with 1 and with 2 worker threads, and mosquitto, over TCP.
if [[ $ONLY == *r* ]]; then
	for s in "${SCALE[@]}"; do
		IFS='|' read -r id desc args <<<"$s"
		echo "bench: (r) $desc" >&2
		for rep in $(seq "$REPS"); do
			# shellcheck disable=SC2086
			for var in $(rotate "$rep" $SCALE_VARIANTS); do
				# shellcheck disable=SC2086
				run_load "$var" "$id" "$rep" $args \
					-d "$SCALE_SECONDS" --drain 2
			done
		done
	done
fi

# (s): persistent sessions, brokers in memory and on disk.
if [[ $ONLY == *s* ]]; then
	IFS='|' read -r id desc args <<<"$DURABLE"
	echo "bench: (s) $desc" >&2
	for rep in $(seq "$REPS"); do
		# shellcheck disable=SC2086
		for var in $(rotate "$rep" $DURABLE_VARIANTS); do
			# shellcheck disable=SC2086
			run_load "$var" s "$rep" $args -d "$SCALE_SECONDS" --drain 3
		done
	done
fi

# (q): STORM_CONNS idle connections opened at once by STORM_PROCS client
# processes (a process may hold at most 20,000 files here, and one client
# process would measure itself), alternately over TCP and WebSocket. Once
# the broker holds them all (counted in /proc/PID/fd) and IDLE_SECONDS
# more have passed, its VmRSS and the kernel's socket figures are read and
# the clients told to stop (SIGTERM: each reports and disconnects). The
# storm rate is every connection over the time from the start to the
# slowest process's last CONNACK.
fd_count() {
	local n
	n=$(find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l) || true
	echo "${n:-0}"
}
sock_field() { # sockstat KEY: the TCP line's value, v4 and v6 together
	awk -v k="$1" '$1 ~ /^TCP6?:$/ { for (i = 2; i < NF; i++)
		if ($i == k) s += $(i + 1) } END { print s + 0 }' \
		/proc/net/sockstat /proc/net/sockstat6 2>/dev/null
}
mem_field() { # /proc/meminfo or /proc/PID/status KEY: kB
	awk -v k="$2:" '$1 == k { print $2; exit }' "$1" 2>/dev/null
}
run_storm() {
	local kind=$1 rep=$2 base=$WORK/q.$1.$2 per i url t pids=() fd0 want
	local rss0 rss1 mem0 mem1 slab0 slab1 tw0 t0 waited=0 up
	start_broker "$kind" "$base.log"
	per=$((STORM_CONNS / STORM_PROCS))
	fd0=$(fd_count "$BROKER_PID")
	want=$((fd0 + per * STORM_PROCS))
	rss0=$(mem_field "/proc/$BROKER_PID/status" VmRSS)
	mem0=$(sock_field mem)
	slab0=$(mem_field /proc/meminfo Slab)
	t0=$(date +%s%N)
	for i in $(seq 0 $((STORM_PROCS - 1))); do
		if [ $((i % 2)) = 0 ]; then
			t=tcp url=mqtt://127.0.0.1:$PORT
		else
			t=ws url=ws://127.0.0.1:$WSPORT/mqtt
		fi
		"$LOAD" bench conn -L "$url" -c "$per" --idle 600 --quiet \
			>"$base.$i.$t.out" 2>"$base.$i.$t.err" &
		pids+=($!)
	done
	# Every connection up (or a client gone, or 120 s).
	while [ "$(fd_count "$BROKER_PID")" -lt "$want" ] &&
		[ "$waited" -lt 1200 ]; do
		up=0
		for i in "${pids[@]}"; do kill -0 "$i" 2>/dev/null && up=$((up + 1)); done
		[ "$up" = "${#pids[@]}" ] || break
		sleep 0.1
		waited=$((waited + 1))
	done
	sleep "$IDLE_SECONDS"
	rss1=$(mem_field "/proc/$BROKER_PID/status" VmRSS)
	mem1=$(sock_field mem)
	slab1=$(mem_field /proc/meminfo Slab)
	tw0=$(sock_field inuse)
	kill -TERM "${pids[@]}" 2>/dev/null || true
	for i in "${pids[@]}"; do wait "$i" 2>/dev/null || true; done
	if ! stop_broker; then
		echo "- (q) $kind rep $rep: the broker $BROKER_STOP" \
			"(log ends: \"$(tail -1 "$base.log" | cut -c1-120)\")" \
			>>"$PROBLEMS"
	fi
	for f in "$base".*.out; do
		grep -q '^{' "$f" && continue
		echo "- (q) $kind rep $rep: $(basename "$f" .out) gave no" \
			"report: $(tr '\n' ' ' <"${f%.out}.err" | cut -c1-200)" \
			>>"$PROBLEMS"
	done
	# One JSON line for the run, from the clients' lines and the above.
	cat "$base".*.out | grep '^{' | awk -v n="$((per * STORM_PROCS))" \
		-v rss0="$rss0" -v rss1="$rss1" -v mem0="$mem0" -v mem1="$mem1" \
		-v slab0="$slab0" -v slab1="$slab1" -v socks="$tw0" '
		function num(k,   m) { if (match($0, "\"" k "\":[-0-9.e+]*")) {
				m = substr($0, RSTART, RLENGTH); sub(/.*:/, "", m)
				return m + 0 } return -1 }
		function str(k,   m) { if (match($0, "\"" k "\":\"[a-z]*\"")) {
				m = substr($0, RSTART, RLENGTH); sub(/.*:/, "", m)
				gsub(/"/, "", m); return m } return "" }
		{ t = str("transport"); ready += num("ready"); err += num("errors")
		  if (num("setup_s") > slow) slow = num("setup_s")
		  p50[t] += num("setup_p50_us"); k[t]++
		  if (num("setup_p99_us") > p99[t]) p99[t] = num("setup_p99_us") }
		END { printf "{\"connections\":%d,\"ready\":%d,\"errors\":%d,", n, ready, err
		  printf "\"storm_conn_per_s\":%.1f,", (slow > 0 ? ready / slow : 0)
		  printf "\"storm_s\":%.3f,", slow
		  printf "\"tcp_setup_p50_us\":%.1f,\"tcp_setup_p99_us\":%.1f,", (k["tcp"] ? p50["tcp"] / k["tcp"] : -1), (k["tcp"] ? p99["tcp"] : -1)
		  printf "\"ws_setup_p50_us\":%.1f,\"ws_setup_p99_us\":%.1f,", (k["ws"] ? p50["ws"] / k["ws"] : -1), (k["ws"] ? p99["ws"] : -1)
		  printf "\"rss_before_kb\":%d,\"rss_idle_kb\":%d,", rss0, rss1
		  printf "\"rss_per_conn_b\":%.0f,", (ready ? (rss1 - rss0) * 1024 / ready : -1)
		  printf "\"tcp_sockets\":%d,\"tcp_mem_pages\":%d,", socks, mem1 - mem0
		  printf "\"slab_kb\":%d,\"kernel_per_conn_b\":%.0f}\n", slab1 - slab0, (ready ? (slab1 - slab0 + (mem1 - mem0) * 4) * 1024 / ready : -1) }' \
		>"$base.json"
	printf '  q    %-15s rep %d: %s\n' "$kind" "$rep" "$(cut -c1-160 "$base.json")" >&2
}
if [[ $ONLY == *q* ]]; then
	echo "bench: (q) $STORM_CONNS idle connections, tcp and ws, from" \
		"$STORM_PROCS processes" >&2
	for rep in $(seq "$REPS"); do
		for kind in $(rotate "$rep" ternd mosquitto); do
			run_storm "$kind" "$rep"
		done
	done
fi

# (o): the client side, from one process each, QoS 0, 64 B, through ternd
# over TCP: `tern bench pubsub` 1 -> 1 at max rate, against
# mosquitto_sub -C N and mosquitto_pub, fed N lines (-l) or one message
# repeated (--repeat N). The pair's rate is what mosquitto_sub printed over
# the time from mosquitto_pub's start to the last line (QoS 0 may be
# dropped when mosquitto_sub falls behind: its output is watched every
# 0.1 s, and a second without a new line ends the wait).
run_pair() {
	local how=$1 rep=$2 base=$WORK/o.$1.$2 sub t0 t1 n last=-1 still=0
	start_broker ternd "$base.log"
	mosquitto_sub -h 127.0.0.1 -p "$PORT" -t speed -q 0 -C "$SPEED_MSGS" \
		>"$base.sub" 2>/dev/null &
	sub=$!
	sleep 0.5
	t0=$(date +%s%N)
	t1=$t0
	if [ "$how" = lines ]; then
		mosquitto_pub -h 127.0.0.1 -p "$PORT" -t speed -q 0 -l \
			<"$WORK/lines"
	else
		mosquitto_pub -h 127.0.0.1 -p "$PORT" -t speed -q 0 \
			-m "$(printf '%064d' 0)" --repeat "$SPEED_MSGS"
	fi
	while :; do
		n=$(wc -l <"$base.sub")
		if [ "$n" != "$last" ]; then
			last=$n
			still=0
			t1=$(date +%s%N)
		else
			still=$((still + 1))
		fi
		kill -0 "$sub" 2>/dev/null || break
		[ "$still" -ge 10 ] && break
		sleep 0.1
	done
	kill "$sub" 2>/dev/null || true
	wait "$sub" 2>/dev/null || true
	n=$(wc -l <"$base.sub")
	awk -v n="$n" -v t="$((t1 - t0))" -v N="$SPEED_MSGS" 'BEGIN { printf \
		"{\"qos\":0,\"published\":%d,\"delivered\":%d,\"lost\":%d,\"elapsed_s\":%.3f,\"delivered_per_s\":%.1f}\n",
		N, n, N - n, t / 1e9, n / (t / 1e9) }' >"$WORK/o.$how.$rep.json"
	stop_broker || echo "- (o) ternd: the broker $BROKER_STOP" >>"$PROBLEMS"
	printf '  o    %-15s rep %d: %s\n' "mosquitto-$how" "$rep" \
		"$(cat "$WORK/o.$how.$rep.json")" >&2
}
if [[ $ONLY == *o* ]]; then
	echo "bench: (o) client speed, QoS 0, 64 B, $SPEED_MSGS messages" >&2
	awk -v n="$SPEED_MSGS" 'BEGIN { for (i = 0; i < n; i++)
		printf "%064d\n", i }' >"$WORK/lines"
	for rep in $(seq "$REPS"); do
		run_load ternd o "$rep" pubsub -P 1 -S 1 -q 0 -s 64 \
			-d "$SECONDS_PER_RUN"
		run_pair lines "$rep"
		run_pair repeat "$rep"
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
	echo "- $REPS runs of ${SECONDS_PER_RUN} s per scenario and broker" \
		"(shorter where a table says so);" \
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
	if [[ $ONLY == *n* ]]; then
		matrix_table
	fi
	if [[ $ONLY == *p* ]]; then
		latency_table
	fi
	if [[ $ONLY == *q* ]]; then
		storm_table
	fi
	if [[ $ONLY == *r* ]]; then
		scale_table
	fi
	if [[ $ONLY == *s* ]]; then
		durable_table
	fi
	if [[ $ONLY == *o* ]]; then
		speed_table
	fi
	if [[ $ONLY == *[klm]* ]]; then
		echo
		echo "## MQTT over TLS"
		echo
		echo "Server certificate: $(openssl x509 -in "$TLS_DIR/server.crt" \
			-noout -text | grep -m1 'Public-Key' | sed 's/^ *//'), signed" \
			"by a throwaway CA; tern bench verifies the chain and the" \
			"host name (localhost, also sent as SNI)."
	fi
	if [[ $ONLY == *k* ]]; then
		tls_table
	fi
	if [[ $ONLY == *l* ]]; then
		hs_table
	fi
	if [[ $ONLY == *m* ]]; then
		tls_mem_table
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
	case $1 in
	*-ws) echo WebSocket ;;
	*-mqtts) echo TLS ;;
	*-wss) echo "WebSocket/TLS" ;;
	*) echo TCP ;;
	esac
}

# tail_of ID VARIANT: how the runs' drains ended (complete, idle, timeout).
tail_of() {
	grep -ho '"tail":"[a-z]*"' "$WORK/$1.$2".*.json 2>/dev/null |
		cut -d'"' -f4 | sort | uniq -c |
		awk '{ printf "%s%s%s", (NR > 1 ? ", " : ""),
			($1 > 1 ? $1 "× " : ""), $2 }'
}

# (k): TLS throughput; ternd over TCP as the reference.
tls_table() {
	local s id desc args var rt rm rw cm cw mm mw r ct
	echo
	echo "### (k) TLS throughput, 1 -> 1, max rate, ${TLS_SECONDS} s" \
		"(+ at most ${TLS_DRAIN} s drain)"
	echo
	echo "| load | broker | transport | delivered msg/s |" \
		"broker CPU µs/msg | tern bench CPU µs/msg | latency p50 |" \
		"latency p99 | lost (max) | drain |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	for s in "${TLS_SCENARIOS[@]}"; do
		IFS='|' read -r id desc args <<<"$s"
		for var in $TLS_VARIANTS; do
			echo "| $desc | ${var%%-*} | $(transport_of "$var")" \
				"| $(REPS=$TLS_REPS cell fmt_rate "$id" "$var" delivered_per_s)" \
				"| $(REPS=$TLS_REPS cell fmt_cpu "$id" "$var" broker_cpu_us_per_msg)" \
				"| $(fmt_cpu "$(median "$id" "$var" client_cpu_us_per_msg)")" \
				"| $(fmt_lat "$(median "$id" "$var" lat_p50_us)")" \
				"| $(fmt_lat "$(median "$id" "$var" lat_p99_us)")" \
				"| $(lost "$id" "$var") | $(tail_of "$id" "$var") |"
		done
	done
	echo
	echo "Targets: ternd over TLS / ternd over TCP in msg/s ≥ 0.8;" \
		"ternd / mosquitto in broker CPU µs/msg on the same TLS" \
		"transport ≤ 0.5 (medians)."
	echo
	echo "| load | ternd mqtts/tcp msg/s | ternd wss/tcp msg/s |" \
		"ternd/mosquitto CPU, mqtts | ternd/mosquitto CPU, wss |" \
		"ternd/mosquitto msg/s, mqtts | ternd/mosquitto msg/s, wss |" \
		"ternd CPU mqtts/tcp | ternd CPU wss/tcp |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	for s in "${TLS_SCENARIOS[@]}"; do
		IFS='|' read -r id desc args <<<"$s"
		rt=$(median "$id" ternd delivered_per_s)
		rm=$(median "$id" ternd-mqtts delivered_per_s)
		rw=$(median "$id" ternd-wss delivered_per_s)
		mm=$(median "$id" mosquitto-mqtts delivered_per_s)
		mw=$(median "$id" mosquitto-wss delivered_per_s)
		cm=$(ratio_of "$(median "$id" ternd-mqtts broker_cpu_us_per_msg)" \
			"$(median "$id" mosquitto-mqtts broker_cpu_us_per_msg)")
		cw=$(ratio_of "$(median "$id" ternd-wss broker_cpu_us_per_msg)" \
			"$(median "$id" mosquitto-wss broker_cpu_us_per_msg)")
		r="| $desc"
		r="$r | $(ratio "$rm" "$rt") ($(target "$(ratio_of "$rm" "$rt")" ge 0.8))"
		r="$r | $(ratio "$rw" "$rt") ($(target "$(ratio_of "$rw" "$rt")" ge 0.8))"
		r="$r | $(ratio "$cm" 1) ($(target "$cm" le 0.5))"
		r="$r | $(ratio "$cw" 1) ($(target "$cw" le 0.5))"
		r="$r | $(ratio "$rm" "$mm") | $(ratio "$rw" "$mw")"
		ct=$(median "$id" ternd broker_cpu_us_per_msg)
		r="$r | $(ratio "$(median "$id" ternd-mqtts broker_cpu_us_per_msg)" "$ct")"
		r="$r | $(ratio "$(median "$id" ternd-wss broker_cpu_us_per_msg)" "$ct") |"
		echo "$r"
	done
}

# (l): TLS handshakes per second, full (l) and resumed (lr).
hs_table() {
	local var id
	echo
	echo "### (l) TLS handshakes: $TLS_CONNS new mqtts connections," \
		"as fast as possible (≤ 100 setting up at once)"
	echo
	echo "| broker | resumption | connections/s | set-up p50 / p99 |" \
		"broker CPU µs/connection | tern bench CPU µs/connection |" \
		"resumed |"
	echo "| --- | --- | --- | --- | --- | --- | --- |"
	for id in l lr; do
		for var in ternd-mqtts mosquitto-mqtts; do
			echo "| ${var%%-*} | $([ $id = l ] && echo off || echo on)" \
				"| $(REPS=$TLS_REPS cell fmt_rate $id "$var" conn_per_s)" \
				"| $(fmt_lat "$(median $id "$var" setup_p50_us)") /" \
				"$(fmt_lat "$(median $id "$var" setup_p99_us)")" \
				"| $(REPS=$TLS_REPS cell fmt_cpu $id "$var" broker_cpu_us_per_conn)" \
				"| $(fmt_cpu "$(median $id "$var" client_cpu_us_per_conn)")" \
				"| $(median $id "$var" tls_resumed) of $TLS_CONNS |"
		done
		echo "| **ternd/mosquitto** | $([ $id = l ] && echo off || echo on)" \
			"| **$(ratio "$(median $id ternd-mqtts conn_per_s)" \
				"$(median $id mosquitto-mqtts conn_per_s)")** | |" \
			"**$(ratio "$(median $id ternd-mqtts broker_cpu_us_per_conn)" \
				"$(median $id mosquitto-mqtts broker_cpu_us_per_conn)")** | | |"
	done
	echo
	echo "Connections/s: connections up over the time from the first" \
		"connect() to the last CONNACK; set-up: connect() to CONNACK," \
		"TCP and TLS handshakes and CONNECT included. Broker CPU is" \
		"utime+stime over the same time, per connection (10 ms ticks)." \
		"With resumption (tern bench --resume) the first connection" \
		"goes alone with a full handshake, and every other one offers" \
		"its session (a TLS 1.3 ticket)."
}

# (m): memory per idle TLS connection.
tls_mem_table() {
	local var b pt ps
	echo
	echo "### (m) memory, $TLS_IDLE_CONNS idle connections held" \
		"${IDLE_SECONDS} s"
	echo
	echo "| broker | transport | VmRSS before | VmRSS with connections |" \
		"per connection | Slab (system) |"
	echo "| --- | --- | --- | --- | --- | --- |"
	for var in ternd ternd-mqtts mosquitto mosquitto-mqtts; do
		echo "| ${var%%-*} | $(transport_of "$var")" \
			"| $(fmt_kib "$(median m "$var" rss_before_kb)")" \
			"| $(fmt_kib "$(median m "$var" rss_idle_kb)")" \
			"| $(fmt_bytes "$(median m "$var" rss_per_conn_b)")" \
			"| +$(fmt_kib "$(awk -v a="$(median m "$var" slab_idle_kb)" \
				-v b="$(median m "$var" slab_before_kb)" 'BEGIN { print a - b }')") |"
	done
	for b in ternd mosquitto; do
		pt=$(median m "$b" rss_per_conn_b)
		ps=$(median m "$b-mqtts" rss_per_conn_b)
		echo "| $b TLS/TCP | | | | $(ratio "$ps" "$pt")" \
			"(+$(fmt_bytes "$(awk -v a="$ps" -v b="$pt" \
				'BEGIN { print a - b }')")) | |"
	done
	echo "| **ternd/mosquitto, TLS** | | | |" \
		"**$(ratio "$(median m ternd-mqtts rss_per_conn_b)" \
			"$(median m mosquitto-mqtts rss_per_conn_b)")** | |"
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

# (h): payload sweep, every transport of both brokers.
sweep_table() {
	local s id desc args var
	echo
	echo "### (h) payload sweep, QoS 1, 1 -> 1, ${SWEEP_SECONDS} s" \
		"(+ at most ${SWEEP_DRAIN} s drain), $SWEEP_REPS runs"
	echo
	echo "| payload | broker | transport | delivered msg/s |" \
		"published | delivered | lost | broker CPU µs/msg | drain |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	for s in "${SWEEP[@]}"; do
		IFS='|' read -r id desc args <<<"$s"
		for var in $EVERY_VARIANT; do
			echo "| $desc | ${var%%-*} | $(transport_of "$var")" \
				"| $(REPS=$SWEEP_REPS cell fmt_rate "$id" "$var" delivered_per_s)" \
				"| $(median "$id" "$var" published)" \
				"| $(median "$id" "$var" delivered)" \
				"| $(lost "$id" "$var")" \
				"| $(fmt_cpu "$(median "$id" "$var" broker_cpu_us_per_msg)")" \
				"| $(tail_of "$id" "$var") |"
		done
		echo "| $desc | **ws/tcp** | |" \
			"ternd $(ratio "$(median "$id" ternd-ws delivered_per_s)" \
				"$(median "$id" ternd delivered_per_s)")," \
			"mosquitto $(ratio "$(median "$id" mosquitto-ws delivered_per_s)" \
				"$(median "$id" mosquitto delivered_per_s)") | | | | | |"
		echo "| $desc | **ternd/mosquitto** | |" \
			"tcp $(ratio "$(median "$id" ternd delivered_per_s)" \
				"$(median "$id" mosquitto delivered_per_s)")," \
			"ws $(ratio "$(median "$id" ternd-ws delivered_per_s)" \
				"$(median "$id" mosquitto-ws delivered_per_s)")," \
			"tls $(ratio "$(median "$id" ternd-mqtts delivered_per_s)" \
				"$(median "$id" mosquitto-mqtts delivered_per_s)")," \
			"wss $(ratio "$(median "$id" ternd-wss delivered_per_s)" \
				"$(median "$id" mosquitto-wss delivered_per_s)") | | | | | |"
	done
}

# (n): the matrix, one table per transport, both brokers side by side.
matrix_table() {
	local s id desc args t r
	echo
	echo "## (n) issue 9: p2p, fan-out, fan-in over every transport" \
		"(64 B, ${MATRIX_SECONDS} s + at most 1 s drain at QoS 0 and 3 s" \
		"above, $MATRIX_REPS runs)"
	echo
	echo "Medians (min–max) of $MATRIX_REPS runs; t = ternd, m = mosquitto." \
		"Fan-out and fan-in run at the fixed rate given, so their msg/s" \
		"is the load offered and CPU µs/msg is the comparison."
	for t in "" -ws -mqtts -wss; do
		echo
		echo "### (n) over $(transport_of "x$t")"
		echo
		echo "| load | t msg/s | m msg/s | t/m msg/s | t CPU µs/msg |" \
			"m CPU µs/msg | t/m CPU | t p50 / p99 | m p50 / p99 |" \
			"lost t / m |"
		echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
		for s in "${MATRIX[@]}"; do
			IFS='|' read -r id desc args <<<"$s"
			case " $MATRIX_IDS " in *" $id "*) ;; *) continue ;; esac
			r="| ($id) $desc"
			r="$r | $(REPS=$MATRIX_REPS cell fmt_rate "$id" "ternd$t" delivered_per_s)"
			r="$r | $(REPS=$MATRIX_REPS cell fmt_rate "$id" "mosquitto$t" delivered_per_s)"
			r="$r | **$(ratio "$(median "$id" "ternd$t" delivered_per_s)" \
				"$(median "$id" "mosquitto$t" delivered_per_s)")**"
			r="$r | $(REPS=$MATRIX_REPS cell fmt_cpu "$id" "ternd$t" broker_cpu_us_per_msg)"
			r="$r | $(REPS=$MATRIX_REPS cell fmt_cpu "$id" "mosquitto$t" broker_cpu_us_per_msg)"
			r="$r | **$(ratio "$(median "$id" "ternd$t" broker_cpu_us_per_msg)" \
				"$(median "$id" "mosquitto$t" broker_cpu_us_per_msg)")**"
			r="$r | $(fmt_lat "$(median "$id" "ternd$t" lat_p50_us)") /"
			r="$r $(fmt_lat "$(median "$id" "ternd$t" lat_p99_us)")"
			r="$r | $(fmt_lat "$(median "$id" "mosquitto$t" lat_p50_us)") /"
			r="$r $(fmt_lat "$(median "$id" "mosquitto$t" lat_p99_us)")"
			r="$r | $(lost "$id" "ternd$t") / $(lost "$id" "mosquitto$t") |"
			echo "$r"
		done
	done
}

# (p): fixed-rate latency, every transport of both brokers.
latency_table() {
	local id desc args var t
	IFS='|' read -r id desc args <<<"$LATENCY"
	echo
	echo "## (p) latency at a fixed rate: $desc, ${LAT_SECONDS} s," \
		"$REPS runs (mosquitto with set_tcp_nodelay true)"
	echo
	echo "| broker | transport | delivered msg/s | broker CPU µs/msg |" \
		"latency p50 | p99 | p99.9 | max | lost (max) |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	for var in $EVERY_VARIANT; do
		echo "| ${var%%-*} | $(transport_of "$var")" \
			"| $(cell fmt_rate p "$var" delivered_per_s)" \
			"| $(cell fmt_cpu p "$var" broker_cpu_us_per_msg)" \
			"| $(cell fmt_lat p "$var" lat_p50_us)" \
			"| $(cell fmt_lat p "$var" lat_p99_us)" \
			"| $(cell fmt_lat p "$var" lat_p999_us)" \
			"| $(fmt_lat "$(median p "$var" lat_max_us)")" \
			"| $(lost p "$var") |"
	done
	for t in "" -ws -mqtts -wss; do
		echo "| **ternd/mosquitto** | $(transport_of "x$t") | |" \
			"$(ratio "$(median p "ternd$t" broker_cpu_us_per_msg)" \
				"$(median p "mosquitto$t" broker_cpu_us_per_msg)")" \
			"| $(ratio "$(median p "ternd$t" lat_p50_us)" \
				"$(median p "mosquitto$t" lat_p50_us)")" \
			"| $(ratio "$(median p "ternd$t" lat_p99_us)" \
				"$(median p "mosquitto$t" lat_p99_us)")" \
			"| $(ratio "$(median p "ternd$t" lat_p999_us)" \
				"$(median p "mosquitto$t" lat_p999_us)") | | |"
	done
	echo
	echo "Open-loop: each message is stamped with the time it was due," \
		"so a publisher held back counts its wait as latency."
}

# (q): the connect storm and memory of STORM_CONNS idle connections.
storm_table() {
	local kind
	echo
	echo "## (q) $STORM_CONNS idle connections (keepalive 300 s), half" \
		"over TCP and half over WebSocket, opened at once by" \
		"$STORM_PROCS client processes, held ${IDLE_SECONDS} s; $REPS runs"
	echo
	echo "| broker | connections up | connect storm, connections/s |" \
		"set-up p50 / p99, TCP | set-up p50 / p99, WebSocket |" \
		"VmRSS before → with them | RSS per connection |" \
		"kernel per connection (system) |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
	for kind in ternd mosquitto; do
		echo "| $kind | $(median q "$kind" ready)" \
			"| $(cell fmt_rate q "$kind" storm_conn_per_s)" \
			"| $(fmt_lat "$(median q "$kind" tcp_setup_p50_us)") /" \
			"$(fmt_lat "$(median q "$kind" tcp_setup_p99_us)")" \
			"| $(fmt_lat "$(median q "$kind" ws_setup_p50_us)") /" \
			"$(fmt_lat "$(median q "$kind" ws_setup_p99_us)")" \
			"| $(fmt_kib "$(median q "$kind" rss_before_kb)") →" \
			"$(fmt_kib "$(median q "$kind" rss_idle_kb)")" \
			"| $(cell fmt_bytes q "$kind" rss_per_conn_b)" \
			"| $(fmt_bytes "$(median q "$kind" kernel_per_conn_b)") |"
	done
	echo "| **ternd/mosquitto** | |" \
		"**$(ratio "$(median q ternd storm_conn_per_s)" \
			"$(median q mosquitto storm_conn_per_s)")** | | | |" \
		"**$(ratio "$(median q ternd rss_per_conn_b)" \
			"$(median q mosquitto rss_per_conn_b)")** | |"
	echo
	echo "Connections/s: all of them over the time from the start to the" \
		"slowest client process's last CONNACK (each process ≤ 100" \
		"setting up at once). Set-up: connect() to CONNACK (with the" \
		"upgrade over WebSocket), p50 averaged over the processes of a" \
		"transport, p99 their largest. RSS per connection: the broker's" \
		"VmRSS growth over the connections. Kernel per connection:" \
		"growth of Slab and of TCP buffer pages (/proc/meminfo," \
		"/proc/net/sockstat), system-wide, so both ends of every" \
		"loopback connection, divided by the connections."
}

# (r): worker threads.
scale_table() {
	local s id desc args var
	echo
	echo "## (r) ternd with 1 and 2 worker threads, over TCP" \
		"(${SCALE_SECONDS} s, $REPS runs)"
	echo
	echo "| load | ternd 1 thread msg/s | ternd 2 threads msg/s |" \
		"scaling 1 → 2 | mosquitto msg/s | ternd 2 threads / mosquitto |" \
		"CPU µs/msg 1 / 2 threads / mosquitto |"
	echo "| --- | --- | --- | --- | --- | --- | --- |"
	for s in "${SCALE[@]}"; do
		IFS='|' read -r id desc args <<<"$s"
		echo "| ($id) $desc" \
			"| $(cell fmt_rate "$id" ternd1 delivered_per_s)" \
			"| $(cell fmt_rate "$id" ternd2 delivered_per_s)" \
			"| **$(ratio "$(median "$id" ternd2 delivered_per_s)" \
				"$(median "$id" ternd1 delivered_per_s)")**" \
			"| $(cell fmt_rate "$id" mosquitto delivered_per_s)" \
			"| $(ratio "$(median "$id" ternd2 delivered_per_s)" \
				"$(median "$id" mosquitto delivered_per_s)")" \
			"| $(fmt_cpu "$(median "$id" ternd1 broker_cpu_us_per_msg)") /" \
			"$(fmt_cpu "$(median "$id" ternd2 broker_cpu_us_per_msg)") /" \
			"$(fmt_cpu "$(median "$id" mosquitto broker_cpu_us_per_msg)") |"
	done
	echo
	echo "The load generator is one process on one core of the same" \
		"$(nproc) cores, so scaling is bounded by what is left."
}

# (s): durable online throughput.
durable_table() {
	local id desc args var
	IFS='|' read -r id desc args <<<"$DURABLE"
	echo
	echo "## (s) $desc (${SCALE_SECONDS} s, $REPS runs)"
	echo
	echo "| broker | store | delivered msg/s | broker CPU µs/msg |" \
		"latency p50 | p99 | lost (max) |"
	echo "| --- | --- | --- | --- | --- | --- | --- |"
	for var in $DURABLE_VARIANTS; do
		echo "| ${var%%-*} | $(case $var in *-disk) echo "persistence true" ;;
			*) echo "memory" ;; esac)" \
			"| $(cell fmt_rate s "$var" delivered_per_s)" \
			"| $(cell fmt_cpu s "$var" broker_cpu_us_per_msg)" \
			"| $(fmt_lat "$(median s "$var" lat_p50_us)")" \
			"| $(fmt_lat "$(median s "$var" lat_p99_us)")" \
			"| $(lost s "$var") |"
	done
	for var in "" -disk; do
		echo "| **ternd/mosquitto** | ${var:+disk} |" \
			"**$(ratio "$(median s "ternd$var" delivered_per_s)" \
				"$(median s "mosquitto$var" delivered_per_s)")**" \
			"| $(ratio "$(median s "ternd$var" broker_cpu_us_per_msg)" \
				"$(median s "mosquitto$var" broker_cpu_us_per_msg)") | | | |"
	done
	echo
	echo "ternd with persistence true writes every QoS 1 message to" \
		"SQLite before its PUBACK (persistence_sync always, the" \
		"default); mosquitto 2.0.11 keeps it in memory and saves its" \
		"database every 30 minutes."
}

# (o): client speed, tern bench against the mosquitto_pub/sub pair.
speed_table() {
	local t m l
	t=$(median o ternd delivered_per_s)
	l=$(stats o lines delivered_per_s | cut -d' ' -f1)
	m=$(stats o repeat delivered_per_s | cut -d' ' -f1)
	echo
	echo "## (o) client speed: QoS 0, 64 B, 1 -> 1 through ternd over TCP"
	echo
	echo "| client (one process per side) | delivered msg/s | lost (max) | tern bench / it |"
	echo "| --- | --- | --- | --- |"
	echo "| \`tern bench pubsub -P 1 -S 1 -q 0 -s 64 -d $SECONDS_PER_RUN\`" \
		"| $(cell fmt_rate o ternd delivered_per_s) | $(lost o ternd) | |"
	echo "| \`mosquitto_sub -C $SPEED_MSGS\` + \`mosquitto_pub -l\` ($SPEED_MSGS lines)" \
		"| $(cell fmt_rate o lines delivered_per_s) | $(lost o lines) of $SPEED_MSGS" \
		"| $(ratio "$t" "$l") |"
	echo "| \`mosquitto_sub -C $SPEED_MSGS\` + \`mosquitto_pub -m … --repeat $SPEED_MSGS\`" \
		"| $(cell fmt_rate o repeat delivered_per_s) | $(lost o repeat) of $SPEED_MSGS" \
		"| $(ratio "$t" "$m") |"
	echo
	echo "tern bench runs both sides in one process (one thread); the" \
		"Mosquitto pair is two processes. The pair's rate is the" \
		"messages mosquitto_sub printed over the time from mosquitto_pub's" \
		"start to the last one; QoS 0 messages are lost when" \
		"mosquitto_sub cannot keep up and its queue in the broker" \
		"overflows."
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
	for var in $EVERY_VARIANT; do
		echo "| ${var%%-*} | $(transport_of "$var")" \
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
	for t in "" -ws -mqtts -wss; do
		echo "| **ternd/mosquitto, $(transport_of "x$t")** | | | |" \
			"**$(ratio "$(median j "ternd$t" rss_per_conn_b)" \
				"$(median j "mosquitto$t" rss_per_conn_b)")** | | |"
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

# Replaces the part of docs/benchmarks.md between the two markers with the
# report in $1, its headings moved two levels down to sit under the doc's
# own. Only a run of every scenario does this, so the doc always shows one
# complete, side-by-side run and never a mix of runs.
update_doc() {
	local doc="$ROOT/docs/benchmarks.md" begin end tmp
	begin='<!-- make bench: begin -->'
	end='<!-- make bench: end -->'
	if ! grep -qF "$begin" "$doc" || ! grep -qF "$end" "$doc"; then
		echo "bench: $doc has no '$begin' ... '$end' markers;" \
			"not updated" >&2
		return 0
	fi
	tmp=$(mktemp "$doc.XXXXXX")
	awk -v b="$begin" -v e="$end" -v rep="$1" '
		$0 == b { print; while ((getline l < rep) > 0) {
				sub(/^#/, "###", l); print l }
			skip = 1; next }
		$0 == e { skip = 0 }
		!skip { print }' "$doc" > "$tmp" && mv "$tmp" "$doc"
	echo "bench: docs/benchmarks.md updated (the generated section)" >&2
}

mkdir -p "$OUT_DIR"
table | tee "$OUT_DIR/latest.md"
if [ -z "${BENCH_ONLY:-}" ]; then
	update_doc "$OUT_DIR/latest.md"
fi
