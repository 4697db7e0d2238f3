//! PEM text exactly as OpenSSL 3 writes it (spec §6.6): 64-column base64 lines, `\n` endings and
//! a trailing newline.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// Encodes `der` as a PEM block with `label` (e.g. `RSA PUBLIC KEY`).
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    // base64 output is ASCII, so splitting on byte boundaries is splitting on characters.
    for line in b64.as_bytes().chunks(64) {
        out.extend(line.iter().map(|&b| char::from(b)));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Decodes the first PEM block in `text`: its label (e.g. `PUBLIC KEY`) and its DER bytes, in a
/// zeroizing buffer because the block may be a private key. `None` if there is no well-formed
/// block (no BEGIN line, no matching END line, or bad base64).
pub(crate) fn decode(text: &[u8]) -> Option<(String, Zeroizing<Vec<u8>>)> {
    let text = core::str::from_utf8(text).ok()?;
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let (label, rest) = text[start..].split_once("-----")?;
    let (body, _) = rest.split_once(&format!("-----END {label}-----"))?;
    let mut b64 = Zeroizing::new(String::with_capacity(body.len()));
    b64.extend(body.chars().filter(|c| !c.is_ascii_whitespace()));
    let der = STANDARD.decode(b64.as_bytes()).ok()?;
    Some((label.to_owned(), Zeroizing::new(der)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_reads_back_what_encode_wrote_and_refuses_garbage() {
        let der: Vec<u8> = (0..=255u8).collect();
        let pem = encode("PUBLIC KEY", &der);
        let (label, back) = decode(format!("junk before\n{pem}junk after").as_bytes()).unwrap();
        assert_eq!(label, "PUBLIC KEY");
        assert_eq!(back.as_slice(), der.as_slice());
        assert!(decode(b"").is_none());
        assert!(decode(b"-----BEGIN X-----\nAAAA\n-----END Y-----\n").is_none());
        assert!(decode(b"-----BEGIN X-----\n!!!!\n-----END X-----\n").is_none());
        assert!(decode(&[0xff, 0xfe]).is_none());
    }

    #[test]
    fn wraps_at_64_columns_with_trailing_newline() {
        let pem = encode("PUBLIC KEY", &[0xAB; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN PUBLIC KEY-----");
        assert_eq!(lines[1].len(), 64);
        // 100 bytes are 136 base64 characters: two full lines and one of 8.
        assert_eq!(lines[2].len(), 64);
        assert_eq!(lines[3].len(), 8);
        assert_eq!(lines[4], "-----END PUBLIC KEY-----");
        assert!(pem.ends_with("-----\n"));
        assert!(!pem.contains('\r'));
    }
}
