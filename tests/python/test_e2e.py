"""End-to-end tests with an independent Python client (requests + cryptography)."""

import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from ehsm_wire import Client, EhsmError, b64, canon, unb64

APPID = "b7c62e4d-c238-4016-b35f-47bc4b57dc03"
APIKEY = "D3nK2Vq90QrFkHGRZ3dBAyFEfPTtLfQy"


@pytest.mark.parametrize(
    "payload,nonce,expected_canon,expected_sign",
    [
        (
            {"keyspec": "EH_AES_GCM_256", "origin": "EH_INTERNAL_KEY", "keyusage": "EH_KEYUSAGE_ENCRYPT_DECRYPT"},
            None,
            f"appid={APPID}&payload=keyspec=EH_AES_GCM_256&keyusage=EH_KEYUSAGE_ENCRYPT_DECRYPT&origin=EH_INTERNAL_KEY&timestamp=1700000000000",
            "15sVY0CoLLgWBSBdyPKcBX3oL2kw7ldRWgfETtjbZV8=",
        ),
        (None, None, f"appid={APPID}&timestamp=1700000000000", "hDaIwPg7vUFWyWqIZSBb26vOVbQm+y2wC1RJiOvsUiQ="),
        ({}, None, f"appid={APPID}&payload=&timestamp=1700000000000", "60u9N67DrGvGMMHFN3lRDWeT+uhgWG3z7ftdcExJ/Y0="),
    ],
)
def test_this_client_signs_the_spec_vectors(payload, nonce, expected_canon, expected_sign):
    c = Client("https://unused", APPID, APIKEY)
    body = c.envelope(payload, timestamp="1700000000000", nonce="")
    del body["sign"]
    assert canon(body) == expected_canon
    assert c.envelope(payload, timestamp="1700000000000", nonce="")["sign"] == expected_sign


@pytest.fixture(scope="module")
def client(server):
    url, ca = server
    c = Client(url, ca=ca)
    assert "success" in c.enroll()["message"].lower()
    return c


def test_create_key_encrypt_decrypt(client):
    keyid = client.call("CreateKey", {"keyspec": "EH_AES_GCM_256", "origin": "EH_INTERNAL_KEY", "keyusage": "EH_KEYUSAGE_ENCRYPT_DECRYPT"})["keyid"]
    ct = client.call("Encrypt", {"keyid": keyid, "plaintext": b64(b"hello from python"), "aad": b64(b"ctx")})["ciphertext"]
    pt = client.call("Decrypt", {"keyid": keyid, "ciphertext": ct, "aad": b64(b"ctx")})["plaintext"]
    assert pt == b64(b"hello from python")  # canonical padded base64, compared as a string
    with pytest.raises(EhsmError) as e:
        client.call("Decrypt", {"keyid": keyid, "ciphertext": ct, "aad": b64(b"other")})
    assert e.value.code == 400


def test_data_key_decrypts_with_decrypt(client):
    keyid = client.call("CreateKey", {"keyspec": "EH_SM4_CBC", "origin": "EH_INTERNAL_KEY", "keyusage": "EH_KEYUSAGE_ENCRYPT_DECRYPT"})["keyid"]
    dk = client.call("GenerateDataKey", {"keyid": keyid, "keylen": 32})
    assert client.call("Decrypt", {"keyid": keyid, "ciphertext": dk["ciphertext"]})["plaintext"] == dk["plaintext"]


@pytest.mark.parametrize("spec,curve", [("EH_EC_P256", ec.SECP256R1()), ("EH_EC_P384", ec.SECP384R1()), ("EH_EC_P256K", ec.SECP256K1())])
def test_ec_signatures_verify_with_cryptography(client, spec, curve):
    keyid = client.call("CreateKey", {"keyspec": spec, "origin": "EH_INTERNAL_KEY", "keyusage": "EH_KEYUSAGE_SIGN_VERIFY"})["keyid"]
    pem = client.call("GetPublicKey", {"keyid": keyid})["pubkey"]
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n")
    pub = serialization.load_pem_public_key(pem.encode())
    assert pub.curve.name == curve.name
    msg = b"signed by ehsm, checked by cryptography"
    sig = unb64(client.call("Sign", {"keyid": keyid, "message": b64(msg), "message_type": "EH_RAW", "digest_mode": "EH_SHA_256", "padding_mode": "EH_PAD_NONE"})["signature"])
    pub.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
    # A digest message: the same signature semantics over a precomputed hash.
    digest = hashlib.sha256(msg).digest()
    sig2 = client.call("Sign", {"keyid": keyid, "message": b64(digest), "message_type": "EH_DIGEST", "digest_mode": "EH_SHA_256", "padding_mode": "EH_RSA_PKCS1"})["signature"]
    pub.verify(unb64(sig2), msg, ec.ECDSA(hashes.SHA256()))
    # And ehsm verifies it, padding ignored for EC (python's own SDK tests send EH_RSA_PKCS1).
    ok = client.call("Verify", {"keyid": keyid, "message": b64(msg), "message_type": "EH_RAW", "digest_mode": "EH_SHA_256", "padding_mode": "EH_RSA_PKCS1", "signature": b64(sig)})
    assert ok["result"] is True


