//! What GenerateQuote binds into a quote: computed here once, by the server that makes the quote
//! and by the clients that check it.

use aws_lc_rs::digest;

/// The report data GenerateQuote binds into its quote for `appid` and `challenge` (base64, as
/// the request carries it): `SHA-256("ehsm GenerateQuote\0" ‖ appid ‖ 0x00 ‖ challenge) ‖ 32
/// zero bytes`. The hash names the purpose and the app, so that a quote made for one app cannot
/// pass as another's; the appid cannot hold a NUL (it is a UUID), so the encoding is
/// unambiguous.
pub fn report_data(appid: &str, challenge: &str) -> [u8; 64] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"ehsm GenerateQuote\0");
    ctx.update(appid.as_bytes());
    ctx.update(&[0]);
    ctx.update(challenge.as_bytes());
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_data_binds_app_and_challenge() {
        let a = report_data("app", "Y2hhbGxlbmdl");
        assert_eq!(a[32..], [0; 32]);
        assert_ne!(a, report_data("app2", "Y2hhbGxlbmdl"));
        assert_ne!(a, report_data("app", "Y2hhbGxlbmdm"));
        // The separator keeps (appid, challenge) pairs apart.
        assert_ne!(report_data("ab", "c"), report_data("a", "bc"));
        let mut expected = digest::Context::new(&digest::SHA256);
        expected.update(b"ehsm GenerateQuote\0app\0Y2hhbGxlbmdl");
        assert_eq!(a[..32], *expected.finish().as_ref());
    }
}
