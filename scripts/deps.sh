#!/bin/sh
# Installs what building and testing tern needs and is missing: Debian
# packages through apt-get, and the npm packages of package-lock.json.
# Safe to run repeatedly; does nothing when everything is present.
set -eu

# chromium (driven by npm playwright-core) and python3-paho-mqtt are for
# the WebSocket end-to-end tests (browser.test.mjs, paho.test.mjs).
APT_PKGS="build-essential cmake pkg-config clang libcmocka-dev libssl-dev \
zlib1g-dev mosquitto mosquitto-clients nodejs npm chromium python3-paho-mqtt \
libnss3-tools"

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
