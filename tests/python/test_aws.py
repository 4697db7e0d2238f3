"""The AWS KMS API (/aws) through boto3, unchanged: an enrolled app's appid and API key are the
access key id and secret access key, `endpoint_url` points at ehsm, and the server's own
certificate is the one verified. Every served operation, AWS's errors for bad input (with
botocore's client-side checks off where they would stop the request first), and one key used
through both APIs.

ehsm refuses a replayed request, and botocore signs nothing that differs between two identical
calls made within the same second (its amz-sdk-invocation-id header is unsigned), so no test
here makes the same call twice: keys are made with distinct descriptions (docs/aws.md)."""

import base64
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ehsm_wire import Client, b64, unb64

REGION = "us-east-1"
ACCOUNT = "000000000000"


def arn(keyid):
    return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{keyid}"


def kms_for(server, app, validate=True, retries=None):
    url, ca = server
    return boto3.client(
        "kms",
        endpoint_url=url + "/aws",
        region_name=REGION,
        aws_access_key_id=app.appid,
        aws_secret_access_key=app.apikey,
        verify=ca,
        # No retries by default: a refusal must be seen as it is, not retried away.
        config=Config(parameter_validation=validate, retries=retries or {"total_max_attempts": 1}),
    )


@pytest.fixture()
def app(server):
    """A freshly enrolled app per test (an eHSM client of the same app)."""
    url, ca = server
    c = Client(url, ca=ca)
    c.enroll()
    return c


@pytest.fixture()
def kms(server, app):
    return kms_for(server, app)


@pytest.fixture()
def raw_kms(server, app):
    """A client without botocore's own parameter checks, so the server's are what answers."""
    return kms_for(server, app, validate=False)


_serial = iter(range(1_000_000))


def new_key(kms, **kwargs):
    """A key's id; a distinct Description makes each CreateKey a distinct request."""
    return kms.create_key(Description=f"test key {next(_serial)}", **kwargs)["KeyMetadata"]["KeyId"]


def refused(kind, call, *args, **kwargs):
    """The message of a call that AWS-style fails with `kind` and HTTP 400."""
    with pytest.raises(ClientError) as e:
        call(*args, **kwargs)
    err = e.value.response
    assert err["Error"]["Code"] == kind, err
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400, err
    return err["Error"]["Message"]


def test_create_describe_and_list_keys(kms, raw_kms):
    m = kms.create_key(Description="orders")["KeyMetadata"]
    keyid = m["KeyId"]
    assert m["Arn"] == arn(keyid)
    assert (m["KeySpec"], m["KeyUsage"], m["KeyState"], m["Origin"], m["KeyManager"]) == (
        "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "Enabled", "AWS_KMS", "CUSTOMER")
    assert m["Enabled"] is True and m["Description"] == "orders"
    assert m["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    # botocore parses the timestamps.
    assert abs(m["CreationDate"].timestamp() - time.time()) < 120
    assert kms.describe_key(KeyId=arn(keyid))["KeyMetadata"]["KeyId"] == keyid

    for spec, usage, field, first in [
        ("RSA_2048", "SIGN_VERIFY", "SigningAlgorithms", "RSASSA_PSS_SHA_256"),
        ("RSA_2048", "ENCRYPT_DECRYPT", "EncryptionAlgorithms", "RSAES_OAEP_SHA_256"),
        ("ECC_NIST_P384", "SIGN_VERIFY", "SigningAlgorithms", "ECDSA_SHA_384"),
        ("ECC_SECG_P256K1", "SIGN_VERIFY", "SigningAlgorithms", "ECDSA_SHA_256"),
        ("HMAC_256", "GENERATE_VERIFY_MAC", "MacAlgorithms", "HMAC_SHA_256"),
        ("SM2", "SIGN_VERIFY", "SigningAlgorithms", "SM2DSA"),
    ]:
        m = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
        assert (m["KeySpec"], m["KeyUsage"], m[field][0]) == (spec, usage, first)
    assert kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyState"] == "PendingImport"

    assert "HMAC_512" in refused("UnsupportedOperationException", kms.create_key,
                                 KeySpec="HMAC_512", KeyUsage="GENERATE_VERIFY_MAC")
    refused("UnsupportedOperationException", kms.create_key, Tags=[{"TagKey": "a", "TagValue": "b"}])
    refused("UnsupportedOperationException", kms.create_key, Policy="{}")
    refused("ValidationException", kms.create_key, KeySpec="HMAC_256")
    refused("ValidationException", kms.create_key, KeySpec="ECC_NIST_P256", KeyUsage="ENCRYPT_DECRYPT")

    keys = kms.list_keys()["Keys"]
    assert len(keys) == 8 and {"KeyId": keyid, "KeyArn": arn(keyid)} in keys
    # The paginator follows NextMarker.
    pages = list(kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 3}))
    assert [len(p["Keys"]) for p in pages] == [3, 3, 2]
    assert [p["Truncated"] for p in pages] == [True, True, False]
    assert sorted(k["KeyId"] for p in pages for k in p["Keys"]) == sorted(k["KeyId"] for k in keys)
    for limit in (0, 1001):
        refused("ValidationException", raw_kms.list_keys, Limit=limit)
    refused("NotFoundException", kms.describe_key, KeyId="alias/none")


