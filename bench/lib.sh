# shellcheck shell=bash
# bench/lib.sh: what bench/run.sh and bench/check.sh share, sourced by both
# (bash). Loopback only: every port is on 127.0.0.1.

# Something accepts connections on 127.0.0.1:$1.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Every port given accepts connections.
ports_open() {
	local p
	for p in "$@"; do
		port_open "$p" || return 1
	done
}

# A loopback port nobody listens on now.
free_port() {
	local p
	while :; do
		# Below the kernel's ephemeral range (32768 on), where
		# other programs' outgoing connections and port-0 listeners
		# would take it.
		p=$((20000 + RANDOM % 12000))
		port_open "$p" || break
	done
	echo "$p"
}

# wait_ports PID TRIES PORTS...: polls every 0.05 s, at most TRIES times,
# until every port accepts connections (status 0) or process PID has
# exited (status 1; also 1 when the tries run out).
wait_ports() {
	local pid=$1 tries=$2 i
	shift 2
	for ((i = 0; i < tries; i++)); do
		kill -0 "$pid" 2>/dev/null || return 1
		ports_open "$@" && return 0
		sleep 0.05
	done
	return 1
}
