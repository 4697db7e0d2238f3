"""Writes botocore-kms-encrypt.json: a KMS Encrypt request exactly as botocore signs and sends it.

The SigV4 tests of ehsm-kms (src/aws/sigv4.rs) and ehsm-core (src/sigv4.rs) replay it: the
server must rebuild botocore's canonical request and string to sign from what was sent, and the
core must accept botocore's signature under the API key. Credentials and clock are fixed and the
random amz-sdk-invocation-id is pinned, so a re-run gives the same file except for User-Agent
(which names botocore's version and the machine; botocore does not sign it) or if botocore
changes what it sends.

Re-run (from the repository root; needs only botocore, `pip install botocore`):

    python3 crates/ehsm-kms/tests/data/sigv4/botocore_kms_encrypt.py

It prints botocore's version; the file records it too.
"""

import datetime
import json
import logging
import pathlib
import uuid

import botocore
import botocore.auth
import botocore.session
from botocore.config import Config

# An eHSM appid and API key (the API-key vector of compatibility spec §3.6): the access key id
# and secret access key of an enrolled app.
ACCESS_KEY_ID = "b7c62e4d-c238-4016-b35f-47bc4b57dc03"
SECRET_ACCESS_KEY = "D3nK2Vq90QrFkHGRZ3dBAyFEfPTtLfQy"
REGION = "us-east-1"
ENDPOINT = "https://127.0.0.1:9000/aws"
NOW = datetime.datetime(2026, 11, 2, 9, 30, 15)
INVOCATION_ID = uuid.UUID("6b0e7c2a-3f1d-4a8e-9c55-0d2f4e8b7a19")


class Captured(Exception):
    """Raised by the before-send hook so that nothing is sent."""

    def __init__(self, request):
        super().__init__("captured")
        self.request = request


class Log(logging.Handler):
    """Keeps botocore's debug records of the canonical request and string to sign."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.values = {}

    def emit(self, record):
        for name in ("CanonicalRequest", "StringToSign", "Signature"):
            if record.msg.startswith(name + ":"):
                self.values[name] = record.args[0] if record.args else None


def main():
    botocore.auth.get_current_datetime = lambda remove_tzinfo=True: NOW
    uuid.uuid4 = lambda: INVOCATION_ID
    log = Log()
    logger = logging.getLogger("botocore.auth")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(log)

    session = botocore.session.get_session()
    client = session.create_client(
        "kms",
        region_name=REGION,
        endpoint_url=ENDPOINT,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(retries={"max_attempts": 1}),
    )

    def capture(request, **_):
        raise Captured(request)

    client.meta.events.register("before-send.kms.Encrypt", capture)
    try:
        client.encrypt(KeyId="alias/ehsm-test", Plaintext=b"hello, ehsm")
    except Captured as c:
        request = c.request
    else:
        raise SystemExit("botocore sent nothing")

    url = botocore.compat.urlsplit(request.url)
    vector = {
        "generator": "crates/ehsm-kms/tests/data/sigv4/botocore_kms_encrypt.py",
        "botocore": botocore.__version__,
        "secret_access_key": SECRET_ACCESS_KEY,
        "region": REGION,
        "now": NOW.strftime("%Y%m%dT%H%M%SZ"),
        "method": request.method,
        # What an HTTP/1.1 server sees: the origin-form target and a Host header, which urllib3
        # adds from the URL after signing (botocore signs the same value).
        "target": url.path + (("?" + url.query) if url.query else ""),
        "headers": [["Host", url.netloc]]
        + [[k, v.decode() if isinstance(v, bytes) else v] for k, v in request.headers.items()],
        "body": request.body.decode() if isinstance(request.body, bytes) else request.body,
        "canonical_request": log.values["CanonicalRequest"],
        "string_to_sign": log.values["StringToSign"],
        "signature": log.values["Signature"],
    }
    out = pathlib.Path(__file__).with_name("botocore-kms-encrypt.json")
    out.write_text(json.dumps(vector, indent=2) + "\n")
    print(f"botocore {botocore.__version__}: wrote {out}")


if __name__ == "__main__":
    main()
