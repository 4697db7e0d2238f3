"""The key lifecycle (ehsm extensions) through the independent Python client: data, signatures,
public-key ciphertexts and MACs made before a rotation keep working, public keys per version
checked with `cryptography`, aliases wherever a keyid goes (and only within their app),
ReEncrypt, DescribeKey, rotation policies, scheduled deletion, and every bad input a 400 with
the server's message that leaves the app's keys as they were."""

import time

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from ehsm_wire import Client, EhsmError, b64, unb64

DAY_MS = 86_400_000
ENCRYPT = "EH_KEYUSAGE_ENCRYPT_DECRYPT"
SIGN = "EH_KEYUSAGE_SIGN_VERIFY"
DECRYPTION_FAILED = "Decryption failed, Please confirm that your parameters are correct."
NOT_SYMMETRIC = "Operation not permitted, Encrypt and Decrypt need an AES or SM4 key."
EXTERNAL = (
    "Operation not permitted, an external (EH_EXTERNAL_KEY) key cannot be rotated: its material is yours, "
    "not ehsm's. Create a new external key and import new material into it instead."
)
ASYMMETRIC_INTERVAL = (
    "Parameter invalid, The rotationInterval is for symmetric and HMAC keys: an asymmetric key rotates "
    "only with RotateKey (a new key pair changes the public key that verifiers hold)."
)
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def now_ms():
    return int(time.time() * 1000)


def enrolled(server):
    url, ca = server
    c = Client(url, ca=ca)
    c.enroll()
    return c


@pytest.fixture()
def client(server):
    """A freshly enrolled app per test: aliases and key lists of one test are not another's."""
    return enrolled(server)


def create(c, spec, usage=ENCRYPT, **extra):
    return c.call("CreateKey", {"keyspec": spec, "origin": "EH_INTERNAL_KEY", "keyusage": usage, **extra})["keyid"]


def refused(c, action, payload):
    """The message of a request that must be refused with body code 400."""
    with pytest.raises(EhsmError) as e:
        c.call(action, payload)
    assert e.value.code == 400, e.value
    return e.value.message


def succeeds(c, action, payload):
    """A management action, whose whole answer is upstream's `successful` and an empty result."""
    out = c.post(action, c.envelope(payload))
    assert (out["code"], out["message"], out["result"]) == (200, "successful", {}), out


def header_version(ciphertext):
    """The key version a symmetric ciphertext names: its header is the format byte, then the
    version in LEB128, one byte below 128 (crates/ehsm-core/src/ciphertext.rs)."""
    raw = unb64(ciphertext)
    assert raw[0] == 1 and raw[1] < 0x80
    return raw[1]


def version_numbers(c, keyid):
    return [v["keyversion"] for v in c.call("ListKeyVersions", {"keyid": keyid})["versions"]]


def pending_message(date):
    return f"keyid is pending deletion: it will be deleted at {date} (ms since the epoch); CancelKeyDeletion keeps it."


@pytest.mark.parametrize("spec", ["EH_AES_GCM_256", "EH_SM4_CBC", "EH_SM4_CTR"])
def test_version_1_data_decrypts_after_two_rotations(client, spec):
    before = now_ms()
    keyid = create(client, spec)
    plaintext = b64(b"made under version 1")
    v1 = client.call("Encrypt", {"keyid": keyid, "plaintext": plaintext, "aad": b64(b"ctx")})["ciphertext"]
    dk = client.call("GenerateDataKey", {"keyid": keyid, "keylen": 48, "aad": b64(b"dk")})
    assert (header_version(v1), header_version(dk["ciphertext"])) == (1, 1)

    for expected in (2, 3):
        assert client.call("RotateKey", {"keyid": keyid}) == {"keyid": keyid, "keyversion": expected}
    versions = client.call("ListKeyVersions", {"keyid": keyid})
    assert set(versions) == {"keyid", "primaryVersion", "versions"}
    assert (versions["keyid"], versions["primaryVersion"]) == (keyid, 3)
    assert [v["keyversion"] for v in versions["versions"]] == [1, 2, 3]
    dates = [v["creationDate"] for v in versions["versions"]]
    assert before <= dates[0] <= dates[1] <= dates[2] <= now_ms()

    back = client.call("Decrypt", {"keyid": keyid, "ciphertext": v1, "aad": b64(b"ctx")})
    assert back["plaintext"] == plaintext
    assert client.call("Decrypt", {"keyid": keyid, "ciphertext": dk["ciphertext"], "aad": b64(b"dk")})["plaintext"] == dk["plaintext"]
    if spec.startswith("EH_AES_GCM"):
        # Still bound to its aad, and to the version its header names: the same bytes claiming
        # version 2 do not decrypt. (SM4 takes no aad and has no tag, as upstream: a wrong key
        # gives other bytes, which the plaintext comparison above would have caught.)
        assert refused(client, "Decrypt", {"keyid": keyid, "ciphertext": v1, "aad": b64(b"other")}) == DECRYPTION_FAILED
        claimed = bytearray(unb64(v1))
        claimed[1] = 2
        assert refused(client, "Decrypt", {"keyid": keyid, "ciphertext": b64(bytes(claimed)), "aad": b64(b"ctx")}) == DECRYPTION_FAILED

    v3 = client.call("Encrypt", {"keyid": keyid, "plaintext": plaintext})["ciphertext"]
    assert header_version(v3) == 3
    assert header_version(client.call("GenerateDataKeyWithoutPlaintext", {"keyid": keyid, "keylen": 16})["ciphertext"]) == 3
    assert client.call("Decrypt", {"keyid": keyid, "ciphertext": v3})["plaintext"] == plaintext


