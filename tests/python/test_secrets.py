"""The secrets manager (spec section 10) through the independent Python client: every action,
its validation errors, versioning, deletion and restore, keys that may or may not hold secrets,
and text of every printable character signed raw and returned byte-exact."""

import string
import time

import pytest

from ehsm_wire import Client, EhsmError

DAY_MS = 86_400_000
AES = {"keyspec": "EH_AES_GCM_256", "origin": "EH_INTERNAL_KEY", "keyusage": "EH_KEYUSAGE_ENCRYPT_DECRYPT"}


@pytest.fixture()
def client(server):
    """A freshly enrolled app per test, so that the tests do not see each other's secrets."""
    url, ca = server
    c = Client(url, ca=ca)
    c.enroll()
    return c


def refused(c, action, payload):
    with pytest.raises(EhsmError) as e:
        c.call(action, payload)
    assert e.value.code == 400, e.value
    return e.value.message


def test_every_action_and_versioning(client):
    out = client.post("CreateSecret", client.envelope({"secretName": "db", "secretData": "v1", "description": "pw", "rotationInterval": "1d"}))
    assert (out["code"], out["message"], out["result"]) == (200, "The db create success.", {})
    for i in range(2, 12):
        out = client.post("PutSecretValue", client.envelope({"secretName": "db", "secretData": f"v{i}"}))
        assert (out["code"], out["message"]) == (200, "The db new version put success.")

    versions = client.call("ListSecretVersionIds", {"secretName": "db"})
    assert versions["secretName"] == "db" and versions["totalCount"] == 11
    assert sorted(v["versionId"] for v in versions["versionIds"]) == list(range(1, 12))
    for v in versions["versionIds"]:
        got = client.call("GetSecretValue", {"secretName": "db", "versionId": v["versionId"]})
        assert got == {"secretName": "db", "secretData": f"v{v['versionId']}", "versionId": v["versionId"], "createTime": v["createTime"]}
    assert client.call("GetSecretValue", {"secretName": "db"})["versionId"] == 11
    assert client.call("GetSecretValue", {"secretName": "db", "versionId": 99}) == {}

    d = client.call("DescribeSecret", {"secretName": "db"})
    newest = max(versions["versionIds"], key=lambda v: v["versionId"])
    assert d["secretName"] == "db" and d["description"] == "pw" and d["rotationInterval"] == "1d"
    assert d["lastRotationDate"] == newest["createTime"]
    assert d["nextRotationDate"] == newest["createTime"] + DAY_MS
    assert client.call("DescribeSecret", {"secretName": "missing"}) == {}

    listed = client.call("ListSecrets")
    assert listed["totalCount"] == 1
    assert listed["secretList"][0]["secretName"] == "db" and listed["secretList"][0]["description"] == "pw"
    assert client.call("ListSecrets", {"secretName": "other"}) == {"totalCount": 0, "secretList": []}

    assert client.post("UpdateSecretDesc", client.envelope({"secretName": "db", "description": "new"}))["message"] == "Update secret description success."
    assert client.call("DescribeSecret", {"secretName": "db"})["description"] == "new"
    client.call("UpdateSecretDesc", {"secretName": "db"})
    assert "description" not in client.call("DescribeSecret", {"secretName": "db"})


def test_delete_restore_and_force(client):
    client.call("CreateSecret", {"secretName": "s", "secretData": "x"})
    before = int(time.time() * 1000)
    out = client.post("DeleteSecret", client.envelope({"secretName": "s", "recoveryPeriod": 3}))
    assert (out["code"], out["message"]) == (200, "The s will be deleted after 3 days.")
    planned = client.call("DescribeSecret", {"secretName": "s"})["plannedDeleteTime"]
    assert before + 3 * DAY_MS <= planned <= before + 3 * DAY_MS + 60_000
    assert refused(client, "GetSecretValue", {"secretName": "s"}) == "Can't find the s's value."
    assert refused(client, "PutSecretValue", {"secretName": "s", "secretData": "y"}) == "Can not put value for a deleted secret."
    assert client.call("ListSecretVersionIds", {"secretName": "s"}) == {"secretName": "s", "totalCount": 0, "versionIds": []}

    out = client.post("RestoreSecret", client.envelope({"secretName": "s"}))
    assert (out["code"], out["message"]) == (200, "The s restore success.")
    assert client.call("GetSecretValue", {"secretName": "s"})["secretData"] == "x"

    out = client.post("DeleteSecret", client.envelope({"secretName": "s", "forceDelete": "true"}))
    assert (out["code"], out["message"]) == (200, "The s delete success")
    assert client.call("ListSecrets") == {"totalCount": 0, "secretList": []}
    assert refused(client, "DeleteSecret", {"secretName": "s"}) == "Delete error, Can not find the secretName"
    assert refused(client, "RestoreSecret", {"secretName": "s"}) == "Can not restore secret, the secretName not find."


