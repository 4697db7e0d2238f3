#!/usr/bin/env bash
# Starts a whole ehsm domain on this machine, for trying it out (see docs/domain.md):
#
#   dkeyserver root ──▶ dkeyserver worker
#        │                     │
#    dkeycache 1           dkeycache 2          (one per "node host", each on its own socket)
#     │      │                 │
#   node 1  node 2           node 3             (ehsm serve --domain, one shared database)
#
# Every process runs on the simulated platform (--tee sim): this is a demo, with no security.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/demo-domain.sh [--database URL] [--dir DIR] [--bin PATH]

Starts an ehsm domain on this machine: a root key server (a new domain on the first run in
DIR), a worker key server taking the domain keys from the root, two dkeycaches (cache 1 from
the root, cache 2 from the worker) and three KMS nodes (nodes 1 and 2 on cache 1, node 3 on
cache 2), all with --tee sim (NO security: for demos and tests only) and mutual RA-TLS under a
policy that accepts exactly the default simulated measurement.

When every node answers GET /readyz it prints one line per node:
  node N http://127.0.0.1:PORT/ehsm
The nodes speak plain HTTP (--http) on loopback, and enroll anyone (--enroll open):
  curl -s 'http://127.0.0.1:PORT/ehsm?Action=Enroll'
Then it waits. Ctrl-C or SIGTERM stops every process it started.

