"""Remote attestation (spec section 9) through the independent Python client: quote policies,
GenerateQuote on the simulated platform, VerifyQuote with --allow-simulated-quotes, and the
response `sign` checked in Python with the section 3.1 canonicaliser."""

import base64
import hashlib
import hmac
import uuid

import pytest

from conftest import start_server
from ehsm_wire import Client, EhsmError, b64, canon

MAGIC = b"EHSM-SIM-EVIDENCE-v1\0"


@pytest.fixture(scope="module")
def sim_server():
    """A server of its own that accepts simulated quotes (the shared fixture does not)."""
    yield from start_server("--tee", "sim", "--allow-simulated-quotes")


def enrolled(server):
    url, ca = server
    c = Client(url, ca=ca)
    c.enroll()
    return c


def response_sign_ok(apikey, result):
    """VerifyQuote's `sign`: HMAC-SHA256 under the apikey of canon({mr_enclave?, mr_signer?, nonce, result})."""
    fields = {k: result[k] for k in ("mr_enclave", "mr_signer", "nonce", "result") if k in result}
    mac = hmac.new(apikey.encode(), canon(fields).encode(), hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(mac).decode(), result["sign"])


def test_policies_upload_and_get(server):
    c = enrolled(server)
    enclave, signer = "AB" * 32, "cd" * 32
    out = c.post("UploadQuotePolicy", c.envelope({"mr_enclave": enclave, "mr_signer": signer}))
    assert (out["code"], out["message"]) == (200, "Upload quote policy success.")
    pid = out["result"]["policyId"]
    assert uuid.UUID(pid).version == 4
    out = c.post("GetQuotePolicy", c.envelope({"policyId": pid}))
    assert (out["code"], out["message"]) == (200, "Query quote policy success.")
    got = out["result"]
    assert (got["policyId"], got["mr_enclave"], got["mr_signer"]) == (pid, enclave.lower(), signer)
    assert isinstance(got["createTime"], int)
    # Unknown, and another app's: 200 with only the id (upstream's quirk).
    other = enrolled(server)
    assert other.call("GetQuotePolicy", {"policyId": pid}) == {"policyId": pid}
    unknown = str(uuid.uuid4())
    assert c.call("GetQuotePolicy", {"policyId": unknown}) == {"policyId": unknown}


def test_simulated_quotes_are_refused_by_default(server):
    c = enrolled(server)
    quote = c.call("GenerateQuote", {"challenge": b64(b"c")})["quote"]
    with pytest.raises(EhsmError) as e:
        c.call("VerifyQuote", {"quote": quote, "nonce": b64(b"n")})
    assert e.value.code == 400 and "--allow-simulated-quotes" in e.value.message


def test_generate_and_verify_with_policy_and_sign(sim_server):
    c = enrolled(sim_server)
    challenge = b64(b"fresh challenge")
    out = c.call("GenerateQuote", {"challenge": challenge})
    assert out["challenge"] == challenge
    quote = base64.b64decode(out["quote"])
    assert quote.startswith(MAGIC)
    # The report data binds the app and the challenge (ehsm's fix of upstream's zeros).
    digest = hashlib.sha256(b"ehsm GenerateQuote\0" + c.appid.encode() + b"\0" + challenge.encode()).digest()
    assert quote[len(MAGIC) + 32 : len(MAGIC) + 96] == digest + bytes(32)

    nonce = b64(b"nonce")
    r = c.call("VerifyQuote", {"quote": out["quote"], "nonce": nonce, "challenge": challenge})
    assert r["result"] == 0 and type(r["result"]) is int and r["nonce"] == nonce
    assert "mr_enclave" not in r
    assert response_sign_ok(c.apikey, r)

    enclave = quote[len(MAGIC) : len(MAGIC) + 32].hex()
    pid = c.call("UploadQuotePolicy", {"mr_enclave": enclave, "mr_signer": "0" * 64})["policyId"]
    r = c.call("VerifyQuote", {"quote": out["quote"], "nonce": nonce, "policyId": pid})
    assert (r["result"], r["mr_enclave"], r["mr_signer"]) == (0, enclave, "0" * 64)
    assert response_sign_ok(c.apikey, r)
    assert not response_sign_ok("x" * 32, r)

    other = c.call("UploadQuotePolicy", {"mr_enclave": "ab" * 32, "mr_signer": "0" * 64})["policyId"]
    with pytest.raises(EhsmError) as e:
        c.call("VerifyQuote", {"quote": out["quote"], "nonce": nonce, "policyId": other})
    assert e.value.code == 400 and "MRENCLAVE" in e.value.message
    with pytest.raises(EhsmError) as e:
        c.call("VerifyQuote", {"quote": out["quote"], "nonce": nonce, "policyId": str(uuid.uuid4())})
    assert (e.value.code, e.value.message) == (400, "Invalid  policyId.")
    with pytest.raises(EhsmError) as e:
        c.call("VerifyQuote", {"quote": out["quote"], "nonce": nonce, "challenge": b64(b"old")})
    assert e.value.code == 400 and "not bound to this challenge" in e.value.message
    with pytest.raises(EhsmError) as e:
        c.call("VerifyQuote", {"quote": b64(bytes(8193)), "nonce": nonce})
    assert (e.value.code, e.value.message) == (400, "The quote's length is invalid.")
