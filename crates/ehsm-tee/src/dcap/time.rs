//! RFC 3339 times as Unix seconds: the collateral's dates, `--now`, and error messages.
//!
//! chrono is already in the tree through dcap-qvl (without its clock), so it parses and formats
//! here rather than a hand-written calendar.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat};

/// Parses an RFC 3339 time (`2025-06-20T00:00:00Z`, or with an offset) to a [`SystemTime`].
/// Times before 1970 are refused: no collateral is that old.
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    let secs = parse_unix_secs(text)?;
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Parses an RFC 3339 time to Unix seconds.
pub(super) fn parse_unix_secs(text: &str) -> Result<u64, String> {
    let time = DateTime::parse_from_rfc3339(text).map_err(|e| {
        format!("{text:?} is not an RFC 3339 time such as 2025-06-20T00:00:00Z ({e})")
    })?;
    u64::try_from(time.timestamp()).map_err(|_| format!("{text:?} is before 1970"))
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_unix_secs(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .map_or_else(
            || format!("{secs} seconds after 1970"),
            |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
        )
}

/// Unix seconds of a [`SystemTime`]; times before 1970 count as 0.
pub(crate) fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_and_formats() {
        let t = parse_rfc3339("2025-06-20T00:00:00Z").unwrap();
        assert_eq!(unix_secs(t), 1_750_377_600);
        assert_eq!(format_unix_secs(1_750_377_600), "2025-06-20T00:00:00Z");
        assert_eq!(
            parse_unix_secs("2025-06-20T02:00:00+02:00").unwrap(),
            1_750_377_600
        );
    }

    #[test]
    fn refuses_what_is_not_rfc3339() {
        for bad in [
            "",
            "2025-06-20",
            "2025-06-20 00:00:00",
            "2025-13-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "now",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_out_of_range_without_panicking() {
        assert!(format_unix_secs(u64::MAX).contains("seconds after 1970"));
    }
}
