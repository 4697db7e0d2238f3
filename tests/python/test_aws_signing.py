"""Sign, Verify, GetPublicKey, GenerateMac and VerifyMac over the AWS KMS API (/aws) through
boto3 and the AWS CLI. Every signature is also checked by Python's `cryptography` against the
DER SubjectPublicKeyInfo that GetPublicKey answers, so a signature that only ehsm accepts fails.
As test_aws.py, no test makes the same call twice within a second (ehsm refuses replays)."""

import base64
import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from cryptography.hazmat.primitives.serialization import load_der_public_key

import test_aws_tools
from test_aws import app, arn, kms, new_key, raw_kms, refused  # noqa: F401 (fixtures)
from test_aws_tools import aws, aws_fails

# test_aws_tools's fixture (an app and the AWS CLI's environment), under a name of its own here:
# pytest names a fixture by the attribute it is found under.
cli_app = test_aws_tools.app

HASHES = {"SHA_256": hashes.SHA256(), "SHA_384": hashes.SHA384(), "SHA_512": hashes.SHA512()}
RSA_ALGORITHMS = [f"RSASSA_{pad}_SHA_{bits}" for pad in ("PSS", "PKCS1_V1_5") for bits in (256, 384, 512)]


def public_key(kms, keyid):
    """GetPublicKey's DER key, loaded by `cryptography` (which refuses anything but SPKI DER)."""
    return load_der_public_key(kms.get_public_key(KeyId=keyid)["PublicKey"])


def check_elsewhere(key, algorithm, message, signature, prehashed=False):
    """Verifies an AWS-named signature with `cryptography` (raises InvalidSignature if wrong)."""
    h = HASHES[algorithm[-7:]]
    chosen = utils.Prehashed(h) if prehashed else h
    if algorithm.startswith("ECDSA"):
        key.verify(signature, message, ec.ECDSA(chosen))
    elif algorithm.startswith("RSASSA_PSS"):
        # AWS's PSS: MGF1 with the same digest, salt as long as the digest.
        key.verify(signature, message, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), chosen)
    else:
        key.verify(signature, message, padding.PKCS1v15(), chosen)


def sign_and_verify(kms, keyid, algorithm, message, message_type="RAW"):
    out = kms.sign(KeyId=keyid, Message=message, MessageType=message_type, SigningAlgorithm=algorithm)
    assert out["KeyId"] == arn(keyid) and out["SigningAlgorithm"] == algorithm
    back = kms.verify(KeyId=keyid, Message=message, MessageType=message_type,
                      Signature=out["Signature"], SigningAlgorithm=algorithm)
    assert back == {**back, "KeyId": arn(keyid), "SignatureValid": True, "SigningAlgorithm": algorithm}
    return out["Signature"]


