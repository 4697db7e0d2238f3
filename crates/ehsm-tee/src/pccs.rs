//! Collateral fetched from a PCCS (or Intel's PCS API), with a cache.
//!
//! For a quote, [`PccsCollateral::fetch`] reads the platform from the quote's PCK certificate
//! (SGX or TDX, FMSPC, PCK CA), gets the four pieces of collateral from the PCCS's v4 API (PCK
//! CRL, TCB info, QE identity, root CA CRL; the issuer chains come URL-encoded in response
//! headers) and assembles dcap-qvl's `QuoteCollateralV3`, as dcap-qvl's own client does (its
//! `report` feature is not used: it brings its own HTTP stack and a default third-party PCCS).
//!
//! The collateral is cached per platform (TEE type, FMSPC, PCK CA) until the earliest
//! `nextUpdate` of its parts, and at most [`MAX_AGE`], so that a revocation reaches the cache
//! within a day. Concurrent fetches for one platform wait for one download.
//!
//! Transport security: the collateral is signed by Intel and checked against Intel's root CA at
//! every verification, so a PCCS (or a network) that tampers with it can only make quotes fail,
//! never pass. `http://` is therefore accepted (tests use it), but production should use
//! `https://`: it keeps the FMSPCs private and an attacker on the path from withholding fresh
//! CRLs until the cached ones expire.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use dcap_qvl::QuoteCollateralV3;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::dcap::{Collateral, PckPlatform};
use crate::ratls::{CollateralSource, RatlsError};

/// The longest a fetched collateral is used without asking the PCCS again.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// How long one request to the PCCS may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many platforms' last fetch failures are remembered (for error messages).
const MAX_FAILURES_KEPT: usize = 256;

/// Why collateral could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The PCCS URL is not an `http://` or `https://` URL, or the HTTP client cannot be built.
    Config(String),
    /// The quote does not name its platform (no PCK certificate, or one that does not parse):
    /// the quote's fault, not the PCCS's.
    Quote(String),
    /// A request to the PCCS failed: transport, HTTP status, a missing header or a body that
    /// is not what the endpoint serves.
    Fetch {
        /// The URL requested.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(reason) => write!(f, "the PCCS client cannot be set up: {reason}"),
            Error::Quote(reason) => write!(
                f,
                "the quote's platform (FMSPC, PCK CA) cannot be read from its PCK \
                 certificate: {reason}"
            ),
            Error::Fetch { url, reason } => write!(f, "fetching collateral from {url}: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

/// Collateral from a PCCS, cached. Cheap to clone: clones share the cache.
#[derive(Clone)]
pub struct PccsCollateral(Arc<Inner>);

struct Inner {
    /// The URL the v4 API paths go under, without a trailing `/`.
    base_url: String,
    client: reqwest::Client,
    cache: Mutex<HashMap<PckPlatform, Cached>>,
    /// One async lock per platform being fetched, so that concurrent requests for it wait for
    /// one download instead of each asking the PCCS.
    in_flight: Mutex<HashMap<PckPlatform, Arc<tokio::sync::Mutex<()>>>>,
    /// The last failure per platform, for the synchronous lookup to report.
    failures: Mutex<HashMap<PckPlatform, String>>,
}

struct Cached {
    collateral: Collateral,
    /// Used up to and including this time.
    until: SystemTime,
}

impl fmt::Debug for PccsCollateral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PccsCollateral")
            .field("base_url", &self.0.base_url)
            .finish_non_exhaustive()
    }
}

