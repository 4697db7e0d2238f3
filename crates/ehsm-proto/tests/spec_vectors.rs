//! Spec §3.6: the six signing vectors, canonical string *and* sign, end to end.
//!
//! ehsm-proto has no crypto dependency, so this test carries a minimal SHA-256, HMAC and base64,
//! checked first against FIPS 180-4 and RFC 4231 so that a bug there cannot pass unnoticed.

use ehsm_proto::canon::{signing_string, try_signing_string};
use serde_json::{Map, Value, json};

const APPID: &str = "b7c62e4d-c238-4016-b35f-47bc4b57dc03";
const APIKEY: &str = "D3nK2Vq90QrFkHGRZ3dBAyFEfPTtLfQy";

fn body(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn spec_3_6_vectors() {
    let vectors = [
        (
            json!({"keyspec": "EH_AES_GCM_256", "origin": "EH_INTERNAL_KEY",
                "keyusage": "EH_KEYUSAGE_ENCRYPT_DECRYPT"}),
            None,
            "payload=keyspec=EH_AES_GCM_256&keyusage=EH_KEYUSAGE_ENCRYPT_DECRYPT&origin=EH_INTERNAL_KEY&",
            "15sVY0CoLLgWBSBdyPKcBX3oL2kw7ldRWgfETtjbZV8=",
        ),
        (
            Value::Null, // no payload key at all
            None,
            "",
            "hDaIwPg7vUFWyWqIZSBb26vOVbQm+y2wC1RJiOvsUiQ=",
        ),
        (
            json!({"keyid": "aac3e45a-d3dc-4791-89b6-4ada0e38e6ef", "keylen": 16, "aad": ""}),
            Some("1234567890"),
            "nonce=1234567890&payload=keyid=aac3e45a-d3dc-4791-89b6-4ada0e38e6ef&keylen=16&",
            "IERyXzk6l/brqkiHLHtXTRUnIKlhiyFOqPyaITu+GKA=",
        ),
        (
            json!({}),
            None,
            "payload=&",
            "60u9N67DrGvGMMHFN3lRDWeT+uhgWG3z7ftdcExJ/Y0=",
        ),
        (
            json!({"secretName": "a b&c=d", "forceDelete": "true", "recoveryPeriod": 7}),
            None,
            "payload=forceDelete=true&recoveryPeriod=7&secretName=a b&c=d&",
            "S98T0HyU6TGXDZyJDhM5BbXSyFo5tBgOqmUmtcaEvlg=",
        ),
        (
            json!({"b": true, "f": false, "z": 0, "e": [], "a": [1, 2], "n": {"y": 1, "x": "q"}, "s": " "}),
            None,
            "payload=a=0=1&1=2&b=true&n=x=q&y=1&s= &",
            "CTbFLoabgO5y8qSUySkzn6EfP8JikJc71Yu/8Odx0BY=",
        ),
    ];
    for (payload, nonce, middle, sign) in vectors {
        let mut request = body(json!({"appid": APPID, "timestamp": "1700000000000", "sign": sign}));
        if !payload.is_null() {
            request.insert("payload".to_owned(), payload);
        }
        if let Some(nonce) = nonce {
            request.insert("nonce".to_owned(), json!(nonce));
        }
        let canonical = format!("appid={APPID}&{middle}timestamp=1700000000000");
        assert_eq!(signing_string(&request), canonical);
        assert_eq!(
            try_signing_string(&request).as_deref(),
            Ok(canonical.as_str())
        );
        let mac = hmac_sha256(APIKEY.as_bytes(), canonical.as_bytes());
        assert_eq!(base64(&mac), sign, "{canonical}");
    }
}

#[test]
fn test_crypto_matches_published_vectors() {
    // FIPS 180-4 examples.
    assert_eq!(
        hex(&sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        hex(&sha256(
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
        )),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
    // RFC 4231 test cases 2 (short key) and 6 (key longer than a block).
    assert_eq!(
        hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hex(&hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
    // RFC 4648 §10.
    let pairs = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foobar", "Zm9vYmFy"),
    ];
    for (plain, encoded) in pairs {
        assert_eq!(base64(plain.as_bytes()), encoded);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = block
        .iter()
        .map(|b| b ^ 0x36)
        .chain(message.iter().copied())
        .collect();
    let outer: Vec<u8> = block
        .iter()
        .map(|b| b ^ 0x5c)
        .chain(sha256(&inner))
        .collect();
    sha256(&outer)
}

fn sha256(message: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut data = message.to_vec();
    data.push(0x80);
    while data.len() % 64 != 56 {
        data.push(0);
    }
    data.extend_from_slice(&(message.len() as u64 * 8).to_be_bytes());
    for block in data.chunks(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            (hh, g, f, e, d, c, b, a) = (g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2));
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}
