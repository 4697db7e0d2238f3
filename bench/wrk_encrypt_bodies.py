"""Pre-signs N Encrypt requests (unique nonces) for `wrk -s bench/wrk_encrypt.lua`.

wrk cannot compute HMACs, so the signed bodies are made here, with the independent Python
client's canonicaliser, and replayed once each by wrk: a lean load generator to measure the
server alone. Usage: python3 bench/wrk_encrypt_bodies.py http://127.0.0.1:9400 200000
(writes bodies.txt in the current directory; the timestamps are valid for 10 minutes).
"""
import base64, hashlib, hmac, json, os, sys, time, requests
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
from ehsm_wire import canon
url = sys.argv[1]; n = int(sys.argv[2])
s = requests.Session()
r = s.get(f"{url}/ehsm?Action=Enroll").json()["result"]
appid, apikey = r["appid"], r["apikey"]
def body(payload, nonce):
    b = {"appid": appid, "timestamp": str(int(time.time()*1000)), "nonce": nonce, "payload": payload}
    b["sign"] = base64.b64encode(hmac.new(apikey.encode(), canon(b).encode(), hashlib.sha256).digest()).decode()
    return b
k = s.post(f"{url}/ehsm?Action=CreateKey", json=body({"keyspec":"EH_AES_GCM_256","origin":"EH_INTERNAL_KEY","keyusage":"EH_KEYUSAGE_ENCRYPT_DECRYPT"}, "0")).json()["result"]["keyid"]
pt = base64.b64encode(os.urandom(1024)).decode()
with open("bodies.txt", "w") as f:
    for i in range(1, n+1):
        f.write(json.dumps(body({"keyid": k, "plaintext": pt}, str(i)), separators=(",",":")) + "\n")
print("ok", k)