impl PccsCollateral {
    /// A client of the PCCS at `base_url`, e.g. `https://pccs.example:8081` (a URL ending in
    /// `/sgx/certification/v4` is accepted too).
    pub fn new(base_url: &str) -> Result<Self, Error> {
        let trimmed = base_url.trim().trim_end_matches('/');
        let base_url = trimmed
            .strip_suffix("/sgx/certification/v4")
            .or_else(|| trimmed.strip_suffix("/tdx/certification/v4"))
            .unwrap_or(trimmed)
            .to_owned();
        let has_host = |rest: &str| !rest.is_empty() && !rest.starts_with('/');
        let valid = base_url
            .strip_prefix("https://")
            .or_else(|| base_url.strip_prefix("http://"))
            .is_some_and(has_host);
        if !valid {
            return Err(Error::Config(format!(
                "{base_url:?} is not an https:// (or, for tests, http://) URL"
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .build()
            .map_err(|e| Error::Config(format!("{e}")))?;
        Ok(Self(Arc::new(Inner {
            base_url,
            client,
            cache: Mutex::default(),
            in_flight: Mutex::default(),
            failures: Mutex::default(),
        })))
    }

    /// The PCCS's base URL.
    pub fn base_url(&self) -> &str {
        &self.0.base_url
    }

    /// The collateral for `quote`: from the cache if it is still fresh at `now`, else from the
    /// PCCS (and then cached). Whether it verifies the quote is [`crate::dcap::verify`]'s
    /// business: this only fetches.
    pub async fn fetch(&self, quote: &[u8], now: SystemTime) -> Result<Collateral, Error> {
        let platform = PckPlatform::of(quote).map_err(Error::Quote)?;
        self.0.fetch(platform, now).await
    }
}

impl Inner {
    async fn fetch(&self, platform: PckPlatform, now: SystemTime) -> Result<Collateral, Error> {
        if let Some(collateral) = self.cached(&platform, now) {
            return Ok(collateral);
        }
        let gate = Arc::clone(lock(&self.in_flight).entry(platform.clone()).or_default());
        let result = {
            let _guard = gate.lock().await;
            // Whoever held the lock before may have fetched it.
            match self.cached(&platform, now) {
                Some(collateral) => Ok(collateral),
                None => self.download_and_cache(&platform, now).await,
            }
        };
        // Forget the lock once nobody waits on it, so that quotes naming made-up platforms do
        // not grow the map (the map's reference and ours are the only ones left then).
        let mut in_flight = lock(&self.in_flight);
        if Arc::strong_count(&gate) == 2 {
            in_flight.remove(&platform);
        }
        result
    }

    fn cached(&self, platform: &PckPlatform, now: SystemTime) -> Option<Collateral> {
        lock(&self.cache)
            .get(platform)
            .filter(|cached| now <= cached.until)
            .map(|cached| cached.collateral.clone())
    }

    async fn download_and_cache(
        &self,
        platform: &PckPlatform,
        now: SystemTime,
    ) -> Result<Collateral, Error> {
        let result = self.download(platform).await;
        match &result {
            Ok(collateral) => {
                // Dates that do not parse make the collateral unusable anyway; verification
                // will say so. It is then not reused: the next request asks again.
                let until = match collateral.next_update() {
                    Ok(Some(next)) => next.min(now + MAX_AGE),
                    Ok(None) => now + MAX_AGE,
                    Err(_) => SystemTime::UNIX_EPOCH,
                };
                lock(&self.cache).insert(
                    platform.clone(),
                    Cached {
                        collateral: collateral.clone(),
                        until,
                    },
                );
                lock(&self.failures).remove(platform);
            }
            Err(e) => {
                let mut failures = lock(&self.failures);
                // The platform comes from a quote nobody has verified yet, so anyone can make
                // up new ones: keep the map bounded (the reasons only improve error messages).
                if failures.len() >= MAX_FAILURES_KEPT {
                    failures.clear();
                }
                failures.insert(platform.clone(), e.to_string());
            }
        }
        result
    }

    /// The four pieces, requested concurrently.
    async fn download(&self, platform: &PckPlatform) -> Result<Collateral, Error> {
        let tee = if platform.sgx { "sgx" } else { "tdx" };
        let pck_crl_url = self.url("sgx", &format!("pckcrl?ca={}&encoding=der", platform.ca));
        let tcb_url = self.url(tee, &format!("tcb?fmspc={}", platform.fmspc));
        let qe_url = self.url(tee, "qe/identity");
        let root_url = self.url("sgx", "rootcacrl");
        let (pck_crl, tcb, qe, root) = tokio::try_join!(
            self.get(&pck_crl_url),
            self.get(&tcb_url),
            self.get(&qe_url),
            self.get(&root_url),
        )?;

        let pck_crl_issuer_chain = pck_crl.chain(&["SGX-PCK-CRL-Issuer-Chain"])?;
        let tcb_info_issuer_chain =
            tcb.chain(&["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"])?;
        let qe_identity_issuer_chain = qe.chain(&["SGX-Enclave-Identity-Issuer-Chain"])?;
        let tcb_body: TcbInfoBody = tcb.json()?;
        let qe_body: QeIdentityBody = qe.json()?;
        Ok(Collateral::from_parts(QuoteCollateralV3 {
            pck_crl_issuer_chain,
            root_ca_crl: root.crl()?,
            pck_crl: pck_crl.crl()?,
            tcb_info_issuer_chain,
            tcb_info: tcb_body.tcb_info.get().to_owned(),
            tcb_info_signature: tcb.signature(&tcb_body.signature)?,
            qe_identity_issuer_chain,
            qe_identity: qe_body.enclave_identity.get().to_owned(),
            qe_identity_signature: qe.signature(&qe_body.signature)?,
            // The quotes this reads the platform of carry their PCK chain (certification data
            // type 5); dcap-qvl takes it from there.
            pck_certificate_chain: None,
        }))
    }

    fn url(&self, tee: &str, path: &str) -> String {
        format!("{}/{tee}/certification/v4/{path}", self.base_url)
    }

    async fn get(&self, url: &str) -> Result<Response, Error> {
        let fail = |reason: String| Error::Fetch {
            url: url.to_owned(),
            reason,
        };
        // `{:#}`-style detail: reqwest's top-level message alone ("error sending request")
        // does not say whether the name, the connection or the timeout failed.
        let detail = |e: reqwest::Error| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        };
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| fail(detail(e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(format!("HTTP {status}")));
        }
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| fail(detail(e)))?;
        Ok(Response {
            url: url.to_owned(),
            headers,
            body: body.to_vec(),
        })
    }
}

/// A PCCS answer with a success status.
struct Response {
    url: String,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

/// The TCB info endpoint's body. The signed JSON is kept as the exact bytes served: the
/// signature is over them, and re-serializing could reorder or reformat them.
#[derive(Deserialize)]
struct TcbInfoBody<'a> {
    #[serde(rename = "tcbInfo", borrow)]
    tcb_info: &'a RawValue,
    signature: String,
}

/// The QE identity endpoint's body, kept exact for the same reason.
#[derive(Deserialize)]
struct QeIdentityBody<'a> {
    #[serde(rename = "enclaveIdentity", borrow)]
    enclave_identity: &'a RawValue,
    signature: String,
}

impl Response {
    fn fail(&self, reason: String) -> Error {
        Error::Fetch {
            url: self.url.clone(),
            reason,
        }
    }

