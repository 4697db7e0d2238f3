#!/usr/bin/env bash
# CPU time per request of the server and of `ehsm bench`, per action: each process's user+system
# time from /proc/<pid>/stat over 4 s of load, divided by the requests answered. CPU time is
# steadier than throughput on a shared machine.
#
#   bench/cpu_per_request.sh [EHSM_BINARY] [ACTION...]
#   bench/cpu_per_request.sh target/release/ehsm get-version encrypt
#   SCHEME=https bench/cpu_per_request.sh ...    the same over TLS (default: plain HTTP)
#   KEY_VERSIONS="1 10" bench/cpu_per_request.sh ...   each action on keys of 1, then 10
#                                                     versions (ehsm bench --key-versions), one server
set -euo pipefail
BIN=${1:-target/release/ehsm}
shift || true
ACTIONS=("${@:-get-version encrypt}")
DATA=$(mktemp -d)
PORT=9411
SCHEME=${SCHEME:-http}
case $SCHEME in
  http) SERVE=(--http) TRUST=() ;;
  https) SERVE=() TRUST=(--insecure) ;;
  *) echo "SCHEME is http or https" >&2; exit 2 ;;
esac
"$BIN" serve "${SERVE[@]}" --listen 127.0.0.1:$PORT --data-dir "$DATA" >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$DATA"' EXIT
sleep 1
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
KEY_VERSIONS=${KEY_VERSIONS:-1}
for versions in $KEY_VERSIONS; do
  for action in ${ACTIONS[@]}; do
    out=$(mktemp)
    "$BIN" bench --url "$SCHEME://127.0.0.1:$PORT" "${TRUST[@]}" --connections 64 --duration 6s --warmup 1s \
      --key-versions "$versions" --action "$action" >"$out" 2>&1 &
    BENCH=$!
    sleep 2.5
    s0=$(ticks $SERVER); b0=$(ticks $BENCH)
    sleep 4
    s1=$(ticks $SERVER); b1=$(ticks $BENCH)
    wait $BENCH
    rps=$(awk -v a="$action" '$1 == a {print $4}' "$out")
    rm -f "$out"
    label=$action
    [ "$KEY_VERSIONS" = 1 ] || label="$action/v$versions"
    awk -v a="$label" -v r="$rps" -v s=$((s1 - s0)) -v b=$((b1 - b0)) -v hz="$HZ" 'BEGIN {
      printf "%-18s %9.0f req/s   server %5.1f us/request   bench %5.1f us/request\n",
        a, r, s / hz / 4 / r * 1e6, b / hz / 4 / r * 1e6 }'
  done
done
