//! BYOK (spec §6.9): the wrapping key's context and the import token.
//!
//! Upstream's import token was base64 JSON `{keyid, timestamp}` whose MAC was never checked
//! (spec §16.9). Clients only echo the token back, so ours is opaque:
//!
//! ```text
//! token = base64( 1 ‖ expires_at_ms (u64 BE) ‖ HMAC-SHA256(token key, label ‖ key context
//!                                                ‖ expires_at_ms ‖ wrapping blob) )
//! ```
//!
//! The token key is derived from the domain key that wrapped the wrapping key. The MAC binds the
//! token to the CMK (keyid, app, spec, version), to its expiry, and to the one wrapping key it was
//! issued with, so a token from an earlier GetParametersForImport is useless with a later one.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::blob::{KeyBlob, KeyContext};
use crate::domain::DomainKeySet;
use crate::spec::{KeySpec, KeyUsage, Origin};
use crate::{Error, Result};

const TOKEN_V1: u8 = 1;
const TOKEN_LEN: usize = 1 + 8 + 32;
const LABEL: &[u8] = b"ehsm import token v1";

/// What GetParametersForImport returns: the public key for the client, and what the service
/// keeps for ImportKeyMaterial.
pub struct ImportParams {
    /// The wrapping key's public key, PKCS#1 `RSA PUBLIC KEY` PEM (the Rust SDK parses only that).
    pub public_key_pem: String,
    /// The wrapping key, wrapped; the service stores it with the CMK.
    pub wrapping_blob: KeyBlob,
    /// The wrapping key's spec; the service stores it too.
    pub wrapping_spec: KeySpec,
    /// The import token for the client (base64).
    pub token: String,
}

/// Checks that `ctx` may receive imported material; returns the material length it needs.
pub(crate) fn check_importable(ctx: &KeyContext<'_>) -> Result<usize> {
    if ctx.origin != Origin::External {
        return Err(Error::NotPermitted(
            "only keys created with origin EH_EXTERNAL_KEY take imported material",
        ));
    }
    ctx.spec.symmetric_key_len().ok_or(Error::NotPermitted(
        "only AES, SM4 and HMAC key material can be imported",
    ))
}

/// The context the wrapping key's blob is bound to: the CMK's, with the wrapping spec.
pub(crate) fn wrapping_context<'a>(ctx: &KeyContext<'a>, wrapping_spec: KeySpec) -> KeyContext<'a> {
    KeyContext {
        spec: wrapping_spec,
        origin: Origin::External,
        usage: KeyUsage::EncryptDecrypt,
        ..*ctx
    }
}

fn token_mac(
    dks: &DomainKeySet,
    ctx: &KeyContext<'_>,
    wrapping_blob: &KeyBlob,
    expires_at_ms: u64,
) -> Result<[u8; 32]> {
    let dk = wrapping_blob
        .domain_key_version()
        .ok_or(Error::IntegrityFailure(
            "import wrapping key blob is malformed",
        ))?;
    let mut msg = Vec::with_capacity(LABEL.len() + 96 + wrapping_blob.as_bytes().len());
    msg.extend_from_slice(LABEL);
    ctx.write_binding(&mut msg)?;
    msg.extend_from_slice(&expires_at_ms.to_be_bytes());
    msg.extend_from_slice(wrapping_blob.as_bytes());
    Ok(dks.token_key(dk)?.sign(&msg))
}

pub(crate) fn make_token(
    dks: &DomainKeySet,
    ctx: &KeyContext<'_>,
    wrapping_blob: &KeyBlob,
    expires_at_ms: u64,
) -> Result<String> {
    let mut raw = [0u8; TOKEN_LEN];
    raw[0] = TOKEN_V1;
    raw[1..9].copy_from_slice(&expires_at_ms.to_be_bytes());
    raw[9..].copy_from_slice(&token_mac(dks, ctx, wrapping_blob, expires_at_ms)?);
    Ok(STANDARD.encode(raw))
}

pub(crate) fn check_token(
    dks: &DomainKeySet,
    ctx: &KeyContext<'_>,
    wrapping_blob: &KeyBlob,
    token: &str,
    now_ms: u64,
) -> Result<()> {
    const BAD: Error = Error::InvalidImportToken;
    let raw = STANDARD.decode(token).map_err(|_| BAD)?;
    let raw: [u8; TOKEN_LEN] = raw.try_into().map_err(|_| BAD)?;
    if raw[0] != TOKEN_V1 {
        return Err(BAD);
    }
    let mut expiry = [0u8; 8];
    expiry.copy_from_slice(&raw[1..9]);
    let expires_at_ms = u64::from_be_bytes(expiry);
    let want = token_mac(dks, ctx, wrapping_blob, expires_at_ms)?;
    // Constant time: the MAC is the secret part of the token.
    if !bool::from(subtle::ConstantTimeEq::ct_eq(&want[..], &raw[9..])) {
        return Err(BAD);
    }
    // Expiry is checked after the MAC, so an attacker learns nothing from which error comes back.
    if now_ms > expires_at_ms {
        return Err(Error::ImportTokenExpired);
    }
    Ok(())
}