@pytest.mark.parametrize("pad", ["EH_RSA_PKCS1", "EH_RSA_PKCS1_PSS"])
def test_rsa_signatures_and_pkcs1_public_key(client, pad):
    keyid = client.call("CreateKey", {"keyspec": "EH_RSA_2048", "origin": "EH_INTERNAL_KEY", "keyusage": "EH_KEYUSAGE_SIGN_VERIFY"})["keyid"]
    pem = client.call("GetPublicKey", {"keyid": keyid})["pubkey"]
    assert pem.startswith("-----BEGIN RSA PUBLIC KEY-----\n")  # PKCS#1, spec section 6.6
    assert all(len(line) <= 64 for line in pem.splitlines())
    pub = serialization.load_pem_public_key(pem.encode())
    msg = b"rsa from python"
    sig = unb64(client.call("Sign", {"keyid": keyid, "message": b64(msg), "message_type": "EH_RAW", "digest_mode": "EH_SHA_256", "padding_mode": pad})["signature"])
    assert len(sig) == 256
    p = padding.PKCS1v15() if pad == "EH_RSA_PKCS1" else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    pub.verify(sig, msg, p, hashes.SHA256())
    with pytest.raises(InvalidSignature):
        pub.verify(sig, msg + b"!", p, hashes.SHA256())


def test_rsa_oaep_encryption_from_python(client):
    keyid = client.call("CreateKey", {"keyspec": "EH_RSA_3072", "origin": "EH_INTERNAL_KEY", "keyusage": "EH_KEYUSAGE_ENCRYPT_DECRYPT"})["keyid"]
    pub = serialization.load_pem_public_key(client.call("GetPublicKey", {"keyid": keyid})["pubkey"].encode())
    ct = pub.encrypt(b"wrapped in python", padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    pt = client.call("AsymmetricDecrypt", {"keyid": keyid, "ciphertext": b64(ct), "padding_mode": "EH_RSA_PKCS1_OAEP"})["plaintext"]
    assert unb64(pt) == b"wrapped in python"


def test_byok_from_python(client):
    keyid = client.call("CreateKey", {"keyspec": "EH_AES_GCM_128", "origin": "EH_EXTERNAL_KEY", "keyusage": "EH_KEYUSAGE_ENCRYPT_DECRYPT"})["keyid"]
    params = client.call("GetParametersForImport", {"keyid": keyid, "keyspec": "EH_RSA_2048"})
    pub = serialization.load_pem_public_key(params["pubkey"].encode())
    material = b"0123456789abcdef"  # the python SDK imports printable bytes
    wrapped = pub.encrypt(material, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    out = client.call("ImportKeyMaterial", {"keyid": keyid, "padding_mode": "EH_RSA_PKCS1_OAEP", "key_material": b64(wrapped), "importToken": params["importToken"]})
    assert out["result"] is True
    ct = client.call("Encrypt", {"keyid": keyid, "plaintext": b64(b"byok")})["ciphertext"]
    assert unb64(client.call("Decrypt", {"keyid": keyid, "ciphertext": ct})["plaintext"]) == b"byok"


def test_list_key_items_have_all_six_fields(client):
    client.call("CreateKey", {"keyspec": "EH_SM2", "origin": "EH_INTERNAL_KEY", "keyusage": "EH_KEYUSAGE_SIGN_VERIFY"})
    items = client.call("ListKey")["list"]
    assert items
    for item in items:
        assert set(item) == {"keyid", "creationDate", "expireTime", "alias", "keyspec", "keyState"}
        assert item["alias"] == "" and item["keyState"] in (0, 1)
        assert isinstance(item["creationDate"], int)


def test_exact_resend_is_a_replay(client):
    body = client.envelope({"keyspec": "EH_AES_GCM_128", "origin": "EH_INTERNAL_KEY", "keyusage": "EH_KEYUSAGE_ENCRYPT_DECRYPT"})
    assert client.post("CreateKey", body)["code"] == 200
    again = client.post("CreateKey", body)
    assert again["code"] == 400
    assert again["message"] == "Timestamp can't be repeated in 20 minutes"


def test_bad_inputs_are_400_with_upstreams_messages(client):
    cases = [
        ("Encrypt", {"keyid": "aac3e45a-d3dc-4791-89b6-4ada0e38e6ef"}, "Missing required parameters, The plaintext cannot be empty."),
        ("Encrypt", {"keyid": "AAC3E45A-D3DC-4791-89B6-4ADA0E38E6EF", "plaintext": "aGk="}, "Parameter invalid, The keyid format wrong."),
        ("GenerateDataKey", {"keyid": "aac3e45a-d3dc-4791-89b6-4ada0e38e6ef", "keylen": 1025}, "Parameter invalid, The keylen value must be less than or equal to 1024."),
        ("CreateKey", {"keyspec": "EH_AES_GCM_512", "origin": "EH_INTERNAL_KEY", "keyusage": "EH_KEYUSAGE_ENCRYPT_DECRYPT"}, "Parameter invalid, The keyspec type is incorrect."),
        ("Encrypt", {"keyid": "aac3e45a-d3dc-4791-89b6-4ada0e38e6ef", "plaintext": "aGk="}, "keyid error"),
    ]
    for action, payload, message in cases:
        out = client.post(action, client.envelope(payload))
        assert (out["code"], out["message"]) == (400, message), (action, payload, out)
