"""AWS's own tools against ehsm's AWS KMS API (`/aws`), unchanged but for the endpoint: the AWS
CLI (`aws kms ... --endpoint-url`) and the AWS Encryption SDK for Python with a KMS master key
provider. The credentials are an app enrolled over the eHSM API: appid as the access key id,
apikey as the secret access key. boto3 itself, operation by operation, is test_aws.py."""

import base64
import json
import os
import subprocess

import aws_encryption_sdk
import botocore.session
import pytest

from ehsm_wire import Client

REGION = "us-east-1"


@pytest.fixture()
def app(server):
    """A fresh app, and the environment that points AWS tools at this server with its keys."""
    url, ca = server
    c = Client(url, ca=ca)
    c.enroll()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_ACCESS_KEY_ID": c.appid,
        "AWS_SECRET_ACCESS_KEY": c.apikey,
        "AWS_DEFAULT_REGION": REGION,
        # botocore's per-service endpoint variable: what the Encryption SDK's own clients read.
        "AWS_ENDPOINT_URL_KMS": f"{url}/aws",
        "AWS_CA_BUNDLE": ca,
        # No profile, no metadata service: only what is set here.
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return url, ca, env


def aws(env, *args, stdin=None):
    """`aws kms ARGS --output json` with `env`; its parsed output (or raises with stderr)."""
    out = subprocess.run(
        ["aws", "kms", *args, "--output", "json"],
        env=env,
        input=stdin,
        capture_output=True,
        check=False,
    )
    if out.returncode != 0:
        raise AssertionError(f"aws kms {' '.join(args)}: exit {out.returncode}: {out.stderr.decode()}")
    return json.loads(out.stdout) if out.stdout.strip() else None


def aws_fails(env, *args):
    out = subprocess.run(["aws", "kms", *args], env=env, capture_output=True, check=False)
    assert out.returncode != 0, out.stdout
    return out.stderr.decode()


def test_aws_cli_creates_describes_encrypts_and_decrypts(app, tmp_path):
    url, _, env = app
    created = aws(env, "create-key", "--description", "from the AWS CLI")
    meta = created["KeyMetadata"]
    key_id = meta["KeyId"]
    assert meta["Arn"] == f"arn:aws:kms:{REGION}:{meta['AWSAccountId']}:key/{key_id}"
    assert (meta["KeyState"], meta["Enabled"], meta["Description"]) == ("Enabled", True, "from the AWS CLI")

    described = aws(env, "describe-key", "--key-id", meta["Arn"])["KeyMetadata"]
    assert described["KeyId"] == key_id

    plaintext = tmp_path / "plain.bin"
    plaintext.write_bytes(bytes(range(256)) * 4)
    enc = aws(
        env, "encrypt", "--key-id", key_id, "--plaintext", f"fileb://{plaintext}",
        "--encryption-context", "purpose=test,tenant=a",
    )
    assert enc["KeyId"] == meta["Arn"]
    blob = tmp_path / "ct.bin"
    blob.write_bytes(base64.b64decode(enc["CiphertextBlob"]))
    # Decrypt without a key id (the ciphertext names its key), the context in another order.
    dec = aws(
        env, "decrypt", "--ciphertext-blob", f"fileb://{blob}",
        "--encryption-context", "tenant=a,purpose=test",
    )
    assert base64.b64decode(dec["Plaintext"]) == plaintext.read_bytes()
    assert dec["KeyId"] == meta["Arn"]
    # Another context: AWS's InvalidCiphertextException, which the CLI names.
    err = aws_fails(
        env, "decrypt", "--ciphertext-blob", f"fileb://{blob}", "--encryption-context", "tenant=b,purpose=test",
    )
    assert "InvalidCiphertextException" in err, err

    dk = aws(env, "generate-data-key", "--key-id", key_id, "--key-spec", "AES_256")
    assert len(base64.b64decode(dk["Plaintext"])) == 32
    blob.write_bytes(base64.b64decode(dk["CiphertextBlob"]))
    dec = aws(env, "decrypt", "--ciphertext-blob", f"fileb://{blob}")
    assert dec["Plaintext"] == dk["Plaintext"]


def test_aws_cli_errors_are_awss(app):
    _, _, env = app
    err = aws_fails(env, "describe-key", "--key-id", "00000000-0000-0000-0000-000000000000")
    assert "NotFoundException" in err, err
    bad = dict(env, AWS_SECRET_ACCESS_KEY="not-the-apikey")
    err = aws_fails(bad, "list-keys")
    assert "InvalidSignatureException" in err, err
    unknown = dict(env, AWS_ACCESS_KEY_ID="no-such-app")
    err = aws_fails(unknown, "list-keys")
    assert "UnrecognizedClientException" in err, err


def test_aws_encryption_sdk_round_trip_through_ehsm(app):
    """The AWS Encryption SDK's message format, with ehsm as the KMS that wraps its data keys:
    GenerateDataKey on encryption, Decrypt (named key, encryption context) on decryption."""
    _, _, env = app
    created = aws(env, "create-key")
    arn = created["KeyMetadata"]["Arn"]
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        session = botocore.session.Session()
        provider = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[arn], botocore_session=session)
        client = aws_encryption_sdk.EncryptionSDKClient()
        message = b"a message sealed with a data key that only ehsm can unwrap" * 20
        context = {"tenant": "a", "purpose": "test"}
        ciphertext, header = client.encrypt(source=message, key_provider=provider, encryption_context=context)
        assert ciphertext != message
        assert [k.key_provider.key_info.decode() for k in header.encrypted_data_keys] == [arn]
        decrypted, dheader = client.decrypt(source=ciphertext, key_provider=provider)
        assert decrypted == message
        assert dheader.encryption_context["tenant"] == "a"
        # A provider for another ehsm key cannot decrypt it.
        other = aws(env, "create-key")["KeyMetadata"]["Arn"]
        wrong = aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[other], botocore_session=session)
        with pytest.raises(Exception):
            client.decrypt(source=ciphertext, key_provider=wrong)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
