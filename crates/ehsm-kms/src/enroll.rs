//! Enroll (spec §7.15) and who may do it.
//!
//! Upstream let anyone who reached the port mint an app (spec §16.1). ehsm has three modes:
//! `open` (upstream's behaviour), `token` (the enrolling client presents an operator token,
//! printed once at first start and stored only as a SHA-256 hash) and `off`. The default is
//! `open` only while the server listens on a loopback address, `token` otherwise.
//!
//! Enroll is also rate-limited per client address (`--enroll-rate`, default 5 a second with
//! bursts of 20, unlimited on a loopback address where every client is local): a token bucket
//! per IPv4 address or IPv6 /64, checked before the token, so that guessing it is slow too.
//! At most [`TRACKED`] addresses are remembered; buckets that have refilled are forgotten
//! first (they are the same as new ones), and while every remembered address is still
//! enrolling, a new address waits until one refills.
//!
//! The other unauthenticated action that costs the server something, GetServerEvidence (a
//! quote from the platform's quoting enclave on SGX), is limited at the same rate, in buckets
//! of its own (see [`EnrollPolicy::admit`]).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use axum::http::{HeaderMap, Method};
use ehsm_proto::Action;
use ehsm_store::AppRecord;
use serde_json::json;

use crate::actions::new_default_secret_key;
use crate::reply::{ApiError, ApiResult, Reply};
use crate::state::{AppState, now_ms};

/// Who may enroll.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EnrollMode {
    /// Anyone who can reach the server (upstream's behaviour).
    Open,
    /// Clients presenting the operator's enrollment token (`Authorization: Bearer <token>`).
    Token,
    /// Nobody.
    Off,
}

/// The settings key under which the token's hash is stored.
pub(crate) const TOKEN_SETTING: &str = "enroll_token_sha256";

/// Enrollments per second per client address off loopback, unless configured.
pub const DEFAULT_ENROLL_RATE: u32 = 5;
/// A client may enroll this many seconds' worth of its rate at once.
const BURST_SECONDS: f64 = 4.0;
/// At most this many client addresses have a bucket.
const TRACKED: usize = 10_000;

pub(crate) struct EnrollPolicy {
    mode: EnrollMode,
    token_sha256: Option<Vec<u8>>,
    /// GET Enroll's buckets; `None`: unlimited.
    limit: Option<RateLimit>,
    /// POST GetServerEvidence's buckets, at the same rate; `None`: unlimited.
    evidence_limit: Option<RateLimit>,
}

impl EnrollPolicy {
    /// `per_second` enrollments (and as many evidence requests) per client address, 0 for no
    /// limit.
    pub(crate) fn new(mode: EnrollMode, token_sha256: Option<Vec<u8>>, per_second: u32) -> Self {
        let limit = || (per_second > 0).then(|| RateLimit::new(f64::from(per_second)));
        Self {
            mode,
            token_sha256,
            limit: limit(),
            evidence_limit: limit(),
        }
    }