def test_encryption_key_rules(server, client):
    keyid = client.call("CreateKey", AES)["keyid"]
    client.call("CreateSecret", {"secretName": "mine", "secretData": "x", "encryptionKeyId": keyid})
    client.call("DisableKey", {"keyid": keyid})
    assert refused(client, "GetSecretValue", {"secretName": "mine"}) == "keyid is disabled"
    client.call("EnableKey", {"keyid": keyid})
    assert client.call("GetSecretValue", {"secretName": "mine"})["secretData"] == "x"

    signing = client.call("CreateKey", {"keyspec": "EH_EC_P256", "origin": "EH_INTERNAL_KEY", "keyusage": "EH_KEYUSAGE_SIGN_VERIFY"})["keyid"]
    msg = refused(client, "CreateSecret", {"secretName": "bad", "secretData": "x", "encryptionKeyId": signing})
    assert msg == "Wrong parameter, please check your encryptionKeyId."
    url, ca = server
    other = Client(url, ca=ca)
    other.enroll()
    theirs = other.call("CreateKey", AES)["keyid"]
    msg = refused(client, "CreateSecret", {"secretName": "bad", "secretData": "x", "encryptionKeyId": theirs})
    assert msg == "Cannot find cmk by keyid."
    assert other.call("ListSecrets") == {"totalCount": 0, "secretList": []}


def test_printable_text_round_trips(client):
    # What upstream's Python tests generate: every printable ASCII character, whitespace included.
    text = string.printable
    for i, chunk in enumerate([text[j:j + 50] for j in range(0, len(text), 50)]):
        name = f"{i}{chunk}"
        client.call("CreateSecret", {"secretName": name, "secretData": text + " ünïcødé", "description": text})
        got = client.call("GetSecretValue", {"secretName": name})
        assert got["secretName"] == name and got["secretData"] == text + " ünïcødé"
        assert client.call("DescribeSecret", {"secretName": name})["description"] == text


@pytest.mark.parametrize(
    "action,payload,message",
    [
        ("CreateSecret", {"secretData": "x"}, "Missing required parameters, The secretName cannot be empty."),
        ("CreateSecret", {"secretName": "n" * 65, "secretData": "x"}, "Parameter invalid, The secretName length error."),
        ("CreateSecret", {"secretName": "a", "secretData": "d" * 4097}, "Parameter invalid, The secretData length error."),
        ("CreateSecret", {"secretName": "a", "secretData": "x", "rotationInterval": "7w"}, "Parameter invalid, The rotationInterval format wrong."),
        ("CreateSecret", {"secretName": "b", "secretData": "x", "rotationInterval": "2h"}, "The rotation time is less than 6 hours or more than 8760 hours"),
        ("PutSecretValue", {"secretName": 5, "secretData": "x"}, "Parameter invalid, The secretName must be of string type."),
        ("DeleteSecret", {"secretName": "a", "recoveryPeriod": 400}, "Parameter invalid, The recoveryPeriod value must be less than or equal to 365."),
        ("DeleteSecret", {"secretName": "a", "forceDelete": "maybe"}, "The forceDelete must be true or false"),
        ("GetSecretValue", {"secretName": "a", "versionId": 0}, "Parameter invalid, The versionId value must be greater than or equal to 1."),
    ],
)
def test_validation_errors(client, action, payload, message):
    client.call("CreateSecret", {"secretName": "a", "secretData": "kept"})
    assert refused(client, action, payload) == message
    assert client.call("GetSecretValue", {"secretName": "a"}) ["secretData"] == "kept"
    assert client.call("ListSecretVersionIds", {"secretName": "a"})["totalCount"] == 1
