#!/bin/sh
# Makes what `make run` needs for TLS on this machine, once: a development
# CA and a server certificate for localhost, 127.0.0.1 and ::1 in
# data/tls/, and data/ternd.conf with all four listeners on loopback.
# Nothing here is for production and nothing is written to the repository.
set -eu
cd "$(dirname "$0")/.."
dir=data/tls
mkdir -p "$dir"
chmod 700 data "$dir"

if [ ! -f "$dir/ca.crt" ]; then
	echo "devcert: creating a development CA in $dir"
	openssl req -x509 -newkey rsa:2048 -nodes -days 825 \
		-keyout "$dir/ca.key" -out "$dir/ca.crt" \
		-subj "/CN=tern development CA ($(hostname))" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
if [ ! -f "$dir/server.crt" ]; then
	echo "devcert: creating a server certificate for localhost"
	openssl req -newkey rsa:2048 -nodes -keyout "$dir/server.key" \
		-out "$dir/server.csr" -subj "/CN=localhost" 2>/dev/null
	printf '%s\n' \
		"subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
		"extendedKeyUsage=serverAuth" >"$dir/server.ext"
	openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" \
		-CAkey "$dir/ca.key" -CAcreateserial -days 825 \
		-out "$dir/server.crt" -extfile "$dir/server.ext" 2>/dev/null
	rm -f "$dir/server.csr" "$dir/server.ext"
fi
chmod 600 "$dir"/*.key

conf=data/ternd.conf
if [ ! -f "$conf" ]; then
	tls="$(pwd)/$dir"
	{
		echo "# Written by 'make run' for local development: loopback only,"
		echo "# anonymous clients allowed. Edit freely; delete to regenerate."
		echo "allow_anonymous true"
		for addr in 127.0.0.1 ::1; do
			echo "listener 1883 $addr"
			echo "listener 8083 $addr"
			echo "protocol websockets"
			echo "listener 8883 $addr"
			echo "certfile $tls/server.crt"
			echo "keyfile $tls/server.key"
			echo "listener 8084 $addr"
			echo "protocol websockets"
			echo "certfile $tls/server.crt"
			echo "keyfile $tls/server.key"
		done
	} >"$conf"
fi