def test_reencrypt_to_the_primary_version_and_to_another_key(client):
    source = create(client, "EH_AES_GCM_256")
    other = create(client, "EH_SM4_CBC")
    succeeds(client, "CreateAlias", {"alias": "alias/destination", "keyid": other})
    plaintext = b64(b"moved, never shown")
    old = client.call("Encrypt", {"keyid": source, "plaintext": plaintext, "aad": b64(b"a")})["ciphertext"]
    client.call("RotateKey", {"keyid": source})

    # The same key: the ciphertext moves to version 2 and to the new aad.
    moved = client.call("ReEncrypt", {"keyid": source, "ciphertext": old, "aad": b64(b"a"), "destinationkeyid": source, "destinationaad": b64(b"b")})
    assert set(moved) == {"ciphertext", "keyid", "keyversion"}
    assert (moved["keyid"], moved["keyversion"], header_version(moved["ciphertext"])) == (source, 2, 2)
    assert client.call("Decrypt", {"keyid": source, "ciphertext": moved["ciphertext"], "aad": b64(b"b")})["plaintext"] == plaintext
    assert refused(client, "Decrypt", {"keyid": source, "ciphertext": moved["ciphertext"], "aad": b64(b"a")}) == DECRYPTION_FAILED

    # Another key (another algorithm, named by its alias; the answer names the keyid), no aad.
    there = client.call("ReEncrypt", {"keyid": source, "ciphertext": old, "aad": b64(b"a"), "destinationkeyid": "alias/destination"})
    assert (there["keyid"], there["keyversion"]) == (other, 1)
    assert client.call("Decrypt", {"keyid": other, "ciphertext": there["ciphertext"]})["plaintext"] == plaintext
    assert refused(client, "Decrypt", {"keyid": source, "ciphertext": there["ciphertext"]}) == DECRYPTION_FAILED

    # The source's aad must be right, and the destination must be a symmetric cipher.
    wrong_aad = {"keyid": source, "ciphertext": old, "aad": b64(b"x"), "destinationkeyid": other}
    assert refused(client, "ReEncrypt", wrong_aad) == DECRYPTION_FAILED
    for spec, usage in [("EH_EC_P256", SIGN), ("EH_HMAC", SIGN), ("EH_RSA_2048", ENCRYPT)]:
        dest = create(client, spec, usage)
        payload = {"keyid": source, "ciphertext": old, "aad": b64(b"a"), "destinationkeyid": dest}
        assert refused(client, "ReEncrypt", payload) == NOT_SYMMETRIC, spec
    # Nothing was consumed: the original still decrypts where it was.
    assert client.call("Decrypt", {"keyid": source, "ciphertext": old, "aad": b64(b"a")})["plaintext"] == plaintext


EC_SIGN = {"message_type": "EH_RAW", "digest_mode": "EH_SHA_256", "padding_mode": "EH_PAD_NONE"}
RSA_SIGN = {"message_type": "EH_RAW", "digest_mode": "EH_SHA_256", "padding_mode": "EH_RSA_PKCS1_PSS"}


def ec_verify(pub, sig, msg):
    pub.verify(sig, msg, ec.ECDSA(hashes.SHA256()))


def rsa_verify(pub, sig, msg):
    pub.verify(sig, msg, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())


