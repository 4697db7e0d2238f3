#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit, integration and end-to-end tests against the real
# `ehsm serve`) and the end-to-end tests of the independent Python client (tests/python).
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