Options:
  --database URL  the database all nodes share (default: sqlite://DIR/ehsm.db; or a
                  PostgreSQL URL such as postgres://postgres@127.0.0.1:5432/ehsm)
  --dir DIR       where the key servers' data, the nodes' data, the sockets, the policy and
                  the logs (DIR/logs/*.log) go (default: a new temporary directory). Run again
                  with the same DIR to restart the same domain.
  --bin PATH      the ehsm binary (default: target/release/ehsm if built, else
                  target/debug/ehsm, else ehsm on PATH)
  -h, --help      this help
EOF
}

say() { printf 'demo-domain: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

database=""
dir=""
bin=""
while [ $# -gt 0 ]; do
  case "$1" in
    --database) [ $# -ge 2 ] || die "--database needs a URL"; database="$2"; shift 2 ;;
    --dir) [ $# -ge 2 ] || die "--dir needs a directory"; dir="$2"; shift 2 ;;
    --bin) [ $# -ge 2 ] || die "--bin needs a path"; bin="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

command -v curl >/dev/null || die "curl is needed (to wait for the nodes' /readyz)"

# The binary.
repo="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
if [ -z "$bin" ]; then
  if [ -x "$target/release/ehsm" ]; then
    bin="$target/release/ehsm"
  elif [ -x "$target/debug/ehsm" ]; then
    bin="$target/debug/ehsm"
  elif command -v ehsm >/dev/null; then
    bin="$(command -v ehsm)"
  else
    die "no ehsm binary: build one (cargo build --release -p ehsm) or pass --bin PATH"
  fi
fi
[ -x "$bin" ] || die "$bin is not an executable"
"$bin" dkeyserver --help >/dev/null 2>&1 ||
  die "$bin has no 'dkeyserver' command (an old build?): rebuild it or pass --bin PATH"

# The directory.
if [ -z "$dir" ]; then
  dir="$(mktemp -d "${TMPDIR:-/tmp}/ehsm-domain.XXXXXX")"
else
  mkdir -p "$dir"
fi
dir="$(cd "$dir" && pwd)"
chmod 700 "$dir"
mkdir -p "$dir/logs" "$dir/run"
chmod 700 "$dir/run"
[ -n "$database" ] || database="sqlite://$dir/ehsm.db"

sockets=("$dir/run/cache1.sock" "$dir/run/cache2.sock")
# A Unix socket's path must fit in sun_path (108 bytes on Linux).
[ "${#sockets[0]}" -lt 100 ] || die "--dir is too long for a Unix socket path: $dir"

# Only this script's settings: an EHSM_* variable of the caller's shell (EHSM_CONFIG,
# EHSM_SIM_MEASUREMENT, EHSM_HSM, ...) would change what the processes do. Logging stays.
while IFS= read -r name; do
  case "$name" in
    EHSM_LOG | EHSM_LOG_FORMAT) ;;
    EHSM_*) unset "$name" ;;
  esac
done < <(compgen -e)

# The policy every hop checks: simulated evidence with exactly the default simulated
# measurement ("EHSM-SIM" four times), which every process here presents.
policy="$dir/policy.toml"
cat >"$policy" <<'EOF'
# Written by scripts/demo-domain.sh: simulated evidence, for a demo only (no security).
allow_simulated = true
simulated_measurements = ["4548534d2d53494d4548534d2d53494d4548534d2d53494d4548534d2d53494d"]
EOF

# Free loopback ports, one after another from a base.
next_port=18800
port_in_use() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  while port_in_use "$next_port"; do
    next_port=$((next_port + 1))
    [ "$next_port" -lt 65000 ] || die "no free loopback port found"
  done
  port=$next_port
  next_port=$((next_port + 1))
}

# The processes started, in start order, with their names and logs.
pids=()
names=()
logs=()
stopping=0

# Whether process $1 still runs (a child that exited stays a zombie until waited for).
running() {
  local stat
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  stat="${stat##*) }"
  [ "${stat%% *}" != Z ]
}

stop_all() {
  [ "$stopping" = 0 ] || return 0
  stopping=1
  [ "${#pids[@]}" -gt 0 ] || return 0
  say "stopping ${#pids[@]} processes"
  local i deadline=$((SECONDS + 15)) left
  # Nodes first, the root last; each shuts down gracefully on SIGTERM.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
  done
  # Whatever still runs after 15 s is killed.
  while :; do
    left=()
    for i in "${!pids[@]}"; do
      if running "${pids[$i]}"; then left+=("${pids[$i]}"); fi
    done
    [ "${#left[@]}" -gt 0 ] || break
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "killing ${#left[@]} processes that did not stop within 15 s"
      kill -KILL "${left[@]}" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" 2>/dev/null || true
  done
}

trap 'stop_all; exit 0' INT TERM
trap 'stop_all' EXIT

# start NAME ARGS...: runs "$bin" ARGS in the background, its output in DIR/logs/NAME.log.
start() {
  local name="$1"
  shift
  local log="$dir/logs/$name.log"
  : >"$log"
  "$bin" "$@" >>"$log" 2>&1 &
  pids+=("$!")
  names+=("$name")
  logs+=("$log")
}

# died NAME LOG: says that NAME stopped, with the end of its log, and fails.
died() {
  say "$1 stopped during start-up; the end of $2:"
  tail -n 20 "$2" >&2 || true
  exit 1
}

# wait_until WHAT LOG CHECK...: waits until the command CHECK succeeds, checking meanwhile that
# every process started so far still runs; after two minutes, fails with the end of LOG.
wait_until() {
  local what="$1" log="$2"
  shift 2
  local deadline=$((SECONDS + 120)) i
  until "$@"; do
    for i in "${!pids[@]}"; do
      running "${pids[$i]}" || died "${names[$i]}" "${logs[$i]}"
    done
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "timed out waiting for $what; the end of $log:"
      tail -n 20 "$log" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
}

# Key servers and caches log "listening on" once bound.
logged_listening() { grep -qs 'listening on' "$1"; }
ready() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$1/readyz" 2>/dev/null; }

say "binary $bin"
say "directory $dir (logs in $dir/logs)"
say "database $database"

# 1. The root key server. It creates the domain on the first run only: a root never makes a new
# domain unless told to.
free_port
root_port=$port
new_domain=()
if [ ! -e "$dir/root/domain-keys.sealed" ]; then
  new_domain=(--new-domain)
  say "no domain in $dir/root yet: the root creates one (--new-domain)"
fi
start dkeyserver-root dkeyserver --role root --listen "127.0.0.1:$root_port" \
  --data-dir "$dir/root" --policy "$policy" --tee sim "${new_domain[@]}"
wait_until "the root key server" "${logs[-1]}" logged_listening "${logs[-1]}"

# 2. A worker key server, taking the keys from the root.
free_port
worker_port=$port
start dkeyserver-worker dkeyserver --role worker --upstream "127.0.0.1:$root_port" \
  --listen "127.0.0.1:$worker_port" --data-dir "$dir/worker" --policy "$policy" --tee sim
wait_until "the worker key server" "${logs[-1]}" logged_listening "${logs[-1]}"

# 3. One dkeycache per "node host": cache 1 from the root, cache 2 from the worker.
servers=("127.0.0.1:$root_port" "127.0.0.1:$worker_port")
for c in 1 2; do
  rm -f "${sockets[$((c - 1))]}"
  start "dkeycache$c" dkeycache --server "${servers[$((c - 1))]}" \
    --socket "${sockets[$((c - 1))]}" --policy "$policy" --tee sim
  wait_until "dkeycache $c" "${logs[-1]}" logged_listening "${logs[-1]}"
done

# 4. Three KMS nodes on one database: nodes 1 and 2 on cache 1, node 3 on cache 2.
node_ports=()
for n in 1 2 3; do
  c=1
  [ "$n" -lt 3 ] || c=2
  free_port
  node_ports+=("$port")
  start "node$n" serve --listen "127.0.0.1:$port" --data-dir "$dir/node$n" \
    --database "$database" --tee sim --http --enroll open \
    --domain "unix:${sockets[$((c - 1))]}" --domain-policy "$policy"
done
for n in 1 2 3; do
  wait_until "node $n (GET /readyz)" "$dir/logs/node$n.log" ready "${node_ports[$((n - 1))]}"
done

for n in 1 2 3; do
  echo "node $n http://127.0.0.1:${node_ports[$((n - 1))]}/ehsm"
done
say "ready; Ctrl-C or SIGTERM stops the domain"

# Wait until a signal comes (the trap stops everything and exits 0) or a process stops by
# itself (then stop the rest and fail).
while :; do
  wait -n "${pids[@]}" || true
  for i in "${!pids[@]}"; do
    if ! running "${pids[$i]}"; then
      say "${names[$i]} stopped; the end of ${logs[$i]}:"
      tail -n 20 "${logs[$i]}" >&2 || true
      exit 1
    fi
  done
done