    /// The issuer chain (PEM) in the first of `names` present, URL-decoded as Intel sends it.
    fn chain(&self, names: &[&str]) -> Result<String, Error> {
        let value = names
            .iter()
            .find_map(|name| self.headers.get(*name))
            .ok_or_else(|| {
                self.fail(format!("the response has no {} header", names.join(" or ")))
            })?;
        percent_encoding::percent_decode(value.as_bytes())
            .decode_utf8()
            .map(|chain| chain.into_owned())
            .map_err(|e| {
                let names = names.join(" or ");
                self.fail(format!("the {names} header is not URL-encoded UTF-8: {e}"))
            })
    }

    fn json<'a, T: Deserialize<'a>>(&'a self) -> Result<T, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| self.fail(format!("the body is not the endpoint's JSON: {e}")))
    }

    fn signature(&self, hex_text: &str) -> Result<Vec<u8>, Error> {
        hex::decode(hex_text)
            .map_err(|e| self.fail(format!("the body's signature is not hex: {e}")))
    }

    /// A CRL body: DER as Intel's PCS serves it (`encoding=der`), or the hex text of the DER
    /// that PCCS serves for the root CA CRL.
    fn crl(&self) -> Result<Vec<u8>, Error> {
        // A DER CRL is a SEQUENCE; hex text starts with a digit or letter.
        if self.body.first() == Some(&0x30) {
            return Ok(self.body.clone());
        }
        let text = String::from_utf8_lossy(&self.body);
        hex::decode(text.trim())
            .map_err(|_| self.fail("the body is neither a DER CRL nor its hex text".to_owned()))
    }
}

/// Locks a map; a panic in another thread while it held the lock leaves the map consistent
/// (every update is one insert or remove), so a poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The synchronous lookup, for RA-TLS: rustls's certificate verifiers are synchronous and run
/// on the runtime's threads, so they must not wait for the network. A lookup answers from the
/// cache only; on a miss it starts the fetch in the background (when called on a tokio runtime)
/// and refuses this handshake, so that the peer's retry finds the collateral. Callers that can
/// await call [`PccsCollateral::fetch`] first.
impl CollateralSource for PccsCollateral {
    fn collateral(&self, quote: &[u8]) -> Result<Collateral, RatlsError> {
        let platform = PckPlatform::of(quote).map_err(|e| {
            RatlsError::Collateral(format!("the quote's FMSPC cannot be read: {e}"))
        })?;
        let now = SystemTime::now();
        if let Some(collateral) = self.0.cached(&platform, now) {
            return Ok(collateral);
        }
        let last_failure = lock(&self.0.failures).get(&platform).cloned();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let inner = Arc::clone(&self.0);
            let key = platform.clone();
            // The outcome is recorded in the cache or in `failures`; nothing else to do here.
            runtime.spawn(async move { inner.fetch(key, SystemTime::now()).await });
        }
        let mut message = format!(
            "the collateral for FMSPC {} is being fetched from {}; retry shortly",
            platform.fmspc, self.0.base_url
        );
        if let Some(failure) = last_failure {
            message.push_str(&format!(" (the last attempt failed: {failure})"));
        }
        Err(RatlsError::Collateral(message))
    }
}