@pytest.mark.parametrize(
    "spec,modes,check",
    [("EH_EC_P256", EC_SIGN, ec_verify), ("EH_RSA_2048", RSA_SIGN, rsa_verify)],
    ids=["ec", "rsa"],
)
def test_version_1_signature_verifies_after_rotation(client, spec, modes, check):
    keyid = create(client, spec, SIGN)
    msg = b"signed under version 1"
    sign = {"keyid": keyid, "message": b64(msg), **modes}
    signed = client.call("Sign", sign)
    assert signed["keyversion"] == 1
    first = client.call("GetPublicKey", {"keyid": keyid})
    assert (first["keyid"], first["keyversion"]) == (keyid, 1)
    assert client.call("RotateKey", {"keyid": keyid}) == {"keyid": keyid, "keyversion": 2}

    verify = {**sign, "signature": signed["signature"]}
    assert client.call("Verify", verify) == {"result": True, "keyversion": 1}
    assert client.call("Verify", {**verify, "keyversion": 1}) == {"result": True, "keyversion": 1}
    assert client.call("Verify", {**verify, "keyversion": 2}) == {"result": False}

    # Each version has its own key pair; version 1's public key is still served, unchanged.
    second = client.call("GetPublicKey", {"keyid": keyid})
    assert (second["keyid"], second["keyversion"]) == (keyid, 2)
    assert second["pubkey"] != first["pubkey"]
    assert client.call("GetPublicKey", {"keyid": keyid, "keyversion": 1}) == first
    assert client.call("GetPublicKey", {"keyid": keyid, "keyversion": 2}) == second
    pub1 = serialization.load_pem_public_key(first["pubkey"].encode())
    pub2 = serialization.load_pem_public_key(second["pubkey"].encode())
    sig1 = unb64(signed["signature"])
    check(pub1, sig1, msg)
    with pytest.raises(InvalidSignature):
        check(pub2, sig1, msg)

    # New signatures come from version 2 unless version 1 is asked for.
    new = client.call("Sign", sign)
    assert new["keyversion"] == 2
    check(pub2, unb64(new["signature"]), msg)
    assert client.call("Verify", {**sign, "signature": new["signature"]}) == {"result": True, "keyversion": 2}
    assert client.call("Verify", {**sign, "signature": new["signature"], "keyversion": 1}) == {"result": False}
    old = client.call("Sign", {**sign, "keyversion": 1})
    assert old["keyversion"] == 1
    check(pub1, unb64(old["signature"]), msg)


def test_public_key_ciphertext_from_version_1_decrypts_after_rotation(client):
    keyid = create(client, "EH_RSA_2048")
    pem1 = client.call("GetPublicKey", {"keyid": keyid})["pubkey"]
    wrapped = serialization.load_pem_public_key(pem1.encode()).encrypt(b"wrapped by python under v1", OAEP)
    client.call("RotateKey", {"keyid": keyid})

    decrypt = {"keyid": keyid, "ciphertext": b64(wrapped), "padding_mode": "EH_RSA_PKCS1_OAEP"}
    expected = {"plaintext": b64(b"wrapped by python under v1"), "keyversion": 1}
    assert client.call("AsymmetricDecrypt", decrypt) == expected
    assert client.call("AsymmetricDecrypt", {**decrypt, "keyversion": 1}) == expected
    assert refused(client, "AsymmetricDecrypt", {**decrypt, "keyversion": 2}) == DECRYPTION_FAILED

    # The server encrypts under the primary version, or under the one asked for.
    encrypt = {"keyid": keyid, "plaintext": b64(b"server side"), "padding_mode": "EH_RSA_PKCS1_OAEP"}
    for asked, version in [({}, 2), ({"keyversion": 1}, 1)]:
        out = client.call("AsymmetricEncrypt", {**encrypt, **asked})
        assert out["keyversion"] == version
        back = client.call("AsymmetricDecrypt", {**decrypt, "ciphertext": out["ciphertext"]})
        assert back == {"plaintext": b64(b"server side"), "keyversion": version}
    pem2 = client.call("GetPublicKey", {"keyid": keyid})["pubkey"]
    wrapped2 = serialization.load_pem_public_key(pem2.encode()).encrypt(b"under v2", OAEP)
    assert client.call("AsymmetricDecrypt", {**decrypt, "ciphertext": b64(wrapped2)})["keyversion"] == 2


def test_mac_from_before_rotation_verifies_after(client):
    keyid = create(client, "EH_HMAC", SIGN)
    msg = {"keyid": keyid, "message": b64(b"webhook body")}
    mac1 = client.call("GenerateMac", msg)["mac"]
    client.call("RotateKey", {"keyid": keyid})
    assert client.call("VerifyMac", {**msg, "mac": mac1}) == {"result": True, "keyversion": 1}
    mac2 = client.call("GenerateMac", msg)["mac"]
    assert mac2 != mac1
    assert client.call("VerifyMac", {**msg, "mac": mac2}) == {"result": True, "keyversion": 2}
    tampered = bytearray(unb64(mac1))
    tampered[0] ^= 1
    assert client.call("VerifyMac", {**msg, "mac": b64(bytes(tampered))}) == {"result": False}
    assert client.call("VerifyMac", {"keyid": keyid, "message": b64(b"other body"), "mac": mac1}) == {"result": False}


