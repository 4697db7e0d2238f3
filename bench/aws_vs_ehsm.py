#!/usr/bin/env python3
"""Server CPU per request of Encrypt over the AWS KMS API (boto3, SigV4) next to Encrypt over the
eHSM API (tests/python's client, HMAC envelope) and GetVersion (no signature), on one server in
one run. The server's user+system time comes from /proc/<pid>/stat, so the clients' own cost
(boto3 is slow) does not count.

    python3 bench/aws_vs_ehsm.py [EHSM_BINARY] [REQUESTS_PER_API]
    python3 bench/aws_vs_ehsm.py target/release/ehsm 4000

Needs tests/python/requirements.txt installed."""

import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

from ehsm_wire import Client, b64  # noqa: E402

THREADS = 8
HZ = os.sysconf("SC_CLK_TCK")


def ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)


def measure(pid, n, call):
    """Server µs per request for n calls of call(i) on THREADS threads."""
    before = ticks(pid)
    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(call, range(n)))
    return (ticks(pid) - before) / HZ / n * 1e6


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/ehsm"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    data = tempfile.mkdtemp(prefix="ehsm-bench-")
    server = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        for line in server.stderr:
            m = re.search(r"listening on (https://\S+)/ehsm", line)
            if m:
                url = m.group(1)
                break
        ca = os.path.join(data, "tls-cert.pem")
        ehsm = Client(url, ca=ca)
        ehsm.enroll()
        keyid = ehsm.call("CreateKey", {"keyspec": "EH_AES_GCM_256", "origin": "EH_INTERNAL_KEY",
                                        "keyusage": "EH_KEYUSAGE_ENCRYPT_DECRYPT"})["keyid"]
        aws = boto3.client(
            "kms", endpoint_url=f"{url}/aws", region_name="us-east-1", verify=ca,
            aws_access_key_id=ehsm.appid, aws_secret_access_key=ehsm.apikey,
            config=Config(max_pool_connections=THREADS, retries={"max_attempts": 10, "mode": "standard"}),
        )
        # Each plaintext differs, so that no two AWS requests share a signature (docs/aws.md).
        plain = [f"message {i:08d} ".encode() * 8 for i in range(n)]
        rounds = {"get-version": [], "ehsm-encrypt": [], "aws-encrypt": []}
        for _ in range(3):
            rounds["get-version"].append(measure(server.pid, n, lambda i: ehsm.http.get(
                f"{url}/ehsm?Action=GetVersion", verify=ca)))
            rounds["ehsm-encrypt"].append(measure(server.pid, n, lambda i: ehsm.call(
                "Encrypt", {"keyid": keyid, "plaintext": b64(plain[i])})))
            rounds["aws-encrypt"].append(measure(server.pid, n, lambda i: aws.encrypt(
                KeyId=keyid, Plaintext=plain[i])))
        med = {k: sorted(v)[1] for k, v in rounds.items()}
        for k, v in rounds.items():
            print(f"{k:14} server µs/request: " + " / ".join(f"{x:6.1f}" for x in v) + f"   median {med[k]:6.1f}")
        print(f"eHSM Encrypt / AWS Encrypt server CPU: {med['ehsm-encrypt'] / med['aws-encrypt']:.2f} "
              f"(AWS throughput at equal CPU: {med['ehsm-encrypt'] / med['aws-encrypt'] * 100:.0f}% of eHSM's)")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