def test_encrypt_decrypt_and_encryption_context(kms, raw_kms, server):
    keyid = new_key(kms)
    kms.create_alias(AliasName="alias/cards", TargetKeyId=keyid)
    context = {"table": "cards", "tenant": "7"}
    out = kms.encrypt(KeyId="alias/cards", Plaintext=b"card 4111", EncryptionContext=context)
    assert out["KeyId"] == arn(keyid) and out["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    blob = out["CiphertextBlob"]
    assert isinstance(blob, bytes) and len(blob) <= 6144
    # No KeyId needed; the context in another order is the same context.
    back = kms.decrypt(CiphertextBlob=blob, EncryptionContext={"tenant": "7", "table": "cards"})
    assert back["Plaintext"] == b"card 4111" and back["KeyId"] == arn(keyid)
    for name in (keyid, arn(keyid), "alias/cards", f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/cards"):
        assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=context, KeyId=name)["Plaintext"] == b"card 4111"

    for wrong in ({}, {"table": "cards"}, {"table": "cards", "tenant": "8"}):
        refused("InvalidCiphertextException", kms.decrypt, CiphertextBlob=blob, EncryptionContext=wrong)
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    refused("InvalidCiphertextException", kms.decrypt, CiphertextBlob=bytes(tampered), EncryptionContext=context)
    other = new_key(kms)
    refused("IncorrectKeyException", kms.decrypt, CiphertextBlob=blob, EncryptionContext=context, KeyId=other)

    big = kms.encrypt(KeyId=keyid, Plaintext=b"\x07" * 4096)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=big)["Plaintext"] == b"\x07" * 4096
    refused("ValidationException", raw_kms.encrypt, KeyId=keyid, Plaintext=b"\x07" * 4097)
    refused("ValidationException", raw_kms.encrypt, KeyId=keyid, Plaintext=b"")
    refused("NotFoundException", kms.encrypt, KeyId="alias/none", Plaintext=b"x")
    refused("UnsupportedOperationException", kms.encrypt, KeyId=keyid, Plaintext=b"x", GrantTokens=["t"])
    signing = new_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    refused("InvalidKeyUsageException", kms.encrypt, KeyId=signing, Plaintext=b"x")

    # Another app neither finds the key nor decrypts its ciphertexts.
    stranger = Client(server[0], ca=server[1])
    stranger.enroll()
    theirs = kms_for(server, stranger)
    refused("NotFoundException", theirs.encrypt, KeyId=keyid, Plaintext=b"x")
    refused("NotFoundException", theirs.decrypt, CiphertextBlob=blob, EncryptionContext=context)