def test_aliases_name_keys_in_every_action(client):
    name = "alias/app/data-key_1"
    first = create(client, "EH_AES_GCM_128")
    # AES-GCM both: a ciphertext of one fails for certain under the other.
    second = create(client, "EH_AES_GCM_256")
    signer = create(client, "EH_EC_P256", SIGN)
    succeeds(client, "CreateAlias", {"alias": name, "keyid": first})
    succeeds(client, "CreateAlias", {"alias": "alias/b", "keyid": first})
    longest = "alias/" + "x" * 250
    succeeds(client, "CreateAlias", {"alias": longest, "keyid": signer})

    ct = client.call("Encrypt", {"keyid": name, "plaintext": b64(b"by alias")})["ciphertext"]
    assert client.call("Decrypt", {"keyid": first, "ciphertext": ct})["plaintext"] == b64(b"by alias")
    assert client.call("Decrypt", {"keyid": "alias/b", "ciphertext": ct})["plaintext"] == b64(b"by alias")
    described = client.call("DescribeKey", {"keyid": name})
    assert (described["keyid"], described["aliases"]) == (first, [name, "alias/b"])
    assert client.call("RotateKey", {"keyid": name}) == {"keyid": first, "keyversion": 2}
    assert client.call("ListKeyVersions", {"keyid": "alias/b"})["keyid"] == first
    assert client.call("DescribeKey", {"keyid": first})["primaryVersion"] == 2

    sign = {"keyid": longest, "message": b64(b"m"), **EC_SIGN}
    sig = client.call("Sign", sign)["signature"]
    assert client.call("Verify", {**sign, "signature": sig}) == {"result": True, "keyversion": 1}
    assert client.call("GetPublicKey", {"keyid": longest})["keyid"] == signer

    # ListKey's `alias`: the key's aliases, comma-separated in name order; "" for none.
    listed = {k["keyid"]: k["alias"] for k in client.call("ListKey")["list"]}
    assert listed == {first: f"{name},alias/b", second: "", signer: longest}
    # ListAliases: name order ("alias/app/..." < "alias/b" < "alias/xx...").
    assert client.call("ListAliases") == {"aliases": [{"alias": name, "keyid": first}, {"alias": "alias/b", "keyid": first}, {"alias": longest, "keyid": signer}]}
    assert client.call("ListAliases", {"keyid": "alias/b"}) == {"aliases": [{"alias": name, "keyid": first}, {"alias": "alias/b", "keyid": first}]}

    # Repointed to a key of the same kind: the alias now encrypts under it, and a ciphertext of
    # the old key no longer decrypts through the alias.
    succeeds(client, "UpdateAlias", {"alias": name, "keyid": second})
    ct2 = client.call("Encrypt", {"keyid": name, "plaintext": b64(b"now the second")})["ciphertext"]
    assert client.call("Decrypt", {"keyid": second, "ciphertext": ct2})["plaintext"] == b64(b"now the second")
    assert refused(client, "Decrypt", {"keyid": name, "ciphertext": ct}) == DECRYPTION_FAILED
    assert client.call("ListAliases", {"keyid": first}) == {"aliases": [{"alias": "alias/b", "keyid": first}]}
    assert client.call("DescribeKey", {"keyid": second})["aliases"] == [name]

    # Deleted: the name is unknown, the key works by keyid, the name can be used again.
    succeeds(client, "DeleteAlias", {"alias": name})
    assert refused(client, "Encrypt", {"keyid": name, "plaintext": b64(b"x")}) == f"Parameter invalid, The alias {name} does not exist."
    assert refused(client, "DeleteAlias", {"alias": name}) == f"Parameter invalid, The alias {name} does not exist."
    assert client.call("Decrypt", {"keyid": second, "ciphertext": ct2})["plaintext"] == b64(b"now the second")
    succeeds(client, "CreateAlias", {"alias": name, "keyid": first})

    # Deleting a key (by alias) takes its aliases with it.
    succeeds(client, "DeleteKey", {"keyid": "alias/b"})
    assert client.call("ListAliases") == {"aliases": [{"alias": longest, "keyid": signer}]}
    assert refused(client, "Encrypt", {"keyid": "alias/b", "plaintext": b64(b"x")}) == "Parameter invalid, The alias alias/b does not exist."


def test_another_apps_aliases_are_invisible(server, client):
    other = enrolled(server)
    mine = create(client, "EH_AES_GCM_256")
    succeeds(client, "CreateAlias", {"alias": "alias/shared", "keyid": mine})
    by_alias = {"keyid": "alias/shared", "plaintext": b64(b"x")}
    unknown = "Parameter invalid, The alias alias/shared does not exist."

    assert refused(other, "Encrypt", by_alias) == unknown
    assert refused(other, "DescribeKey", {"keyid": "alias/shared"}) == unknown
    assert refused(other, "DeleteAlias", {"alias": "alias/shared"}) == unknown
    assert other.call("ListAliases") == {"aliases": []}
    # Nor can it name my key in an alias of its own, or manage it by keyid.
    assert refused(other, "CreateAlias", {"alias": "alias/stolen", "keyid": mine}) == "keyid error"
    for action in ("DescribeKey", "ListKeyVersions", "RotateKey", "ScheduleKeyDeletion"):
        assert refused(other, action, {"keyid": mine}) == "keyid error", action
    assert client.call("DescribeKey", {"keyid": mine})["primaryVersion"] == 1
    assert client.call("DescribeKey", {"keyid": mine})["deletionDate"] is None

    # It may have its own alias of the same name; each app's name means its own key.
    theirs = create(other, "EH_AES_GCM_256")
    succeeds(other, "CreateAlias", {"alias": "alias/shared", "keyid": theirs})
    ct_mine = client.call("Encrypt", by_alias)["ciphertext"]
    ct_theirs = other.call("Encrypt", by_alias)["ciphertext"]
    assert client.call("Decrypt", {"keyid": mine, "ciphertext": ct_mine})["plaintext"] == b64(b"x")
    assert other.call("Decrypt", {"keyid": theirs, "ciphertext": ct_theirs})["plaintext"] == b64(b"x")
    assert refused(client, "Decrypt", {"keyid": "alias/shared", "ciphertext": ct_theirs}) == DECRYPTION_FAILED
    # A ciphertext cannot be moved into another app's key either.
    move = {"keyid": mine, "ciphertext": ct_mine, "destinationkeyid": theirs}
    assert refused(client, "ReEncrypt", move) == "keyid error"
    assert client.call("ListAliases") == {"aliases": [{"alias": "alias/shared", "keyid": mine}]}
    assert other.call("ListAliases") == {"aliases": [{"alias": "alias/shared", "keyid": theirs}]}
    succeeds(other, "DeleteAlias", {"alias": "alias/shared"})
    assert client.call("DescribeKey", {"keyid": "alias/shared"})["keyid"] == mine


