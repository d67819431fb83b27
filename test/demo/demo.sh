#!/usr/bin/env bash
# make demo: start a local three-node Underlay cluster on loopback, show its
# status, and stop it cleanly on Ctrl-C (or after DEMO_DURATION seconds).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-$PWD/bin}
DIR=$(mktemp -d /tmp/underlay-demo.XXXXXX)
PIDS=()

stop() {
	trap - INT TERM EXIT
	echo
	echo "== stopping the cluster"
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$DIR"
	echo "== stopped; removed $DIR"
}
trap stop INT TERM EXIT

start_node() { # id port-base extra-args...
	local id=$1 base=$2; shift 2
	"$BIN/underlay" server --data-dir "$DIR/$id" --node-id "$id" \
		--listen "127.0.0.1:$base" --raft-listen "127.0.0.1:$((base + 1))" \
		--metrics-listen "127.0.0.1:$((base + 2))" --https-listen "127.0.0.1:$((base + 3))" "$@" >"$DIR/$id.log" 2>&1 &
	PIDS+=($!)
}

wait_for() { # what command...
	local what=$1; shift
	for _ in $(seq 1 150); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	echo "timed out waiting for $what; logs in $DIR" >&2
	tail -n 20 "$DIR"/*.log >&2
	return 1
}

echo "== bootstrapping n1 in $DIR/n1"
start_node n1 7443
export UNDERLAY_CREDS=$DIR/n1/admin UNDERLAY_SERVER=127.0.0.1:7443
wait_for "n1" "$BIN/underlay" whoami
FP=$(grep -o 'CA fingerprint: [0-9a-f]*' "$DIR/n1.log" | awk '{print $3}')
echo "   cluster CA fingerprint $FP"

for i in 2 3; do
	TOKEN=$("$BIN/underlay" token create --kind server --ttl 10m --uses 1 --description "demo n$i" -o json |
		sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')
	echo "== joining n$i with a one-time server token"
	start_node "n$i" $((7443 + 10 * (i - 1))) --join 127.0.0.1:7443 --token "$TOKEN" --ca-fingerprint "$FP"
	wait_for "n$i" grep -q "joined cluster" "$DIR/n$i.log"
done
export UNDERLAY_SERVER=127.0.0.1:7443,127.0.0.1:7453,127.0.0.1:7463

echo
echo "== underlay cluster status"
"$BIN/underlay" cluster status
echo
echo "Try, in another shell:"
echo "  export UNDERLAY_CREDS=$UNDERLAY_CREDS UNDERLAY_SERVER=$UNDERLAY_SERVER"
echo "  $BIN/underlay cluster members -o yaml"
echo "  curl -s http://127.0.0.1:7445/metrics | grep underlay_raft"
if [[ -n "${DEMO_DURATION:-}" ]]; then
	sleep "$DEMO_DURATION"
else
	echo
	echo "Press Ctrl-C to stop the cluster."
	while sleep 3600; do :; done
fi
