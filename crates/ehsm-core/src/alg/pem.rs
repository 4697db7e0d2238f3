//! PEM text exactly as OpenSSL 3 writes it (spec §6.6): 64-column base64 lines, `\n` endings and
//! a trailing newline.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

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

#[cfg(test)]
mod tests {
    use super::*;

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
