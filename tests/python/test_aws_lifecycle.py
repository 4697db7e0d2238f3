"""The key lifecycle through the AWS KMS API (boto3): ReEncrypt, rotation (automatic policy,
on demand, ListKeyRotations), scheduled deletion and its cancelling, UpdateAlias, with AWS's
errors for bad input and for keys in the wrong state.

Reading a key's state twice is the same request twice, which ehsm refuses as a replay within
one second (test_aws.py); these tests' client retries, so botocore re-signs it in a later
second (a refusal other than ThrottlingException is not retried)."""

import time

import pytest

from ehsm_wire import b64, unb64
from test_aws import ACCOUNT, REGION, app, arn, kms_for, new_key, refused  # noqa: F401 (app: a fixture)

UNKNOWN = "0f5e9c1a-0000-4000-8000-000000000000"


@pytest.fixture()
def kms(server, app):
    return kms_for(server, app, retries={"max_attempts": 10, "mode": "standard"})


@pytest.fixture()
def raw_kms(server, app):
    """Without botocore's own parameter checks, so the server's are what answers."""
    return kms_for(server, app, validate=False, retries={"max_attempts": 10, "mode": "standard"})


def test_reencrypt_to_the_same_key_after_rotation_and_to_another_key(kms):
    a = new_key(kms)
    b = new_key(kms)
    ctx = {"purpose": "reencrypt"}
    old = kms.encrypt(KeyId=a, Plaintext=b"secret", EncryptionContext=ctx)["CiphertextBlob"]
    kms.rotate_key_on_demand(KeyId=a)

    # SourceKeyId is optional: our ciphertexts name their key.
    same = kms.re_encrypt(CiphertextBlob=old, SourceEncryptionContext=ctx, DestinationKeyId=a,
                          DestinationEncryptionContext=ctx)
    assert (same["SourceKeyId"], same["KeyId"]) == (arn(a), arn(a))
    assert same["SourceEncryptionAlgorithm"] == same["DestinationEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert same["CiphertextBlob"] != old
    assert kms.decrypt(CiphertextBlob=same["CiphertextBlob"], EncryptionContext=ctx)["Plaintext"] == b"secret"

    other = kms.re_encrypt(CiphertextBlob=old, SourceKeyId=arn(a), SourceEncryptionContext=ctx,
                           DestinationKeyId=b, DestinationEncryptionContext={"now": "b"})
    assert (other["SourceKeyId"], other["KeyId"]) == (arn(a), arn(b))
    back = kms.decrypt(CiphertextBlob=other["CiphertextBlob"], EncryptionContext={"now": "b"})
    assert (back["Plaintext"], back["KeyId"]) == (b"secret", arn(b))
    # The destination context is bound to the new ciphertext; the source's is not.
    refused("InvalidCiphertextException", kms.decrypt, CiphertextBlob=other["CiphertextBlob"], EncryptionContext=ctx)

    # A wrong or missing source context, a tampered blob: no decryption, no new ciphertext.
    for wrong in ({}, {"purpose": "other"}):
        refused("InvalidCiphertextException", kms.re_encrypt, CiphertextBlob=old,
                SourceEncryptionContext=wrong, DestinationKeyId=b)
    tampered = bytearray(old)
    tampered[-1] ^= 1
    refused("InvalidCiphertextException", kms.re_encrypt, CiphertextBlob=bytes(tampered),
            SourceEncryptionContext=ctx, DestinationKeyId=b)
    # SourceKeyId that is not the ciphertext's key.
    refused("IncorrectKeyException", kms.re_encrypt, CiphertextBlob=old, SourceKeyId=b,
            SourceEncryptionContext=ctx, DestinationKeyId=b)
    refused("NotFoundException", kms.re_encrypt, CiphertextBlob=old, SourceEncryptionContext=ctx,
            DestinationKeyId=UNKNOWN)
    signing = new_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    refused("InvalidKeyUsageException", kms.re_encrypt, CiphertextBlob=old, SourceEncryptionContext=ctx,
            DestinationKeyId=signing)
    kms.disable_key(KeyId=b)
    refused("DisabledException", kms.re_encrypt, CiphertextBlob=old, SourceEncryptionContext=ctx,
            DestinationKeyId=b)
    refused("UnsupportedOperationException", kms.re_encrypt, CiphertextBlob=old, SourceEncryptionContext=ctx,
            DestinationKeyId=a, DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256")


def test_reencrypt_of_an_ehsm_ciphertext_needs_its_source_key(kms, app):
    keyid = new_key(kms)
    ct = app.call("Encrypt", {"keyid": keyid, "plaintext": b64(b"from ehsm"), "aad": b64(b"ad")})["ciphertext"]
    blob = unb64(ct)
    refused("InvalidCiphertextException", kms.re_encrypt, CiphertextBlob=blob,
            SourceEncryptionContext={}, DestinationKeyId=keyid)
    # EncryptionContext is AWS's; an eHSM ciphertext's aad is other bytes, so it does not decrypt.
    refused("InvalidCiphertextException", kms.re_encrypt, CiphertextBlob=blob, SourceKeyId=keyid,
            DestinationKeyId=keyid)
    # Without aad (an empty context), it moves to this API's framing and decrypts without KeyId.
    bare = unb64(app.call("Encrypt", {"keyid": keyid, "plaintext": b64(b"no aad")})["ciphertext"])
    moved = kms.re_encrypt(CiphertextBlob=bare, SourceKeyId=arn(keyid), DestinationKeyId=keyid)
    assert moved["SourceKeyId"] == moved["KeyId"] == arn(keyid)
    assert kms.decrypt(CiphertextBlob=moved["CiphertextBlob"])["Plaintext"] == b"no aad"


def test_rotation_status_on_and_off(kms, raw_kms):
    keyid = new_key(kms)
    status = kms.get_key_rotation_status(KeyId=keyid)
    assert (status["KeyRotationEnabled"], status["KeyId"]) == (False, arn(keyid))
    assert "RotationPeriodInDays" not in status and "NextRotationDate" not in status

    kms.enable_key_rotation(KeyId=arn(keyid))
    status = kms.get_key_rotation_status(KeyId=keyid)
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 365
    days = (status["NextRotationDate"].timestamp() - time.time()) / 86400
    assert 364 < days <= 365

    kms.enable_key_rotation(KeyId=keyid, RotationPeriodInDays=90)
    status = kms.get_key_rotation_status(KeyId=arn(keyid))
    assert status["RotationPeriodInDays"] == 90
    assert 89 < (status["NextRotationDate"].timestamp() - time.time()) / 86400 <= 90

    kms.disable_key_rotation(KeyId=keyid)
    status = kms.get_key_rotation_status(KeyId=keyid)
    assert status["KeyRotationEnabled"] is False and "NextRotationDate" not in status

    for days in (89, 2561, 0, -1):
        refused("ValidationException", raw_kms.enable_key_rotation, KeyId=keyid, RotationPeriodInDays=days)
    kms.enable_key_rotation(KeyId=keyid, RotationPeriodInDays=2560)
    assert kms.get_key_rotation_status(KeyId=keyid)["RotationPeriodInDays"] == 2560

    for call in (kms.enable_key_rotation, kms.disable_key_rotation, kms.get_key_rotation_status):
        refused("NotFoundException", call, KeyId=UNKNOWN)
    # AWS's rotation operations take a key id or ARN, not an alias.
    kms.create_alias(AliasName="alias/rot", TargetKeyId=keyid)
    refused("ValidationException", kms.get_key_rotation_status, KeyId="alias/rot")

    signing = new_key(kms, KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
    refused("UnsupportedOperationException", kms.enable_key_rotation, KeyId=signing)
    refused("UnsupportedOperationException", kms.rotate_key_on_demand, KeyId=signing)
    external = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    refused("UnsupportedOperationException", kms.disable_key_rotation, KeyId=external)

    # Turning rotation on needs a usable key.
    kms.disable_key(KeyId=keyid)
    refused("DisabledException", kms.enable_key_rotation, KeyId=keyid, RotationPeriodInDays=100)


def test_rotate_on_demand_keeps_old_ciphertexts_and_lists_rotations(kms, raw_kms):
    keyid = new_key(kms)
    assert kms.list_key_rotations(KeyId=arn(keyid))["Rotations"] == []
    old = kms.encrypt(KeyId=keyid, Plaintext=b"v1")["CiphertextBlob"]
    before = time.time()
    for _ in range(3):
        assert kms.rotate_key_on_demand(KeyId=keyid)["KeyId"] == arn(keyid)
    assert kms.decrypt(CiphertextBlob=old)["Plaintext"] == b"v1"
    new = kms.encrypt(KeyId=keyid, Plaintext=b"v4")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=new)["Plaintext"] == b"v4"

    rotations = kms.list_key_rotations(KeyId=keyid)
    assert rotations["Truncated"] is False and "NextMarker" not in rotations
    assert len(rotations["Rotations"]) == 3
    for r in rotations["Rotations"]:
        assert (r["KeyId"], r["RotationType"]) == (keyid, "ON_DEMAND")
        assert before - 5 <= r["RotationDate"].timestamp() <= time.time() + 5
    pages = list(kms.get_paginator("list_key_rotations").paginate(KeyId=keyid, PaginationConfig={"PageSize": 2}))
    assert [len(p["Rotations"]) for p in pages] == [2, 1]
    assert [r for p in pages for r in p["Rotations"]] == rotations["Rotations"]

    for limit in (0, 1001):
        refused("ValidationException", raw_kms.list_key_rotations, KeyId=keyid, Limit=limit)
    refused("ValidationException", kms.list_key_rotations, KeyId=keyid, Marker="not-a-marker")
    refused("NotFoundException", kms.list_key_rotations, KeyId=UNKNOWN)
    refused("NotFoundException", kms.rotate_key_on_demand, KeyId=UNKNOWN)
    kms.disable_key(KeyId=keyid)
    refused("DisabledException", kms.rotate_key_on_demand, KeyId=keyid)
    # A disabled key's rotations are still listed.
    assert len(kms.list_key_rotations(KeyId=keyid, Limit=5)["Rotations"]) == 3


def test_schedule_and_cancel_key_deletion(kms, raw_kms):
    keyid = new_key(kms)
    blob = kms.encrypt(KeyId=keyid, Plaintext=b"doomed")["CiphertextBlob"]
    out = kms.schedule_key_deletion(KeyId=arn(keyid), PendingWindowInDays=7)
    assert (out["KeyId"], out["KeyState"], out["PendingWindowInDays"]) == (arn(keyid), "PendingDeletion", 7)
    assert 6.9 < (out["DeletionDate"].timestamp() - time.time()) / 86400 <= 7

    m = kms.describe_key(KeyId=keyid)["KeyMetadata"]
    assert m["KeyState"] == "PendingDeletion" and m["Enabled"] is False
    assert m["DeletionDate"] == out["DeletionDate"]
    pending = f"{arn(keyid)} is pending deletion."
    assert refused("KMSInvalidStateException", kms.decrypt, CiphertextBlob=blob) == pending
    assert refused("KMSInvalidStateException", kms.encrypt, KeyId=keyid, Plaintext=b"x") == pending
    refused("KMSInvalidStateException", kms.re_encrypt, CiphertextBlob=blob, DestinationKeyId=new_key(kms))
    refused("KMSInvalidStateException", kms.rotate_key_on_demand, KeyId=keyid)
    refused("KMSInvalidStateException", kms.enable_key, KeyId=keyid)
    # Twice is refused, whatever the window.
    assert refused("KMSInvalidStateException", kms.schedule_key_deletion, KeyId=keyid) == pending

    assert kms.cancel_key_deletion(KeyId=keyid)["KeyId"] == arn(keyid)
    m = kms.describe_key(KeyId=arn(keyid))["KeyMetadata"]
    assert m["KeyState"] == "Disabled" and "DeletionDate" not in m
    refused("DisabledException", kms.decrypt, CiphertextBlob=blob)
    refused("KMSInvalidStateException", kms.cancel_key_deletion, KeyId=arn(keyid))
    kms.enable_key(KeyId=keyid)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"doomed"

    # The default window is AWS's 30 days.
    default = kms.schedule_key_deletion(KeyId=keyid)
    assert default["PendingWindowInDays"] == 30
    assert 29.9 < (default["DeletionDate"].timestamp() - time.time()) / 86400 <= 30


def test_deletion_bad_inputs(kms, raw_kms):
    keyid = new_key(kms)
    for days in (6, 31, 0):
        refused("ValidationException", raw_kms.schedule_key_deletion, KeyId=keyid, PendingWindowInDays=days)
    refused("SerializationException", raw_kms.schedule_key_deletion, KeyId=keyid, PendingWindowInDays="7")
    refused("ValidationException", raw_kms.schedule_key_deletion)
    for call in (kms.schedule_key_deletion, kms.cancel_key_deletion):
        refused("NotFoundException", call, KeyId=UNKNOWN)
        refused("NotFoundException", call, KeyId=f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/{keyid}")
    # Nothing changed.
    assert kms.describe_key(KeyId=keyid)["KeyMetadata"]["KeyState"] == "Enabled"
    refused("KMSInvalidStateException", kms.cancel_key_deletion, KeyId=keyid)


def test_update_alias_repoints(kms, raw_kms):
    a = new_key(kms)
    b = new_key(kms)
    kms.create_alias(AliasName="alias/current", TargetKeyId=a)
    old = kms.encrypt(KeyId="alias/current", Plaintext=b"under a")
    assert old["KeyId"] == arn(a)
    kms.update_alias(AliasName="alias/current", TargetKeyId=arn(b))
    assert kms.encrypt(KeyId="alias/current", Plaintext=b"under b")["KeyId"] == arn(b)
    listed = kms.list_aliases(KeyId=b)["Aliases"]
    assert [(x["AliasName"], x["TargetKeyId"]) for x in listed] == [("alias/current", b)]
    assert kms.list_aliases(KeyId=a)["Aliases"] == []
    # What the alias named before still decrypts (the ciphertext names its key).
    assert kms.decrypt(CiphertextBlob=old["CiphertextBlob"])["Plaintext"] == b"under a"

    refused("NotFoundException", kms.update_alias, AliasName="alias/none", TargetKeyId=b)
    refused("NotFoundException", kms.update_alias, AliasName="alias/current", TargetKeyId=UNKNOWN)
    refused("ValidationException", kms.update_alias, AliasName="alias/current", TargetKeyId="alias/other")
    refused("ValidationException", raw_kms.update_alias, AliasName="current", TargetKeyId=a)
    refused("AccessDeniedException", kms.update_alias, AliasName="alias/aws/s3", TargetKeyId=a)
    signing = new_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    msg = refused("ValidationException", kms.update_alias, AliasName="alias/current", TargetKeyId=signing)
    assert f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/current" in msg, msg
    assert kms.list_aliases(KeyId=b)["Aliases"][0]["AliasName"] == "alias/current"
