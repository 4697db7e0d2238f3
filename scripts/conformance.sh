#!/usr/bin/env bash
# Upstream eHSM-KMS's own SDK test suites (Python, Rust, Go: ../shared/conformance, used from
# there, never copied) against a freshly started `ehsm serve`: all three on SQLite, then the
# Python suite again on PostgreSQL (a fresh database on EHSM_TEST_POSTGRES, dropped
# afterwards). The suites run at the same time (the two Python runs one after the other);
# their outputs follow, then a summary with each one's counts and time. Fails if any upstream
# test fails.
#
#   scripts/conformance.sh [EHSM_BINARY]     default: $CARGO_TARGET_DIR/debug/ehsm, built if missing
#
# The suites are found beside the repository ($(dirname repo)/shared/conformance, or
# EHSM_CONFORMANCE_DIR). Without them, or without PostgreSQL, the missing part is skipped with
# the reason, except when CI is set: then it is an error. The suites' own caches: the Python
# venv (EHSM_CONFORMANCE_VENV) and the Rust build (EHSM_CONFORMANCE_TARGET), both under
# ~/.cache by default; the Go suite installs golang-go with apt-get if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
suites=${EHSM_CONFORMANCE_DIR:-$(dirname "$repo")/shared/conformance}
in_ci() { case "${CI:-}" in "" | 0 | false) return 1 ;; *) return 0 ;; esac; }
# Missing in CI is an error; locally a skip, with the reason.
missing() {
  if in_ci; then
    echo "conformance: $1 (CI is set: the upstream suites must run)" >&2
    exit 1
  fi
  echo "SKIPPED conformance: $1"
}

if [ ! -d "$suites" ]; then
  missing "no upstream suites at $suites"
  exit 0
fi
bin=${1:-${CARGO_TARGET_DIR:-target}/debug/ehsm}
[ -x "$bin" ] || cargo build -p ehsm
bin=$(realpath "$bin")

work=$(mktemp -d)
servers=()
database=
cleanup() {
  for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$database" ]; then
    psql -q "$EHSM_TEST_POSTGRES" -c "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Starts `ehsm serve` on a free port with a fresh data directory and extra arguments; sets
# $url (https://127.0.0.1:PORT).
start_server() {
  local data log pid
  data=$(mktemp -d "$work/data.XXXX")
  log="$data.log"
  EHSM_LOG=info "$bin" serve --listen 127.0.0.1:0 --data-dir "$data" --tee sim "$@" 2>"$log" &
  pid=$!
  servers+=("$pid")
  for _ in $(seq 300); do
    url=$(sed -n 's|.*listening on \(https://[^ ]*\)/ehsm .*|\1|p' "$log")
    [ -n "$url" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "conformance: ehsm serve did not start:" >&2
  cat "$log" >&2
  exit 1
}

# The suites run at once (each enrolls apps of its own), so that CI waits for the slowest, not
# for their sum; each one's output is shown when it is done.
names=()
pids=()
# start_suite NAME AFTER SCRIPT ARGS...: AFTER is the number of a suite to wait for first
# (the two Python runs share one virtual environment, made by the first), or 0.
start_suite() {
  local name=$1 after=$2 script=$3
  shift 3
  names+=("$name")
  (
    while [ "$after" != 0 ] && [ ! -f "$work/$after.status" ]; do sleep 1; done
    start=$SECONDS
    set +e
    "$suites/$script" "$@" >"$work/${#names[@]}.out" 2>&1
    echo $? >"$work/${#names[@]}.status"
    echo $((SECONDS - start)) >"$work/${#names[@]}.seconds"
  ) &
  pids+=($!)
}

start_server
start_suite "python (SQLite)" 0 run-upstream-python.sh "$url/ehsm"
start_suite "rust (SQLite)" 0 run-upstream-rust.sh "$url"
start_suite "go (SQLite)" 0 run-upstream-go.sh "$url"
if [ -z "${EHSM_TEST_POSTGRES:-}" ]; then
  missing "EHSM_TEST_POSTGRES is not set: the Python suite on PostgreSQL"
else
  database="ehsm_conformance_$$"
  psql -q "$EHSM_TEST_POSTGRES" -c "CREATE DATABASE \"$database\""
  # The base URL with its database replaced (a query string, if any, kept).
  base=${EHSM_TEST_POSTGRES%%\?*}
  query=${EHSM_TEST_POSTGRES#"$base"}
  start_server --database "${base%/*}/$database$query"
  start_suite "python (PostgreSQL)" 1 run-upstream-python.sh "$url/ehsm"
fi

failed=()
summary=()
for i in "${!names[@]}"; do
  n=$((i + 1))
  wait "${pids[$i]}" || true
  out="$work/$n.out"
  status=$(cat "$work/$n.status")
  echo "== conformance: ${names[$i]}"
  cat "$out"
  # The runners' own counts: pytest's last line, the sum of cargo's "test result" lines, go's
  # verdicts.
  counts=$(sed -n 's/^=* \(.*\(passed\|failed\|error\).*\) =*$/\1/p' "$out" | tail -1)
  [ -n "$counts" ] || counts=$(awk '/^test result:/ { p += $4; f += $6; n++ }
    END { if (n) printf "%d passed, %d failed", p, f }' "$out")
  [ -n "$counts" ] || counts="$(grep -c -- '--- PASS' "$out" || true) passed, $(grep -c -- '--- FAIL' "$out" || true) failed"
  summary+=("${names[$i]}: $([ "$status" = 0 ] && echo ok || echo FAILED) in $(cat "$work/$n.seconds") s: $counts")
  [ "$status" = 0 ] || failed+=("${names[$i]}")
done

echo "== conformance summary"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "conformance: failed: ${failed[*]}" >&2
  exit 1
fi
