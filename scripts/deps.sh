#!/bin/sh
# Installs what building and testing tern needs and is missing: Debian
# packages through apt-get, and the npm packages of package-lock.json.
# Safe to run repeatedly; does nothing when everything is present.
set -eu

# chromium (driven by npm playwright-core) and python3-paho-mqtt are for
# the WebSocket end-to-end tests (browser.test.mjs, paho.test.mjs).
# clang and libclang-rt-14-dev give libFuzzer; openssl and certutil
# (libnss3-tools) make the TLS tests' certificates and browser trust store;
# libsqlite3-dev is the durable store (src/store); mosquitto is the
# reference broker the suite is checked against and its
# clients are used as real clients; valgrind (callgrind) counts ternd's
# instructions per message in make bench-check, a stage of make test.
APT_PKGS="build-essential cmake pkg-config clang clang-format \
libclang-rt-14-dev libcmocka-dev libssl-dev libsqlite3-dev openssl zlib1g-dev \
mosquitto \
mosquitto-clients nodejs npm chromium python3 python3-paho-mqtt \
libnss3-tools valgrind"

missing=""
for p in $APT_PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
# node and npm may come from elsewhere than Debian's packages.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
	missing=$(echo "$missing" | sed 's/ nodejs//; s/ npm//')
fi
if [ -n "$(echo "$missing" | tr -d ' ')" ]; then
	echo "deps: installing$missing"
	SUDO=""
	[ "$(id -u)" -ne 0 ] && SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi

cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	echo "deps: npm ci"
	npm ci --no-audit --no-fund --loglevel=error
fi