def test_scheduled_deletion_refuses_use_until_cancelled(client):
    keyid = create(client, "EH_AES_GCM_256")
    succeeds(client, "CreateAlias", {"alias": "alias/doomed", "keyid": keyid})
    ct = client.call("Encrypt", {"keyid": keyid, "plaintext": b64(b"kept")})["ciphertext"]
    before = now_ms()
    out = client.post("ScheduleKeyDeletion", client.envelope({"keyid": "alias/doomed", "pendingWindowInDays": 7}))
    assert (out["code"], set(out["result"])) == (200, {"deletionDate"}), out
    date = out["result"]["deletionDate"]
    assert before + 7 * DAY_MS <= date <= now_ms() + 7 * DAY_MS

    for action, payload in [
        ("Encrypt", {"keyid": keyid, "plaintext": b64(b"x")}),
        ("Encrypt", {"keyid": "alias/doomed", "plaintext": b64(b"x")}),
        ("Decrypt", {"keyid": keyid, "ciphertext": ct}),
        ("GenerateDataKey", {"keyid": keyid, "keylen": 16}),
        ("RotateKey", {"keyid": keyid}),
        ("UpdateRotationPolicy", {"keyid": keyid, "enable": True}),
    ]:
        assert refused(client, action, payload) == pending_message(date), action
    assert refused(client, "EnableKey", {"keyid": keyid}) == "keyid is pending deletion: CancelKeyDeletion first, then EnableKey."
    again = refused(client, "ScheduleKeyDeletion", {"keyid": keyid, "pendingWindowInDays": 30})
    assert again == f"Parameter invalid, The keyid is already pending deletion (deletionDate {date})."

    # Still managed: described (disabled, with its date, the second request changing nothing),
    # listed, its versions and aliases shown.
    described = client.call("DescribeKey", {"keyid": keyid})
    assert (described["keyState"], described["deletionDate"], described["aliases"]) == (0, date, ["alias/doomed"])
    assert [(k["keyid"], k["keyState"]) for k in client.call("ListKey")["list"]] == [(keyid, 0)]
    assert version_numbers(client, keyid) == [1]

    # Cancelled: disabled until enabled, then everything works again.
    succeeds(client, "CancelKeyDeletion", {"keyid": "alias/doomed"})
    assert refused(client, "CancelKeyDeletion", {"keyid": keyid}) == "Parameter invalid, The keyid is not pending deletion."
    described = client.call("DescribeKey", {"keyid": keyid})
    assert (described["keyState"], described["deletionDate"]) == (0, None)
    assert refused(client, "Encrypt", {"keyid": keyid, "plaintext": b64(b"x")}) == "keyid is disabled"
    succeeds(client, "EnableKey", {"keyid": keyid})
    assert client.call("Decrypt", {"keyid": "alias/doomed", "ciphertext": ct})["plaintext"] == b64(b"kept")
    assert client.call("RotateKey", {"keyid": keyid})["keyversion"] == 2

    # Without a window: AWS KMS's default, 30 days.
    other = create(client, "EH_EC_P256", SIGN)
    before = now_ms()
    date = client.call("ScheduleKeyDeletion", {"keyid": other})["deletionDate"]
    assert before + 30 * DAY_MS <= date <= now_ms() + 30 * DAY_MS

    # A key that encrypts a secret is not scheduled, as DeleteKey refuses it.
    client.call("CreateSecret", {"secretName": "pw", "secretData": "v", "encryptionKeyId": keyid})
    message = refused(client, "ScheduleKeyDeletion", {"keyid": keyid, "pendingWindowInDays": 7})
    assert message == "Cannot schedule the key's deletion: it encrypts 1 secret, which would become unreadable; delete it first."
    assert client.call("DescribeKey", {"keyid": keyid})["deletionDate"] is None
    assert client.call("GetSecretValue", {"secretName": "pw"})["secretData"] == "v"