def test_rsa_pss_and_pkcs1_signatures_verify_here_and_in_cryptography(kms):
    keyid = new_key(kms, KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
    key = public_key(kms, keyid)
    assert key.key_size == 2048
    for algorithm in RSA_ALGORITHMS:
        message = f"invoice for {algorithm}".encode()
        check_elsewhere(key, algorithm, message, sign_and_verify(kms, keyid, algorithm, message))
    # A digest: the same signature scheme over a hash the client made.
    digest = hashlib.sha384(b"big file").digest()
    signature = sign_and_verify(kms, keyid, "RSASSA_PSS_SHA_384", digest, "DIGEST")
    check_elsewhere(key, "RSASSA_PSS_SHA_384", digest, signature, prehashed=True)
    # PKCS#1 v1.5 is deterministic: signing the digest is signing the message.
    raw = kms.sign(KeyId=keyid, Message=b"big file", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")
    dig = kms.sign(KeyId=keyid, Message=hashlib.sha256(b"big file").digest(), MessageType="DIGEST",
                   SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")
    assert raw["Signature"] == dig["Signature"]


@pytest.mark.parametrize("spec,algorithm,digest", [
    ("ECC_NIST_P256", "ECDSA_SHA_256", hashlib.sha256),
    ("ECC_NIST_P384", "ECDSA_SHA_384", hashlib.sha384),
])
def test_ecdsa_signatures_are_der_and_verify_in_cryptography(kms, spec, algorithm, digest):
    keyid = new_key(kms, KeySpec=spec, KeyUsage="SIGN_VERIFY")
    key = public_key(kms, keyid)
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == {
        "ECC_NIST_P256": "secp256r1", "ECC_NIST_P384": "secp384r1"}[spec]
    message = b"release 1.2.3"
    signature = sign_and_verify(kms, keyid, algorithm, message)
    # DER: decode_dss_signature refuses anything else.
    utils.decode_dss_signature(signature)
    check_elsewhere(key, algorithm, message, signature)
    hashed = digest(b"release 1.2.4").digest()
    check_elsewhere(key, algorithm, hashed, sign_and_verify(kms, keyid, algorithm, hashed, "DIGEST"), prehashed=True)
    # A signature of the message verifies against its digest, as AWS's do.
    assert kms.verify(KeyId=keyid, Message=digest(message).digest(), MessageType="DIGEST",
                      Signature=signature, SigningAlgorithm=algorithm)["SignatureValid"] is True
    # A digest of another length.
    assert "invalid length" in refused("ValidationException", kms.sign, KeyId=keyid, Message=hashed[:-1],
                                       MessageType="DIGEST", SigningAlgorithm=algorithm)
    # Each curve has exactly one ECDSA algorithm.
    other = "ECDSA_SHA_512" if algorithm == "ECDSA_SHA_384" else "ECDSA_SHA_384"
    assert spec in refused("InvalidKeyUsageException", kms.sign, KeyId=keyid, Message=message,
                           SigningAlgorithm=other)


def test_wrong_signatures_are_kms_invalid_signature(kms, raw_kms):
    keyid = new_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    signature = kms.sign(KeyId=keyid, Message=b"pay 10", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    tampered = bytearray(signature)
    tampered[-1] ^= 1
    for message, sig in [(b"pay 10", bytes(tampered)), (b"pay 1000", signature), (b"pay 10", b"\x30\x00")]:
        refused("KMSInvalidSignatureException", kms.verify, KeyId=keyid, Message=message,
                Signature=sig, SigningAlgorithm="ECDSA_SHA_256")
    # Another key's signature.
    other = new_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    refused("KMSInvalidSignatureException", kms.verify, KeyId=other, Message=b"pay 10",
            Signature=signature, SigningAlgorithm="ECDSA_SHA_256")
    with pytest.raises(InvalidSignature):
        check_elsewhere(public_key(kms, other), "ECDSA_SHA_256", b"pay 10", signature)
    # Members out of AWS's limits, unknown names, missing ones (botocore's checks off).
    for bad in [
        dict(Message=b"x" * 4097, SigningAlgorithm="ECDSA_SHA_256"),
        dict(Message=b"", SigningAlgorithm="ECDSA_SHA_256"),
        dict(Message=b"x", SigningAlgorithm="ECDSA_SHA_1"),
        dict(Message=b"x", SigningAlgorithm="ECDSA_SHA_256", MessageType="HASH"),
        dict(Message=b"x"),
    ]:
        refused("ValidationException", raw_kms.sign, KeyId=keyid, **bad)
    refused("ValidationException", raw_kms.verify, KeyId=keyid, Message=b"x",
            SigningAlgorithm="ECDSA_SHA_256")
    refused("NotFoundException", kms.sign, KeyId="alias/nobody", Message=b"x", SigningAlgorithm="ECDSA_SHA_256")


def test_algorithms_and_usages_that_do_not_fit_the_key(kms, app):
    rsa = new_key(kms, KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
    assert "RSA_2048" in refused("InvalidKeyUsageException", kms.sign, KeyId=rsa, Message=b"m",
                                 SigningAlgorithm="ECDSA_SHA_256")
    p256 = new_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    refused("InvalidKeyUsageException", kms.sign, KeyId=p256, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")
    refused("InvalidKeyUsageException", kms.sign, KeyId=p256, Message=b"m", SigningAlgorithm="SM2DSA")
    for algorithm in ("ML_DSA_SHAKE_256", "ED25519_SHA_512"):
        refused("InvalidKeyUsageException", kms.sign, KeyId=p256, Message=b"m", SigningAlgorithm=algorithm)
    for usage_of, spec in [("ENCRYPT_DECRYPT", "RSA_2048"), ("ENCRYPT_DECRYPT", "SYMMETRIC_DEFAULT"),
                           ("GENERATE_VERIFY_MAC", "HMAC_256")]:
        keyid = new_key(kms, KeySpec=spec, KeyUsage=usage_of)
        assert usage_of in refused("InvalidKeyUsageException", kms.sign, KeyId=keyid, Message=b"m",
                                   SigningAlgorithm="RSASSA_PSS_SHA_256")
    refused("InvalidKeyUsageException", kms.generate_mac, KeyId=rsa, Message=b"m", MacAlgorithm="HMAC_SHA_256")
    # A disabled key.
    app.call("DisableKey", {"keyid": rsa})
    refused("DisabledException", kms.sign, KeyId=rsa, Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256")


def test_get_public_key(kms):
    for spec, usage, field, algorithms in [
        ("RSA_3072", "SIGN_VERIFY", "SigningAlgorithms", RSA_ALGORITHMS),
        ("RSA_2048", "ENCRYPT_DECRYPT", "EncryptionAlgorithms", ["RSAES_OAEP_SHA_256"]),
        ("ECC_NIST_P521", "SIGN_VERIFY", "SigningAlgorithms", ["ECDSA_SHA_512"]),
        ("ECC_SECG_P256K1", "SIGN_VERIFY", "SigningAlgorithms", ["ECDSA_SHA_256"]),
        ("SM2", "SIGN_VERIFY", "SigningAlgorithms", ["SM2DSA"]),
    ]:
        keyid = new_key(kms, KeySpec=spec, KeyUsage=usage)
        kms.create_alias(AliasName=f"alias/{spec.lower()}-{usage.lower()}", TargetKeyId=keyid)
        out = kms.get_public_key(KeyId=f"alias/{spec.lower()}-{usage.lower()}")
        assert (out["KeyId"], out["KeySpec"], out["KeyUsage"]) == (arn(keyid), spec, usage)
        assert sorted(out[field]) == sorted(algorithms)
        # SPKI DER: a SEQUENCE of the algorithm and the key (cryptography reads all but SM2).
        assert out["PublicKey"][0] == 0x30
        if spec != "SM2":
            load_der_public_key(out["PublicKey"])
    symmetric = new_key(kms)
    refused("UnsupportedOperationException", kms.get_public_key, KeyId=symmetric)
    refused("UnsupportedOperationException", kms.get_public_key,
            KeyId=new_key(kms, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC"))


def test_sm2dsa_round_trip_and_digest_refused(kms):
    keyid = new_key(kms, KeySpec="SM2", KeyUsage="SIGN_VERIFY")
    signature = sign_and_verify(kms, keyid, "SM2DSA", b"\xe4\xb8\xad message")
    refused("KMSInvalidSignatureException", kms.verify, KeyId=keyid, Message=b"another",
            Signature=signature, SigningAlgorithm="SM2DSA")
    refused("UnsupportedOperationException", kms.sign, KeyId=keyid, Message=b"\x00" * 32,
            MessageType="DIGEST", SigningAlgorithm="SM2DSA")


def test_signatures_and_macs_of_older_versions_verify_after_rotation(kms, app):
    signer = new_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    mac_key = new_key(kms, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    old_public = kms.get_public_key(KeyId=signer)["PublicKey"]
    signature = kms.sign(KeyId=signer, Message=b"v1", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    mac = kms.generate_mac(KeyId=mac_key, Message=b"v1", MacAlgorithm="HMAC_SHA_256")["Mac"]
    app.call("RotateKey", {"keyid": signer})
    app.call("RotateKey", {"keyid": mac_key})
    assert kms.get_public_key(KeyId=arn(signer))["PublicKey"] != old_public
    assert kms.verify(KeyId=signer, Message=b"v1", Signature=signature,
                      SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"] is True
    assert kms.verify_mac(KeyId=mac_key, Message=b"v1", Mac=mac, MacAlgorithm="HMAC_SHA_256")["MacValid"] is True
    # New ones are the new version's: the old public key does not verify them.
    new = kms.sign(KeyId=signer, Message=b"v2", SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    with pytest.raises(InvalidSignature):
        check_elsewhere(load_der_public_key(old_public), "ECDSA_SHA_256", b"v2", new)
    # (By its ARN: the same request again within a second would be a replay.)
    assert kms.generate_mac(KeyId=arn(mac_key), Message=b"v1", MacAlgorithm="HMAC_SHA_256")["Mac"] != mac


def test_mac_round_trip_and_tampered_macs(kms, raw_kms):
    keyid = new_key(kms, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    out = kms.generate_mac(KeyId=keyid, Message=b"session 42", MacAlgorithm="HMAC_SHA_256")
    assert (out["KeyId"], out["MacAlgorithm"], len(out["Mac"])) == (arn(keyid), "HMAC_SHA_256", 32)
    back = kms.verify_mac(KeyId=keyid, Message=b"session 42", Mac=out["Mac"], MacAlgorithm="HMAC_SHA_256")
    assert back == {**back, "KeyId": arn(keyid), "MacValid": True, "MacAlgorithm": "HMAC_SHA_256"}
    tampered = bytearray(out["Mac"])
    tampered[0] ^= 0x80
    for message, mac in [(b"session 42", bytes(tampered)), (b"session 43", out["Mac"]),
                         (b"session 42", out["Mac"][:16])]:
        refused("KMSInvalidMacException", kms.verify_mac, KeyId=keyid, Message=message, Mac=mac,
                MacAlgorithm="HMAC_SHA_256")
    # ehsm's HMAC keys are HMAC_256: the other algorithms fit no key, as AWS answers.
    assert "HMAC_256" in refused("InvalidKeyUsageException", kms.generate_mac, KeyId=keyid,
                                 Message=b"m", MacAlgorithm="HMAC_SHA_384")
    refused("InvalidKeyUsageException", kms.verify_mac, KeyId=keyid, Message=b"session 42",
            Mac=out["Mac"], MacAlgorithm="HMAC_SHA_512")
    for bad in [dict(Message=b"m", MacAlgorithm="HMAC_MD5"), dict(Message=b"m"),
                dict(Message=b"x" * 4097, MacAlgorithm="HMAC_SHA_256")]:
        refused("ValidationException", raw_kms.generate_mac, KeyId=keyid, **bad)


def test_aws_cli_signs_and_verifies(cli_app, tmp_path):
    _, _, env = cli_app
    key_id = aws(env, "create-key", "--key-spec", "ECC_NIST_P256", "--key-usage", "SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    message = tmp_path / "message.txt"
    message.write_bytes(b"deploy build 77")
    signed = aws(env, "sign", "--key-id", key_id, "--message", f"fileb://{message}",
                 "--message-type", "RAW", "--signing-algorithm", "ECDSA_SHA_256")
    assert signed["SigningAlgorithm"] == "ECDSA_SHA_256" and signed["KeyId"].endswith(key_id)
    signature = tmp_path / "signature.der"
    signature.write_bytes(base64.b64decode(signed["Signature"]))
    verified = aws(env, "verify", "--key-id", key_id, "--message", f"fileb://{message}",
                   "--signature", f"fileb://{signature}", "--signing-algorithm", "ECDSA_SHA_256")
    assert verified["SignatureValid"] is True
    public = aws(env, "get-public-key", "--key-id", key_id)
    check_elsewhere(load_der_public_key(base64.b64decode(public["PublicKey"])), "ECDSA_SHA_256",
                    message.read_bytes(), signature.read_bytes())
    message.write_bytes(b"deploy build 78")
    err = aws_fails(env, "verify", "--key-id", key_id, "--message", f"fileb://{message}",
                    "--signature", f"fileb://{signature}", "--signing-algorithm", "ECDSA_SHA_256")
    assert "KMSInvalidSignatureException" in err, err
