"""An independent eHSM client written from the compatibility spec, in Python.

It shares no code with ehsm: it canonicalises and signs requests per spec section 3.1 itself,
so the tests prove the wire format from another language.
"""

import base64
import hashlib
import hmac
import json
import os
import time

import requests


def _js_string(v):
    """JavaScript String(v) for the JSON values a client sends."""
    if v is None:
        return ""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return ",".join(_js_string(x) for x in v)
    return "[object Object]"


def _empty(v):
    """Upstream skips undefined, null, '', false, 0, [] and arrays whose String() is ''."""
    if v is None or v is False or v == "":
        return True
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0:
        return True
    if isinstance(v, list):
        return _js_string(v) == ""
    return False


def canon(obj):
    """canon(obj) of spec section 3.1: sorted keys (UTF-16 order), k=v joined with '&'."""
    if isinstance(obj, list):
        obj = {str(i): x for i, x in enumerate(obj)}
    parts = []
    for k in sorted(obj, key=lambda s: s.encode("utf-16-be")):
        v = obj[k]
        if _empty(v):
            continue
        if isinstance(v, (dict, list)):
            parts.append(f"{k}={canon(v)}")
        else:
            parts.append(f"{k}={_js_string(v)}")
    return "&".join(parts)


class EhsmError(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Client:
    def __init__(self, url, appid=None, apikey=None, ca=None):
        self.url = url.rstrip("/")
        self.appid = appid
        self.apikey = apikey
        self.http = requests.Session()
        self.ca = ca  # the server's certificate (ehsm generates a self-signed one)

    def _verify(self):
        return self.ca if self.ca else True

    def enroll(self):
        r = self.http.get(f"{self.url}/ehsm/?Action=Enroll", verify=self._verify())
        r.raise_for_status()
        body = r.json()
        assert body["code"] == 200, body
        self.appid = body["result"]["appid"]
        self.apikey = body["result"]["apikey"]
        return body

    def envelope(self, payload=None, timestamp=None, nonce=None):
        body = {"appid": self.appid, "timestamp": timestamp or str(int(time.time() * 1000))}
        body["nonce"] = nonce if nonce is not None else str(int.from_bytes(os.urandom(8), "little"))
        if payload is not None:
            body["payload"] = payload
        mac = hmac.new(self.apikey.encode(), canon(body).encode(), hashlib.sha256).digest()
        body["sign"] = base64.b64encode(mac).decode()
        return body

    def post(self, action, body):
        r = self.http.post(
            f"{self.url}/ehsm/?Action={action}",
            data=json.dumps(body),
            headers={"Content-Type": "application/json"},
            verify=self._verify(),
        )
        r.raise_for_status()  # as the python SDK does: every answer must be HTTP 200
        out = r.json()
        assert set(out) >= {"code", "message", "result"}, out
        return out

    def call(self, action, payload=None):
        out = self.post(action, self.envelope(payload))
        if out["code"] != 200:
            raise EhsmError(out["code"], out["message"])
        return out["result"]


def b64(b):
    return base64.b64encode(b).decode()


def unb64(s):
    return base64.b64decode(s, validate=True)