def test_describe_key_fields(client):
    before = now_ms()
    keyid = create(client, "EH_AES_GCM_256", rotationInterval=30, description="orders table")
    signer = create(client, "EH_EC_P384", SIGN)
    listed = {k["keyid"]: k for k in client.call("ListKey")["list"]}

    d = client.call("DescribeKey", {"keyid": keyid})
    assert set(d) == {"keyid", "keyspec", "origin", "keyusage", "keyState", "creationDate", "expireTime", "primaryVersion", "aliases", "rotation", "deletionDate", "description"}
    assert {k: d[k] for k in ("keyid", "keyspec", "origin", "keyusage", "keyState", "primaryVersion", "aliases", "deletionDate", "description")} == {
        "keyid": keyid, "keyspec": "EH_AES_GCM_256", "origin": "EH_INTERNAL_KEY", "keyusage": ENCRYPT,
        "keyState": 1, "primaryVersion": 1, "aliases": [], "deletionDate": None, "description": "orders table",
    }
    assert (d["creationDate"], d["expireTime"]) == (listed[keyid]["creationDate"], listed[keyid]["expireTime"])
    assert before <= d["creationDate"] < d["expireTime"]
    assert d["rotation"] == {"enable": True, "rotationInterval": 30, "nextRotationDate": d["creationDate"] + 30 * DAY_MS}

    s = client.call("DescribeKey", {"keyid": signer})
    assert (s["keyspec"], s["keyusage"], s["description"]) == ("EH_EC_P384", SIGN, None)
    assert s["rotation"] == {"enable": False, "rotationInterval": None, "nextRotationDate": None}

    # A manual rotation adds a version and leaves the schedule alone; a disabled key is
    # still described.
    client.call("RotateKey", {"keyid": keyid})
    succeeds(client, "DisableKey", {"keyid": keyid})
    after = client.call("DescribeKey", {"keyid": keyid})
    assert (after["primaryVersion"], after["keyState"], after["rotation"]) == (2, 0, d["rotation"])


def test_update_rotation_policy(client):
    keyid = create(client, "EH_AES_GCM_128")
    before = now_ms()
    succeeds(client, "UpdateRotationPolicy", {"keyid": keyid, "enable": True, "rotationInterval": 90})
    rotation = client.call("DescribeKey", {"keyid": keyid})["rotation"]
    assert (rotation["enable"], rotation["rotationInterval"]) == (True, 90)
    assert before + 90 * DAY_MS <= rotation["nextRotationDate"] <= now_ms() + 90 * DAY_MS

    # Off: the interval is kept, nothing is due; on again without an interval: the kept one.
    succeeds(client, "UpdateRotationPolicy", {"keyid": keyid, "enable": False})
    assert client.call("DescribeKey", {"keyid": keyid})["rotation"] == {"enable": False, "rotationInterval": 90, "nextRotationDate": None}
    before = now_ms()
    succeeds(client, "UpdateRotationPolicy", {"keyid": keyid, "enable": True})
    rotation = client.call("DescribeKey", {"keyid": keyid})["rotation"]
    assert rotation["rotationInterval"] == 90
    assert before + 90 * DAY_MS <= rotation["nextRotationDate"] <= now_ms() + 90 * DAY_MS
    assert version_numbers(client, keyid) == [1], "a policy change is not a rotation"

    # A key that never had an interval gets AWS KMS's default, 365 days; the bounds 7 and
    # 2560 are accepted, for HMAC keys too.
    fresh = create(client, "EH_SM4_CTR")
    before = now_ms()
    succeeds(client, "UpdateRotationPolicy", {"keyid": fresh, "enable": True})
    rotation = client.call("DescribeKey", {"keyid": fresh})["rotation"]
    assert rotation["rotationInterval"] == 365
    assert before + 365 * DAY_MS <= rotation["nextRotationDate"] <= now_ms() + 365 * DAY_MS
    mac = create(client, "EH_HMAC", SIGN)
    for days in (7, 2560):
        succeeds(client, "UpdateRotationPolicy", {"keyid": mac, "enable": True, "rotationInterval": days})
        assert client.call("DescribeKey", {"keyid": mac})["rotation"]["rotationInterval"] == days

    # A disabled key cannot be scheduled for rotation, but its schedule can be turned off.
    succeeds(client, "DisableKey", {"keyid": keyid})
    assert refused(client, "UpdateRotationPolicy", {"keyid": keyid, "enable": True}) == "keyid is disabled"
    succeeds(client, "UpdateRotationPolicy", {"keyid": keyid, "enable": False})
    assert client.call("DescribeKey", {"keyid": keyid})["rotation"]["enable"] is False


# Bad inputs. Each case runs against an app with a known set of keys and aliases (`world`);
# `payload` is a function of it. The whole app (ListKey, every key's DescribeKey and
# ListKeyVersions, ListAliases) must be the same after the refusal.


