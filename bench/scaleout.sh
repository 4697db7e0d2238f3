#!/usr/bin/env bash
# Encrypt and CreateKey throughput of one node on SQLite, one node on PostgreSQL and two nodes on
# one PostgreSQL database, measured in one run with `ehsm bench` (plain HTTP, simulated TEE).
# The two nodes share a domain key the simple way: the second node's data directory is a copy of
# the first's. Their throughput is the sum of two bench processes run at the same time, one per
# node. Everything runs on this machine, so the nodes, the benches and PostgreSQL share its
# cores: read the ratios, not the absolute numbers.
#
#   bench/scaleout.sh [EHSM_BINARY] [POSTGRES_BASE_URL]
#   bench/scaleout.sh target/release/ehsm postgres://postgres@127.0.0.1:5432
set -euo pipefail
BIN=${1:-target/release/ehsm}
PG=${2:-postgres://postgres@127.0.0.1:5432}
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-5s}
DIR=$(mktemp -d)
DB="ehsm_scaleout_$$"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT
psql -q "$PG/postgres" -c "CREATE DATABASE $DB" >/dev/null

# start NAME PORT [ARGS...]: an `ehsm serve` node on its own data directory, ready when it
# answers /readyz.
start() {
  local name=$1 port=$2
  shift 2
  "$BIN" serve --http --tee sim --listen "127.0.0.1:$port" --data-dir "$DIR/$name" "$@" \
    >"$DIR/$name.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return
    sleep 0.1
  done
  echo "node $name did not start:" >&2
  tail -5 "$DIR/$name.log" >&2
  exit 1
}
stop_all() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}

# bench PORT: "encrypt-req/s create-key-req/s" against one node.
bench() {
  "$BIN" bench --url "http://127.0.0.1:$1" --connections "$CONNECTIONS" --duration "$DURATION" \
    --warmup 1s --action encrypt --action create-key 2>/dev/null |
    awk '$1 == "encrypt" {e = $4} $1 == "create-key" {c = $4} END {print e, c}'
}

start sqlite 9501
read -r sqlite_enc sqlite_ck < <(bench 9501)
stop_all

start pg1 9502 --database "$PG/$DB"
read -r pg_enc pg_ck < <(bench 9502)
stop_all
cp -a "$DIR/pg1" "$DIR/pg2"
start pg1 9502 --database "$PG/$DB"
start pg2 9503 --database "$PG/$DB"
bench 9502 >"$DIR/a.out" &
first=$!
bench 9503 >"$DIR/b.out"
wait "$first"
read -r a_enc a_ck <"$DIR/a.out"
read -r b_enc b_ck <"$DIR/b.out"
stop_all

awk -v se="$sqlite_enc" -v sc="$sqlite_ck" -v pe="$pg_enc" -v pc="$pg_ck" \
  -v ae="$a_enc" -v ac="$a_ck" -v be="$b_enc" -v bc="$b_ck" 'BEGIN {
  printf "%-24s %12s %8s %12s %8s\n", "set-up", "encrypt/s", "ratio", "create-key/s", "ratio"
  printf "%-24s %12.0f %8.2f %12.0f %8.2f\n", "1 node, SQLite", se, 1, sc, 1
  printf "%-24s %12.0f %8.2f %12.0f %8.2f\n", "1 node, PostgreSQL", pe, pe / se, pc, pc / sc
  printf "%-24s %12.0f %8.2f %12.0f %8.2f\n", "2 nodes, PostgreSQL", ae + be, (ae + be) / se, ac + bc, (ac + bc) / sc
}'