def test_data_keys_and_random(kms, raw_kms):
    keyid = new_key(kms)
    ctx = {"purpose": "backup"}
    for kwargs, n in ((dict(KeySpec="AES_256"), 32), (dict(KeySpec="AES_128"), 16),
                      (dict(NumberOfBytes=1), 1), (dict(NumberOfBytes=1024), 1024)):
        dk = kms.generate_data_key(KeyId=keyid, EncryptionContext=ctx, **kwargs)
        assert len(dk["Plaintext"]) == n and dk["KeyId"] == arn(keyid)
        assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == dk["Plaintext"]
        wp = kms.generate_data_key_without_plaintext(KeyId=keyid, EncryptionContext=ctx, **kwargs)
        assert "Plaintext" not in wp
        assert len(kms.decrypt(CiphertextBlob=wp["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"]) == n
    for kwargs in (dict(), dict(KeySpec="AES_256", NumberOfBytes=32), dict(NumberOfBytes=0), dict(NumberOfBytes=1025)):
        refused("ValidationException", raw_kms.generate_data_key, KeyId=keyid, **kwargs)
        refused("ValidationException", raw_kms.generate_data_key_without_plaintext, KeyId=keyid, **kwargs)

    for n in (1, 32, 1024):
        assert len(kms.generate_random(NumberOfBytes=n)["Plaintext"]) == n
    assert kms.generate_random(NumberOfBytes=31)["Plaintext"] != kms.generate_random(NumberOfBytes=33)["Plaintext"][:31]
    for n in (0, 1025):
        msg = refused("ValidationException", raw_kms.generate_random, NumberOfBytes=n)
        assert "numberOfBytes" in msg, msg


def test_enable_disable_and_pending_deletion(kms, app):
    keyid = new_key(kms)
    blob = kms.encrypt(KeyId=keyid, Plaintext=b"x")["CiphertextBlob"]
    kms.disable_key(KeyId=keyid)
    assert kms.describe_key(KeyId=keyid)["KeyMetadata"]["KeyState"] == "Disabled"
    assert refused("DisabledException", kms.encrypt, KeyId=keyid, Plaintext=b"y") == f"{arn(keyid)} is disabled."
    refused("DisabledException", kms.decrypt, CiphertextBlob=blob)
    kms.enable_key(KeyId=arn(keyid))
    assert kms.decrypt(CiphertextBlob=blob, KeyId=arn(keyid))["Plaintext"] == b"x"
    refused("NotFoundException", kms.enable_key, KeyId="0f5e9c1a-0000-4000-8000-000000000000")
    # Scheduled for deletion over the eHSM API.
    app.call("ScheduleKeyDeletion", {"keyid": keyid, "pendingWindowInDays": 7})
    m = kms.describe_key(KeyId=arn(keyid))["KeyMetadata"]
    assert m["KeyState"] == "PendingDeletion" and m["Enabled"] is False and "DeletionDate" in m
    for call, kwargs in ((kms.encrypt, dict(KeyId=keyid, Plaintext=b"z")), (kms.decrypt, dict(CiphertextBlob=blob, KeyId=keyid)),
                         (kms.enable_key, dict(KeyId=keyid)), (kms.disable_key, dict(KeyId=arn(keyid)))):
        refused("KMSInvalidStateException", call, **kwargs)


def test_aliases(kms, raw_kms):
    a = new_key(kms)
    b = new_key(kms)
    kms.create_alias(AliasName="alias/a", TargetKeyId=a)
    kms.create_alias(AliasName="alias/b", TargetKeyId=arn(b))
    kms.create_alias(AliasName="alias/b2", TargetKeyId=b)
    aliases = kms.list_aliases()["Aliases"]
    assert [x["AliasName"] for x in aliases] == ["alias/a", "alias/b", "alias/b2"]
    assert aliases[0]["AliasArn"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/a" and aliases[0]["TargetKeyId"] == a
    assert [x["AliasName"] for x in kms.list_aliases(KeyId=b)["Aliases"]] == ["alias/b", "alias/b2"]
    pages = list(kms.get_paginator("list_aliases").paginate(PaginationConfig={"PageSize": 2}))
    assert [len(p["Aliases"]) for p in pages] == [2, 1]
    assert kms.encrypt(KeyId="alias/b2", Plaintext=b"y")["KeyId"] == arn(b)
    refused("AlreadyExistsException", kms.create_alias, AliasName="alias/a", TargetKeyId=b)
    refused("ValidationException", raw_kms.create_alias, AliasName="no-prefix", TargetKeyId=b)
    refused("ValidationException", raw_kms.create_alias, AliasName="alias/sp ace", TargetKeyId=b)
    refused("AccessDeniedException", kms.create_alias, AliasName="alias/aws/x", TargetKeyId=b)
    refused("NotFoundException", kms.create_alias, AliasName="alias/c", TargetKeyId="0f5e9c1a-0000-4000-8000-000000000000")
    kms.delete_alias(AliasName="alias/a")
    assert [x["AliasName"] for x in kms.list_aliases(Limit=10)["Aliases"]] == ["alias/b", "alias/b2"]
    refused("NotFoundException", kms.encrypt, KeyId="alias/a", Plaintext=b"y")
    refused("NotFoundException", kms.delete_alias, AliasName="alias/never")


def test_one_key_through_both_apis(kms, app):
    # eHSM CreateKey, AWS Encrypt and Decrypt.
    ehsm_key = app.call("CreateKey", {"keyspec": "EH_AES_GCM_256", "origin": "EH_INTERNAL_KEY",
                                      "keyusage": "EH_KEYUSAGE_ENCRYPT_DECRYPT"})["keyid"]
    blob = kms.encrypt(KeyId=ehsm_key, Plaintext=b"both")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"both"
    # An eHSM ciphertext decrypts over AWS with the KeyId.
    bare = app.call("Encrypt", {"keyid": ehsm_key, "plaintext": b64(b"from ehsm")})["ciphertext"]
    assert kms.decrypt(CiphertextBlob=unb64(bare), KeyId=ehsm_key)["Plaintext"] == b"from ehsm"
    # AWS CreateKey, eHSM Encrypt and Decrypt.
    aws_key = new_key(kms)
    ct = app.call("Encrypt", {"keyid": aws_key, "plaintext": b64(b"from aws")})["ciphertext"]
    assert unb64(app.call("Decrypt", {"keyid": aws_key, "ciphertext": ct})["plaintext"]) == b"from aws"
    app.call("CreateAlias", {"alias": "alias/e", "keyid": aws_key})
    assert kms.encrypt(KeyId="alias/e", Plaintext=b"z")["KeyId"] == arn(aws_key)
    listed = {k["KeyId"] for k in kms.list_keys()["Keys"]}
    assert {ehsm_key, aws_key} <= listed


def test_protocol_errors(server, app, kms):
    """Requests boto3 would not send: signed by botocore, bodies and targets chosen here."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    import requests

    url, ca = server

    def send(target, body, content_type="application/x-amz-json-1.1"):
        headers = {"Content-Type": content_type}
        if target:
            headers["X-Amz-Target"] = target
        req = AWSRequest(method="POST", url=url + "/aws/", data=body, headers=headers)
        SigV4Auth(Credentials(app.appid, app.apikey), "kms", REGION).add_auth(req)
        r = requests.post(url + "/aws/", data=body, headers=dict(req.headers), verify=ca)
        return r.status_code, r.json()

    assert send("TrentService.Nope", b"{}") == (400, {"__type": "UnknownOperationException", "message": ""})
    assert send(None, b"{}")[1]["__type"] == "UnknownOperationException"
    for op in ("CreateGrant", "PutKeyPolicy", "ReplicateKey", "CreateCustomKeyStore"):
        status, body = send("TrentService." + op, b"{}")
        assert (status, body["__type"]) == (400, "UnsupportedOperationException") and op in body["message"]
    for body in (b"{", b"[]", b'{"KeyId": }'):
        assert send("TrentService.DescribeKey", body)[1]["__type"] == "SerializationException", body
    status, body = send("TrentService.GenerateRandom", b'{"NumberOfBytes": "8"}')
    assert (status, body["__type"]) == (400, "SerializationException")
    assert send("TrentService.ListKeys", b"{}", "application/json")[1]["__type"] == "SerializationException"
    # A correct request through the same signer works.
    status, body = send("TrentService.GenerateRandom", b'{"NumberOfBytes": 8}')
    assert status == 200 and len(base64.b64decode(body["Plaintext"])) == 8


def test_identical_calls_in_the_same_second_are_refused_as_replays(kms, monkeypatch):
    """botocore signs X-Amz-Date to the second and leaves its amz-sdk-invocation-id header
    unsigned, so two identical calls within one second carry the same signature, and ehsm's
    replay check (which AWS does not have) refuses the second with a ThrottlingException.
    botocore retries it, signing anew; with the clock frozen every retry repeats the signature,
    so the refusal reaches the caller."""
    import datetime

    import botocore.auth

    frozen = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: frozen)
    assert len(kms.generate_random(NumberOfBytes=12)["Plaintext"]) == 12
    msg = refused("ThrottlingException", kms.generate_random, NumberOfBytes=12)
    assert "already received" in msg, msg
    # Any difference in the request is a new signature.
    assert len(kms.generate_random(NumberOfBytes=13)["Plaintext"]) == 13


def test_identical_calls_back_to_back_succeed_through_botocores_retry(server, app):
    """The same call three times in a row on the real clock: a repeat within the second is
    refused as a replay, and botocore's retry, signed in a later second, is served. (Ten
    attempts in standard mode, so that the retries certainly reach the next second.)"""
    kms = kms_for(server, app, retries={"max_attempts": 10, "mode": "standard"})
    for _ in range(3):
        answer = kms.generate_random(NumberOfBytes=12)
        assert len(answer["Plaintext"]) == 12