@pytest.fixture()
def world(client):
    w = {
        "aes": create(client, "EH_AES_GCM_256"),
        "sm4": create(client, "EH_SM4_CBC"),
        "ec": create(client, "EH_EC_P256", SIGN),
        "disabled": create(client, "EH_AES_GCM_128"),
        "external": client.call("CreateKey", {"keyspec": "EH_AES_GCM_256", "origin": "EH_EXTERNAL_KEY", "keyusage": ENCRYPT})["keyid"],
    }
    succeeds(client, "DisableKey", {"keyid": w["disabled"]})
    succeeds(client, "CreateAlias", {"alias": "alias/taken", "keyid": w["aes"]})
    w["ciphertext"] = client.call("Encrypt", {"keyid": w["aes"], "plaintext": b64(b"x")})["ciphertext"]
    w["signature"] = client.call("Sign", {"keyid": w["ec"], "message": b64(b"m"), **EC_SIGN})["signature"]
    return w


def snapshot(c):
    keys = c.call("ListKey")["list"]
    return {
        "keys": keys,
        "described": [c.call("DescribeKey", {"keyid": k["keyid"]}) for k in keys],
        "versions": [c.call("ListKeyVersions", {"keyid": k["keyid"]}) for k in keys],
        "aliases": c.call("ListAliases"),
    }


def alias_with(name):
    return lambda w: {"alias": name, "keyid": w["aes"]}


def sign_ec(w, **extra):
    return {"keyid": w["ec"], "message": b64(b"m"), **EC_SIGN, **extra}