    /// The rate limit, for a GET Enroll or a POST GetServerEvidence from `peer` (`None`:
    /// unknown, all such share a bucket). Checked before the action runs, so that every refused
    /// attempt counts, a wrong token or a malformed challenge too.
    ///
    /// The two actions have buckets of their own, at the one configured rate: an attested
    /// enrollment (evidence, then Enroll) gets a whole burst of each, and clients that only
    /// enroll, upstream's among them, see exactly the limit they saw before evidence existed,
    /// however often their neighbours behind the same address check the server (health checks
    /// of `ehsm attest server` included). Each bucket still bounds what one address can make
    /// the server do.
    pub(crate) fn admit(
        &self,
        method: &Method,
        action: Option<Action>,
        peer: Option<IpAddr>,
    ) -> Result<(), ApiError> {
        let (limit, refusal) = match (action, method) {
            // A disabled Enroll costs nothing to refuse.
            (Some(Action::Enroll), &Method::GET) if self.mode != EnrollMode::Off => {
                (&self.limit, "Too many enrollments; try again in a moment.")
            }
            (Some(Action::GetServerEvidence), &Method::POST) => (
                &self.evidence_limit,
                "Too many evidence requests; try again in a moment.",
            ),
            _ => return Ok(()),
        };
        let Some(limit) = limit else {
            return Ok(());
        };
        let client = peer.map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), client_of);
        if limit.take(client, Instant::now()) {
            Ok(())
        } else {
            Err(ApiError::bad_request(refusal))
        }
    }

    fn allow(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match self.mode {
            EnrollMode::Open => {}
            EnrollMode::Off => {
                return Err(ApiError::bad_request(
                    "Enrollment is disabled on this server.",
                ));
            }
            EnrollMode::Token => {
                let presented = headers
                    .get(axum::http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(|t| digest(&SHA256, t.trim().as_bytes()));
                let ok = match (&self.token_sha256, presented) {
                    (Some(want), Some(got)) => verify_slices_are_equal(want, got.as_ref()).is_ok(),
                    _ => false,
                };
                if !ok {
                    return Err(ApiError::bad_request(
                        "Enrollment needs the operator's enrollment token (Authorization: Bearer <token>).",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whose bucket an address fills: an IPv4 address (also mapped into IPv6) or an IPv6 /64, the
/// smallest block a site is usually given.
fn client_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// Token buckets per client, in a bounded map.
struct RateLimit {
    per_second: f64,
    burst: f64,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    /// Tokens left and when they were counted, per client.
    by_client: HashMap<IpAddr, (f64, Instant)>,
    /// When full buckets were last pruned: at most once a second, since a bucket refills by
    /// only `per_second` tokens a second.
    pruned: Option<Instant>,
}

impl RateLimit {
    fn new(per_second: f64) -> Self {
        Self {
            per_second,
            burst: (per_second * BURST_SECONDS).max(1.0),
            buckets: Mutex::new(Buckets {
                by_client: HashMap::new(),
                pruned: None,
            }),
        }
    }

    fn tokens(&self, (tokens, at): (f64, Instant), now: Instant) -> f64 {
        (tokens + now.saturating_duration_since(at).as_secs_f64() * self.per_second).min(self.burst)
    }

    /// Takes one token from `client`'s bucket, if it has one.
    fn take(&self, client: IpAddr, now: Instant) -> bool {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.by_client.len() >= TRACKED && !b.by_client.contains_key(&client) {
            if b.pruned
                .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1))
            {
                return false;
            }
            b.pruned = Some(now);
            b.by_client
                .retain(|_, bucket| self.tokens(*bucket, now) < self.burst);
            if b.by_client.len() >= TRACKED {
                return false;
            }
        }
        let bucket = b.by_client.entry(client).or_insert((self.burst, now));
        let tokens = self.tokens(*bucket, now);
        if tokens < 1.0 {
            return false;
        }
        *bucket = (tokens - 1.0, now);
        true
    }
}

/// The SHA-256 of an enrollment token, as stored.
pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    digest(&SHA256, token.as_bytes()).as_ref().to_vec()
}

/// GET ?Action=Enroll: a new appid and API key.
pub(crate) async fn enroll(state: &AppState, headers: &HeaderMap) -> ApiResult {
    state.enroll.allow(headers)?;
    let appid = uuid::Uuid::new_v4().to_string();
    let (apikey, blob) = state.core.create_api_key(&appid)?;
    let app = AppRecord {
        appid: appid.clone(),
        apikey_blob: blob.as_bytes().to_vec(),
        created_at: now_ms(),
    };
    // The app's default secret key comes with it, in the same transaction.
    let secret_key = new_default_secret_key(state, &appid)?;
    state.store.insert_app(&app, &[secret_key]).await?;
    Ok(Reply::successful(
        json!({ "appid": appid, "apikey": apikey.expose() }),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn each_client_has_its_own_burst_and_rate() {
        let limit = RateLimit::new(5.0);
        let t0 = Instant::now();
        let a = client_of(ip("192.0.2.1"));
        assert_eq!(
            (0..25).filter(|_| limit.take(a, t0)).count(),
            20,
            "a burst of 20"
        );
        assert!(
            limit.take(client_of(ip("192.0.2.2")), t0),
            "another address"
        );
        assert!(!limit.take(a, t0 + Duration::from_millis(100)));
        let t1 = t0 + Duration::from_millis(1000);
        assert_eq!(
            (0..10).filter(|_| limit.take(a, t1)).count(),
            5,
            "5 a second"
        );
    }

    #[test]
    fn an_ipv6_client_is_its_64_and_a_mapped_ipv4_its_address() {
        assert_eq!(
            client_of(ip("2001:db8:1:2:aaaa::1")),
            client_of(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            client_of(ip("2001:db8:1:2::1")),
            client_of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(client_of(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        let limit = RateLimit::new(1.0);
        let t0 = Instant::now();
        let taken = (0..8)
            .filter(|i| limit.take(client_of(ip(&format!("2001:db8::{i}"))), t0))
            .count();
        assert_eq!(taken, 4, "one /64, one bucket");
    }

    #[test]
    fn the_map_is_bounded_and_forgets_refilled_clients_first() {
        let limit = RateLimit::new(1.0);
        let t0 = Instant::now();
        let client = |i: usize| IpAddr::V4(std::net::Ipv4Addr::from_bits(i as u32));
        for i in 0..TRACKED {
            assert!(limit.take(client(i), t0));
        }
        // Every remembered client is still enrolling: a new one waits.
        assert!(!limit.take(client(TRACKED), t0));
        // Once the others have refilled, they are forgotten and the new one is counted.
        let later = t0 + Duration::from_secs(10);
        assert!(limit.take(client(TRACKED), later));
        let b = limit.buckets.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(b.by_client.len(), 1);
    }

    #[test]
    fn only_a_get_enroll_is_counted_and_zero_is_unlimited() {
        let limited = EnrollPolicy::new(EnrollMode::Open, None, 1);
        let peer = Some(ip("192.0.2.1"));
        for _ in 0..100 {
            assert!(
                limited
                    .admit(&Method::GET, Some(Action::GetVersion), peer)
                    .is_ok()
            );
            assert!(
                limited
                    .admit(&Method::POST, Some(Action::Enroll), peer)
                    .is_ok()
            );
        }
        let refused = (0..10)
            .filter(|_| {
                limited
                    .admit(&Method::GET, Some(Action::Enroll), peer)
                    .is_err()
            })
            .count();
        assert_eq!(refused, 6);
        let unlimited = EnrollPolicy::new(EnrollMode::Open, None, 0);
        for _ in 0..1000 {
            assert!(
                unlimited
                    .admit(&Method::GET, Some(Action::Enroll), peer)
                    .is_ok()
            );
        }
    }

    #[test]
    fn server_evidence_is_counted_on_post_in_buckets_of_its_own() {
        const ENROLLMENTS: &str = "Too many enrollments; try again in a moment.";
        const EVIDENCE: &str = "Too many evidence requests; try again in a moment.";
        let refusal = |r: Result<(), ApiError>| r.err().map(|e| (e.code, e.message));
        let limited = EnrollPolicy::new(EnrollMode::Open, None, 1);
        let peer = Some(ip("192.0.2.1"));
        // GET is not served (404) and costs nothing: not counted.
        for _ in 0..100 {
            assert!(
                limited
                    .admit(&Method::GET, Some(Action::GetServerEvidence), peer)
                    .is_ok()
            );
        }
        let evidence = || limited.admit(&Method::POST, Some(Action::GetServerEvidence), peer);
        for _ in 0..4 {
            assert_eq!(refusal(evidence()), None, "a burst of 4 at 1 a second");
        }
        assert_eq!(refusal(evidence()), Some((400, EVIDENCE.into())));
        // Enroll's bucket is untouched: its whole burst, then its own message.
        let enroll = || limited.admit(&Method::GET, Some(Action::Enroll), peer);
        for _ in 0..4 {
            assert_eq!(refusal(enroll()), None);
        }
        assert_eq!(refusal(enroll()), Some((400, ENROLLMENTS.into())));
        // Another address has its own evidence bucket.
        assert!(
            limited
                .admit(
                    &Method::POST,
                    Some(Action::GetServerEvidence),
                    Some(ip("192.0.2.2"))
                )
                .is_ok()
        );
        // Evidence is served, and limited, whoever may enroll.
        let enroll_off = EnrollPolicy::new(EnrollMode::Off, None, 1);
        let refused = (0..10)
            .filter(|_| {
                enroll_off
                    .admit(&Method::POST, Some(Action::GetServerEvidence), peer)
                    .is_err()
            })
            .count();
        assert_eq!(refused, 6);
        let unlimited = EnrollPolicy::new(EnrollMode::Open, None, 0);
        for _ in 0..1000 {
            assert!(
                unlimited
                    .admit(&Method::POST, Some(Action::GetServerEvidence), peer)
                    .is_ok()
            );
        }
    }
}
