import os
import re
import subprocess
import tempfile
import threading

import pytest
import urllib3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


def _binary():
    path = os.environ.get("EHSM_BIN")
    if path:
        return path
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
    return os.path.join(target, "debug", "ehsm")


def _database_args(data):
    """With EHSM_TEST_BACKEND=postgres, a fresh PostgreSQL database for this server (named after
    its data directory, dropped by scripts/test.sh afterwards); otherwise SQLite, the default."""
    if os.environ.get("EHSM_TEST_BACKEND") != "postgres":
        return []
    base = os.environ["EHSM_TEST_POSTGRES"]
    name = "ehsm_e2e_py_" + re.sub(r"[^a-z0-9]", "_", os.path.basename(data).lower())
    subprocess.run(["psql", "-q", base, "-c", f"CREATE DATABASE {name}"], check=True)
    return ["--database", base.rsplit("/", 1)[0] + "/" + name]


def start_server(*extra_args):
    """A real `ehsm serve` on a free port and a fresh data directory, with `extra_args`.

    A generator: yields (url, path of the server's certificate) and stops the server after.
    """
    binary = _binary()
    if not os.path.exists(binary):
        if os.environ.get("CI"):
            pytest.fail(f"ehsm binary not found at {binary}; build it first (cargo build -p ehsm)")
        pytest.skip(f"ehsm binary not found at {binary}; run `cargo build -p ehsm` first")
    data = tempfile.mkdtemp(prefix="ehsm-py-")
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data, *extra_args,
         *_database_args(data)],
        stderr=subprocess.PIPE,
        text=True,
    )
    url = None
    for line in proc.stderr:
        m = re.search(r"listening on (https://\S+)/ehsm", line)
        if m:
            url = m.group(1)
            break
    assert url, "ehsm serve did not start"
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    # Clients verify the server against the self-signed certificate it generated, rather than
    # turning verification off.
    yield url, os.path.join(data, "tls-cert.pem")
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="session")
def server():
    """The shared server (default settings)."""
    yield from start_server()