@pytest.mark.parametrize(
    "action,payload,message",
    [
        pytest.param("Encrypt", lambda w: {"keyid": "alias/nope", "plaintext": b64(b"x")}, "Parameter invalid, The alias alias/nope does not exist.", id="unknown-alias-encrypt"),
        pytest.param("RotateKey", lambda w: {"keyid": "alias/nope"}, "Parameter invalid, The alias alias/nope does not exist.", id="unknown-alias-rotate"),
        pytest.param("ListAliases", lambda w: {"keyid": "alias/nope"}, "Parameter invalid, The alias alias/nope does not exist.", id="unknown-alias-list"),
        pytest.param("UpdateAlias", lambda w: {"alias": "alias/nope", "keyid": w["sm4"]}, "Parameter invalid, The alias alias/nope does not exist.", id="update-unknown-alias"),
        pytest.param("DeleteAlias", lambda w: {"alias": "alias/nope"}, "Parameter invalid, The alias alias/nope does not exist.", id="delete-unknown-alias"),
        pytest.param("CreateAlias", lambda w: {"alias": "alias/taken", "keyid": w["sm4"]}, "Parameter invalid, The alias alias/taken already exists: UpdateAlias points it at another key.", id="duplicate-alias"),
        pytest.param("CreateAlias", lambda w: {"alias": "alias/new", "keyid": "alias/taken"}, "Parameter invalid, The keyid of an alias must be a keyid, not another alias.", id="alias-naming-alias"),
        pytest.param("UpdateAlias", lambda w: {"alias": "alias/taken", "keyid": "alias/taken"}, "Parameter invalid, The keyid of an alias must be a keyid, not another alias.", id="update-to-alias"),
        pytest.param("UpdateAlias", lambda w: {"alias": "alias/taken", "keyid": w["ec"]}, "Parameter invalid, The keyid must be a key of the same kind as the one alias/taken names now (EH_AES_GCM_256 with usage EH_KEYUSAGE_ENCRYPT_DECRYPT).", id="update-to-other-kind"),
        pytest.param("CreateAlias", lambda w: {"alias": "alias/x", "keyid": "00000000-0000-0000-0000-000000000000"}, "keyid error", id="alias-of-unknown-key"),
        pytest.param("CreateAlias", alias_with("data-key"), "Parameter invalid, The alias format wrong.", id="no-prefix"),
        pytest.param("CreateAlias", alias_with("Alias/abc"), "Parameter invalid, The alias format wrong.", id="prefix-case"),
        pytest.param("CreateAlias", alias_with("a"), "Parameter invalid, The alias format wrong.", id="short-no-prefix"),
        pytest.param("CreateAlias", alias_with(""), "Missing required parameters, The alias cannot be empty.", id="empty"),
        pytest.param("CreateAlias", alias_with("alias/"), "Parameter invalid, The alias length error.", id="empty-name"),
        pytest.param("CreateAlias", alias_with("alias/" + "a" * 251), "Parameter invalid, The alias length error.", id="251-chars"),
        pytest.param("CreateAlias", alias_with("alias/a b"), "Parameter invalid, The alias format wrong.", id="space"),
        pytest.param("CreateAlias", alias_with("alias/a.b"), "Parameter invalid, The alias format wrong.", id="dot"),
        pytest.param("CreateAlias", alias_with("alias/é"), "Parameter invalid, The alias format wrong.", id="non-ascii"),
        pytest.param("CreateAlias", alias_with(7), "Parameter invalid, The alias must be of string type.", id="not-a-string"),
        pytest.param("CreateAlias", alias_with("alias/aws/x"), "Parameter invalid, The alias must not start with alias/aws/: AWS KMS reserves those names.", id="reserved"),
        pytest.param("Encrypt", lambda w: {"keyid": "alias/a.b", "plaintext": b64(b"x")}, "Parameter invalid, The keyid format wrong.", id="bad-alias-as-keyid"),
        pytest.param("UpdateRotationPolicy", lambda w: {"keyid": w["aes"], "enable": True, "rotationInterval": 6}, "Parameter invalid, The rotationInterval value must be greater than or equal to 7.", id="interval-6"),
        pytest.param("UpdateRotationPolicy", lambda w: {"keyid": w["aes"], "enable": True, "rotationInterval": 2561}, "Parameter invalid, The rotationInterval value must be less than or equal to 2560.", id="interval-2561"),
        pytest.param("UpdateRotationPolicy", lambda w: {"keyid": w["aes"], "enable": "yes"}, "Parameter invalid, The enable must be of boolean type.", id="enable-string"),
        pytest.param("UpdateRotationPolicy", lambda w: {"keyid": w["aes"]}, "Missing required parameters, The enable cannot be empty.", id="enable-missing"),
        pytest.param("UpdateRotationPolicy", lambda w: {"keyid": w["ec"], "enable": True}, ASYMMETRIC_INTERVAL, id="policy-asymmetric"),
        pytest.param("UpdateRotationPolicy", lambda w: {"keyid": w["external"], "enable": True, "rotationInterval": 30}, EXTERNAL, id="policy-external"),
        pytest.param("CreateKey", lambda w: {"keyspec": "EH_AES_GCM_256", "origin": "EH_INTERNAL_KEY", "keyusage": ENCRYPT, "rotationInterval": 6}, "Parameter invalid, The rotationInterval value must be greater than or equal to 7.", id="create-interval-6"),
        pytest.param("CreateKey", lambda w: {"keyspec": "EH_EC_P256", "origin": "EH_INTERNAL_KEY", "keyusage": SIGN, "rotationInterval": 30}, ASYMMETRIC_INTERVAL, id="create-asymmetric-interval"),
        pytest.param("Sign", lambda w: sign_ec(w, keyversion=2), "Parameter invalid, The keyversion 2 does not exist: this key has versions 1 to 1.", id="sign-missing-version"),
        pytest.param("Verify", lambda w: sign_ec(w, keyversion=2, signature=w["signature"]), "Parameter invalid, The keyversion 2 does not exist: this key has versions 1 to 1.", id="verify-missing-version"),
        pytest.param("GetPublicKey", lambda w: {"keyid": w["ec"], "keyversion": 9}, "Parameter invalid, The keyversion 9 does not exist: this key has versions 1 to 1.", id="pubkey-missing-version"),
        pytest.param("GetPublicKey", lambda w: {"keyid": w["ec"], "keyversion": 0}, "Parameter invalid, The keyversion value must be greater than or equal to 1.", id="version-0"),
        pytest.param("Encrypt", lambda w: {"keyid": w["aes"], "plaintext": b64(b"x"), "keyversion": 1}, "Parameter invalid, The keyversion is not a parameter of Encrypt.", id="encrypt-keyversion"),
        pytest.param("RotateKey", lambda w: {"keyid": w["disabled"]}, "keyid is disabled", id="rotate-disabled"),
        pytest.param("RotateKey", lambda w: {"keyid": w["external"]}, EXTERNAL, id="rotate-external"),
        pytest.param("ReEncrypt", lambda w: {"keyid": w["aes"], "ciphertext": w["ciphertext"], "destinationkeyid": w["ec"]}, NOT_SYMMETRIC, id="reencrypt-to-ec"),
        pytest.param("ReEncrypt", lambda w: {"keyid": w["aes"], "ciphertext": w["ciphertext"], "destinationkeyid": w["disabled"]}, "keyid is disabled", id="reencrypt-to-disabled"),
        pytest.param("ScheduleKeyDeletion", lambda w: {"keyid": w["aes"], "pendingWindowInDays": 6}, "Parameter invalid, The pendingWindowInDays value must be greater than or equal to 7.", id="window-6"),
        pytest.param("ScheduleKeyDeletion", lambda w: {"keyid": w["aes"], "pendingWindowInDays": 31}, "Parameter invalid, The pendingWindowInDays value must be less than or equal to 30.", id="window-31"),
        pytest.param("CancelKeyDeletion", lambda w: {"keyid": w["aes"]}, "Parameter invalid, The keyid is not pending deletion.", id="cancel-not-pending"),
        pytest.param("DescribeKey", lambda w: {"keyid": "00000000-0000-0000-0000-000000000000"}, "keyid error", id="describe-unknown-key"),
    ],
)
def test_bad_inputs_are_refused_and_change_nothing(client, world, action, payload, message):
    before = snapshot(client)
    assert refused(client, action, payload(world)) == message
    assert snapshot(client) == before
    # The keys still do their work.
    assert client.call("Decrypt", {"keyid": "alias/taken", "ciphertext": world["ciphertext"]})["plaintext"] == b64(b"x")
