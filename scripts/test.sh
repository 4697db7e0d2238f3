#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit, integration and end-to-end tests against the real
# `ehsm serve`), the end-to-end tests of the independent Python client (tests/python), and
# upstream eHSM-KMS's own SDK suites (scripts/conformance.sh: skipped with the reason when
# ../shared/conformance is missing, except in CI).
#
# PostgreSQL: the store's tests also run against PostgreSQL when EHSM_TEST_POSTGRES is set; if it
# is unset and a server answers on 127.0.0.1:5432, that one is used.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${EHSM_TEST_POSTGRES:-}" ] && command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
  export EHSM_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres
fi

cargo nextest run --workspace --no-fail-fast "$@"

python3 -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
EHSM_BIN="${CARGO_TARGET_DIR:-target}/debug/ehsm" python3 -m pytest -q tests/python

# The end-to-end tests again, with every server on PostgreSQL instead of SQLite (the store's own
# tests and the multi-node tests already ran on both, or on PostgreSQL, above).
if [ -n "${EHSM_TEST_POSTGRES:-}" ]; then
  drop_e2e_databases() {
    psql -Atq "$EHSM_TEST_POSTGRES" -c "SELECT datname FROM pg_database WHERE datname LIKE 'ehsm\_e2e\_%'" |
      while read -r db; do psql -q "$EHSM_TEST_POSTGRES" -c "DROP DATABASE \"$db\" WITH (FORCE)"; done
  }
  trap drop_e2e_databases EXIT
  drop_e2e_databases
  echo "== end-to-end tests on PostgreSQL"
  # --workspace with a filter, not -p ehsm: the same feature set as the run above, so nothing
  # is built again.
  EHSM_TEST_BACKEND=postgres cargo nextest run --workspace --no-fail-fast "$@" \
    -E 'package(ehsm) and not binary(nodes) and not binary(domain) and not binary(pg_restart)'
  EHSM_TEST_BACKEND=postgres EHSM_BIN="${CARGO_TARGET_DIR:-target}/debug/ehsm" \
    python3 -m pytest -q tests/python
fi

# Upstream's Python, Rust and Go SDK suites against the binary built above.
./scripts/conformance.sh "${CARGO_TARGET_DIR:-target}/debug/ehsm"
