//! Domain-key backup: the DK set split into N shares, any M of which recover it (Shamir over
//! GF(2^8), [`crate::shamir`]), each share encrypted to one custodian's RSA public key.
//!
//! Plaintext shares never leave the core: [`DomainKeySet::split_to_custodians`] encrypts each
//! share to its custodian before returning it, and a [`DecryptedShare`] (zeroizing, no `Debug`, no
//! `Clone`, value not readable outside the core) can only be fed back to
//! [`DomainKeySet::recover`]. Losing the sealed file therefore never means a new DK: the old one
//! comes back from M custodians.
//!
//! # Share file format (version 1)
//!
//! All integers big-endian.
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `EHSMSHR\0` |
//! | 2 | format version, 1 |
//! | 1 | scheme, 1 = RSA-OAEP-SHA256 (MGF1-SHA256, empty label) wrapping an AES-256-GCM key |
//! | 1 | share index i, 1..=N (the Shamir x coordinate) |
//! | 1 | threshold M, 1..=N |
//! | 1 | total N |
//! | 16 | backup id: random, the same for every share of one split |
//! | 8 | DK fingerprint: the public fingerprint of the current DK (as `ehsm` prints it) |
//! | 32 | custodian key id: SHA-256 of the custodian's `SubjectPublicKeyInfo` DER |
//! | 2 | length k of the wrapped key (the RSA modulus length, 384..=1024) |
//! | k | RSA-OAEP-SHA256 encryption of a fresh 32-byte AES-256 key |
//! | rest | AES-256-GCM of the share value: ciphertext ‖ IV (12) ‖ tag (16) |
//!
//! The GCM AAD is every byte before the GCM body (header and wrapped key), so no field can be
//! changed or moved to another share without the share failing to decrypt. A custodian can check
//! or open a share with standard tools: the wrapped key opens with
//! `openssl pkeyutl -decrypt -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256
//! -pkeyopt rsa_mgf1_md:sha256`.
//!
//! # The secret that is split
//!
//! `L ‖ SHA-256("ehsm v1 domain backup" ‖ backup id ‖ fingerprint ‖ L)`, where `L` is the key
//! list that sealing protects too (count ‖ (version ‖ DK)*). Shamir itself detects nothing: a
//! corrupted or foreign share interpolates to a different, wrong secret. The hash inside the
//! secret makes recovery check itself, so it either gives back exactly the DK set that was split
//! or fails; it never returns a wrong DK set.

use aws_lc_rs::digest::{Context, SHA256};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey,
};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::alg::aes_gcm::{AesGcmKey, IV_LEN, TAG_LEN};
use crate::alg::pem;
use crate::domain::{DomainKeySet, parse_key_list};
use crate::{Error, Result, shamir};

/// The magic at the start of every share file.
pub const SHARE_MAGIC: &[u8; 8] = b"EHSMSHR\0";
/// The share format version this core writes and reads.
const FORMAT_VERSION: u16 = 1;
/// RSA-OAEP-SHA256 wrapping an AES-256-GCM key: the only scheme so far.
const SCHEME_RSA_OAEP_AES_GCM: u8 = 1;
/// Length of a backup id.
pub const BACKUP_ID_LEN: usize = 16;
const FINGERPRINT_LEN: usize = 8;
const KEY_ID_LEN: usize = 32;
/// magic, version, scheme, index, threshold, total, backup id, fingerprint, key id, wrapped len.
const FIXED_HEADER_LEN: usize =
    8 + 2 + 1 + 1 + 1 + 1 + BACKUP_ID_LEN + FINGERPRINT_LEN + KEY_ID_LEN + 2;
/// Custodian keys: at least RSA-3072 (128-bit security, like the AES-256 DK deserves at least),
/// at most 8192 bits (AWS-LC's limit for these operations).
const MIN_RSA_BITS: usize = 3072;
const MAX_RSA_BITS: usize = 8192;
const HASH_LEN: usize = 32;
const INTEGRITY_LABEL: &[u8] = b"ehsm v1 domain backup";

/// A custodian's RSA public key, which one share is encrypted to.
pub struct CustodianKey {
    key: OaepPublicEncryptingKey,
    id: [u8; KEY_ID_LEN],
}

impl CustodianKey {
    /// Parses a PEM public key: `PUBLIC KEY` (X.509 SubjectPublicKeyInfo, what `openssl pkey
    /// -pubout` writes) or `RSA PUBLIC KEY` (PKCS#1). RSA only, 3072 to 8192 bits.
    pub fn from_pem(pem_text: &[u8]) -> Result<Self> {
        const NOT_RSA: Error = Error::InvalidInput("not a PEM RSA public key");
        let (label, der) = pem::decode(pem_text).ok_or(NOT_RSA)?;
        let spki = match label.as_str() {
            "PUBLIC KEY" => der.to_vec(),
            "RSA PUBLIC KEY" => pkcs1_public_to_spki(&der),
            _ => {
                return Err(Error::InvalidInput(
                    "a custodian key must be a PEM 'PUBLIC KEY' or 'RSA PUBLIC KEY'",
                ));
            }
        };
        let public = PublicEncryptingKey::from_der(&spki).map_err(|_| NOT_RSA)?;
        check_size(public.key_size_bits())?;
        let id = key_id(&public)?;
        let key = OaepPublicEncryptingKey::new(public).map_err(|_| NOT_RSA)?;
        Ok(Self { key, id })
    }

    /// SHA-256 of the key's SubjectPublicKeyInfo DER, hex: what share files name it by.
    pub fn key_id(&self) -> String {
        hex(&self.id)
    }
}

/// One encrypted share, as stored in a share file. Public data: it opens only with its
/// custodian's private key.
#[derive(Clone, Debug)]
pub struct EncryptedShare {
    bytes: Vec<u8>,
}

impl EncryptedShare {
    /// Parses a share file, checking its structure (not its authenticity: that needs the
    /// custodian's private key, in [`decrypt_share`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        const BAD: Error = Error::InvalidInput("not an ehsm domain-key share file");
        let fixed = bytes.get(..FIXED_HEADER_LEN).ok_or(BAD)?;
        if !fixed.starts_with(SHARE_MAGIC) {
            return Err(BAD);
        }
        if u16::from_be_bytes([fixed[8], fixed[9]]) != FORMAT_VERSION
            || fixed[10] != SCHEME_RSA_OAEP_AES_GCM
        {
            return Err(Error::InvalidInput(
                "unsupported share format version or scheme",
            ));
        }
        let share = Self {
            bytes: bytes.to_vec(),
        };
        let (index, threshold, total) = (share.index(), share.threshold(), share.total());
        if threshold == 0 || threshold > total || index == 0 || index > total {
            return Err(BAD);
        }
        let wrapped_len = share.wrapped_len();
        if !(MIN_RSA_BITS / 8..=MAX_RSA_BITS / 8).contains(&wrapped_len)
            || bytes.len() < FIXED_HEADER_LEN + wrapped_len + IV_LEN + TAG_LEN
        {
            return Err(BAD);
        }
        Ok(share)
    }

    /// The file's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The share index i (1..=N).
    pub fn index(&self) -> u8 {
        self.bytes[11]
    }

    /// How many shares recover the domain (M).
    pub fn threshold(&self) -> u8 {
        self.bytes[12]
    }

    /// How many shares the backup has (N).
    pub fn total(&self) -> u8 {
        self.bytes[13]
    }

    /// The backup id, hex: the same for every share of one split.
    pub fn backup_id(&self) -> String {
        hex(self.backup_id_bytes())
    }

    /// The fingerprint of the domain this share belongs to, as [`DomainKeySet::fingerprint`].
    pub fn fingerprint(&self) -> String {
        hex(self.fingerprint_bytes())
    }

    /// The id of the custodian key the share is encrypted to, as [`CustodianKey::key_id`].
    pub fn custodian_key_id(&self) -> String {
        hex(self.key_id_bytes())
    }

    fn backup_id_bytes(&self) -> &[u8] {
        &self.bytes[14..14 + BACKUP_ID_LEN]
    }

    fn fingerprint_bytes(&self) -> &[u8] {
        &self.bytes[30..30 + FINGERPRINT_LEN]
    }

    fn key_id_bytes(&self) -> &[u8] {
        &self.bytes[38..38 + KEY_ID_LEN]
    }

    fn wrapped_len(&self) -> usize {
        usize::from(u16::from_be_bytes([self.bytes[70], self.bytes[71]]))
    }

    /// (AAD = header ‖ wrapped key, wrapped key, GCM body). `from_bytes` checked the lengths.
    fn parts(&self) -> (&[u8], &[u8], &[u8]) {
        let (aad, body) = self.bytes.split_at(FIXED_HEADER_LEN + self.wrapped_len());
        (aad, &aad[FIXED_HEADER_LEN..], body)
    }
}

/// A share opened with its custodian's private key. Zeroized on drop; no `Debug`, no `Clone`,
/// and its value is readable only inside the core, by [`DomainKeySet::recover`].
pub struct DecryptedShare {
    index: u8,
    threshold: u8,
    total: u8,
    backup_id: [u8; BACKUP_ID_LEN],
    fingerprint: [u8; FINGERPRINT_LEN],
    value: Zeroizing<Vec<u8>>,
}

impl DecryptedShare {
    /// The share index i (1..=N).
    pub fn index(&self) -> u8 {
        self.index
    }

    /// How many shares recover the domain (M).
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// How many shares the backup has (N).
    pub fn total(&self) -> u8 {
        self.total
    }

    /// The backup id, hex.
    pub fn backup_id(&self) -> String {
        hex(&self.backup_id)
    }
}

/// Opens `share` with its custodian's private key, PEM `PRIVATE KEY` (PKCS#8, unencrypted) or
/// `RSA PRIVATE KEY` (PKCS#1). Fails if the key is not the one the share names, or if any byte
/// of the share was changed.
pub fn decrypt_share(
    share: &EncryptedShare,
    custodian_private_key_pem: &[u8],
) -> Result<DecryptedShare> {
    const NOT_RSA: Error = Error::InvalidInput(
        "not a PEM RSA private key (unencrypted 'PRIVATE KEY' or 'RSA PRIVATE KEY')",
    );
    let (label, der) = pem::decode(custodian_private_key_pem).ok_or(NOT_RSA)?;
    let pkcs8 = match label.as_str() {
        "PRIVATE KEY" => der,
        "RSA PRIVATE KEY" => pkcs1_private_to_pkcs8(&der),
        _ => return Err(NOT_RSA),
    };
    let private = PrivateDecryptingKey::from_pkcs8(&pkcs8).map_err(|_| NOT_RSA)?;
    if key_id(&private.public_key())?.as_slice() != share.key_id_bytes() {
        return Err(Error::InvalidInput(
            "this private key is not the custodian key the share is encrypted to",
        ));
    }
    let private = OaepPrivateDecryptingKey::new(private).map_err(|_| NOT_RSA)?;
    let (aad, wrapped, body) = share.parts();
    let mut aes_key = Zeroizing::new(vec![0u8; wrapped.len()]);
    let len = private
        .decrypt(&OAEP_SHA256_MGF1SHA256, wrapped, &mut aes_key, None)
        .map_err(|_| Error::DecryptionFailed)?
        .len();
    if len != 32 {
        return Err(Error::DecryptionFailed);
    }
    let value = AesGcmKey::new(&aes_key[..32])?.open(body, aad)?;
    let mut backup_id = [0u8; BACKUP_ID_LEN];
    backup_id.copy_from_slice(share.backup_id_bytes());
    let mut fingerprint = [0u8; FINGERPRINT_LEN];
    fingerprint.copy_from_slice(share.fingerprint_bytes());
    Ok(DecryptedShare {
        index: share.index(),
        threshold: share.threshold(),
        total: share.total(),
        backup_id,
        fingerprint,
        value: Zeroizing::new(value.as_slice().to_vec()),
    })
}

impl DomainKeySet {
    /// Splits this DK set into one share per custodian, any `threshold` of which recover it, each
    /// encrypted to its custodian's key (share i to `custodians[i - 1]`). Every call makes a new
    /// backup with its own random backup id.
    pub fn split_to_custodians(
        &self,
        threshold: u8,
        custodians: &[CustodianKey],
    ) -> Result<Vec<EncryptedShare>> {
        let total = u8::try_from(custodians.len())
            .map_err(|_| Error::InvalidInput("at most 255 custodians"))?;
        if threshold == 0 || threshold > total {
            return Err(Error::InvalidInput(
                "the threshold must be between 1 and the number of custodians",
            ));
        }
        // Two shares to one custodian would let fewer than M people recover the domain.
        for (i, c) in custodians.iter().enumerate() {
            if custodians[..i].iter().any(|other| other.id == c.id) {
                return Err(Error::InvalidInput("the same custodian key is given twice"));
            }
        }
        let backup_id = crate::rand::array::<BACKUP_ID_LEN>()?;
        let fingerprint = self.fingerprint_bytes();
        let mut secret = self.serialize();
        let hash = integrity_hash(&backup_id, &fingerprint, &secret);
        secret.extend_from_slice(&hash);
        let values = shamir::split(&secret, threshold, total)?;
        values
            .iter()
            .zip(custodians)
            .map(|((index, value), custodian)| {
                let mut out = Vec::with_capacity(FIXED_HEADER_LEN + 1024 + value.len() + 28);
                out.extend_from_slice(SHARE_MAGIC);
                out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
                out.extend_from_slice(&[SCHEME_RSA_OAEP_AES_GCM, *index, threshold, total]);
                out.extend_from_slice(&backup_id);
                out.extend_from_slice(&fingerprint);
                out.extend_from_slice(&custodian.id);
                let aes_key = Zeroizing::new(crate::rand::array::<32>()?);
                let mut wrapped = vec![0u8; custodian.key.ciphertext_size()];
                let wrapped = custodian
                    .key
                    .encrypt(
                        &OAEP_SHA256_MGF1SHA256,
                        aes_key.as_slice(),
                        &mut wrapped,
                        None,
                    )
                    .map_err(|_| Error::Backend("RSA-OAEP encryption failed"))?;
                let wrapped_len = u16::try_from(wrapped.len())
                    .map_err(|_| Error::Backend("RSA ciphertext too long"))?;
                out.extend_from_slice(&wrapped_len.to_be_bytes());
                out.extend_from_slice(wrapped);
                let aad = out.clone();
                AesGcmKey::new(aes_key.as_slice())?.seal(value, &aad, &mut out)?;
                Ok(EncryptedShare { bytes: out })
            })
            .collect()
    }

    /// Rebuilds the DK set from at least M decrypted shares of one backup. Refuses fewer than M
    /// shares, shares of different backups, repeated indexes, and — by the hash inside the
    /// secret — any share whose value is wrong: it returns the set that was split, or an error.
    pub fn recover(shares: &[DecryptedShare]) -> Result<DomainKeySet> {
        let first = shares
            .first()
            .ok_or(Error::InvalidInput("no shares given"))?;
        for s in shares {
            if s.backup_id != first.backup_id {
                return Err(Error::InvalidInput(
                    "the shares come from different backups",
                ));
            }
            // One backup id with different parameters: forged or damaged beyond what the AEAD
            // of one custodian can catch.
            if (s.threshold, s.total, s.fingerprint)
                != (first.threshold, first.total, first.fingerprint)
            {
                return Err(Error::IntegrityFailure(
                    "shares of one backup disagree on its threshold, size or domain",
                ));
            }
        }
        for (i, s) in shares.iter().enumerate() {
            if shares[..i].iter().any(|o| o.index == s.index) {
                return Err(Error::InvalidInput("two shares have the same index"));
            }
        }
        if shares.len() < usize::from(first.threshold) {
            return Err(Error::InvalidInput(
                "fewer shares than the backup's threshold",
            ));
        }
        let points: Vec<(u8, &[u8])> = shares
            .iter()
            .map(|s| (s.index, s.value.as_slice()))
            .collect();
        let secret = shamir::combine(&points)?;
        const CORRUPT: Error = Error::IntegrityFailure(
            "the recovered domain keys fail their integrity check: a share is corrupted or wrong",
        );
        let (list, hash) = secret.split_last_chunk::<HASH_LEN>().ok_or(CORRUPT)?;
        let want = integrity_hash(&first.backup_id, &first.fingerprint, list);
        if !bool::from(want.ct_eq(hash)) {
            return Err(CORRUPT);
        }
        let set = parse_key_list(list).map_err(|_| CORRUPT)?;
        if set.fingerprint_bytes() != first.fingerprint {
            return Err(CORRUPT);
        }
        Ok(set)
    }
}

fn integrity_hash(
    backup_id: &[u8; BACKUP_ID_LEN],
    fingerprint: &[u8; FINGERPRINT_LEN],
    list: &[u8],
) -> [u8; HASH_LEN] {
    let mut ctx = Context::new(&SHA256);
    ctx.update(INTEGRITY_LABEL);
    ctx.update(backup_id);
    ctx.update(fingerprint);
    ctx.update(list);
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn check_size(bits: usize) -> Result<()> {
    if (MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(Error::InvalidInput(
            "a custodian key must be an RSA key of 3072 to 8192 bits",
        ))
    }
}

fn key_id(public: &PublicEncryptingKey) -> Result<[u8; KEY_ID_LEN]> {
    let der =
        AsDer::as_der(public).map_err(|_| Error::Backend("RSA public key does not encode"))?;
    let mut out = [0u8; KEY_ID_LEN];
    out.copy_from_slice(aws_lc_rs::digest::digest(&SHA256, der.as_ref()).as_ref());
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `AlgorithmIdentifier { rsaEncryption, NULL }`.
const RSA_ALGORITHM_ID: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/// Wraps a PKCS#1 `RSAPublicKey` in a `SubjectPublicKeyInfo`, which is what aws-lc-rs parses.
fn pkcs1_public_to_spki(pkcs1: &[u8]) -> Vec<u8> {
    let mut bits = Vec::with_capacity(pkcs1.len() + 1);
    bits.push(0); // no unused bits
    bits.extend_from_slice(pkcs1);
    let mut inner = RSA_ALGORITHM_ID.to_vec();
    der_push(&mut inner, 0x03, &bits);
    let mut out = Vec::new();
    der_push(&mut out, 0x30, &inner);
    out
}

/// Wraps a PKCS#1 `RSAPrivateKey` in a PKCS#8 `PrivateKeyInfo`, in zeroizing buffers.
fn pkcs1_private_to_pkcs8(pkcs1: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut inner = Zeroizing::new(Vec::with_capacity(pkcs1.len() + 32));
    inner.extend_from_slice(&[0x02, 0x01, 0x00]); // version 0
    inner.extend_from_slice(RSA_ALGORITHM_ID);
    der_push(&mut inner, 0x04, pkcs1);
    let mut out = Zeroizing::new(Vec::with_capacity(inner.len() + 8));
    der_push(&mut out, 0x30, &inner);
    out
}

/// Appends a DER TLV. Lengths here are at most a few kilobytes (RSA keys up to 8192 bits).
fn der_push(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use proptest::prelude::*;

    use super::*;

    /// Five custodian key pairs (public PEM, private PEM), RSA-3072, made once: key generation
    /// is the slow part of these tests.
    fn custodians() -> &'static [(Vec<u8>, Vec<u8>)] {
        static KEYS: OnceLock<Vec<(Vec<u8>, Vec<u8>)>> = OnceLock::new();
        KEYS.get_or_init(|| {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..5)
                    .map(|_| {
                        s.spawn(|| {
                            let pkey = PKey::from_rsa(Rsa::generate(3072).unwrap()).unwrap();
                            (
                                pkey.public_key_to_pem().unwrap(),
                                pkey.private_key_to_pem_pkcs8().unwrap(),
                            )
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            })
        })
    }

    fn public_keys(n: usize) -> Vec<CustodianKey> {
        custodians()[..n]
            .iter()
            .map(|(public, _)| CustodianKey::from_pem(public).unwrap())
            .collect()
    }

    fn decrypt_all(shares: &[EncryptedShare]) -> Vec<DecryptedShare> {
        shares
            .iter()
            .map(|s| decrypt_share(s, &custodians()[usize::from(s.index()) - 1].1).unwrap())
            .collect()
    }

    fn pick(all: &[DecryptedShare], indexes: &[usize]) -> Vec<DecryptedShare> {
        indexes
            .iter()
            .map(|&i| {
                let s = &all[i];
                DecryptedShare {
                    index: s.index,
                    threshold: s.threshold,
                    total: s.total,
                    backup_id: s.backup_id,
                    fingerprint: s.fingerprint,
                    value: s.value.clone(),
                }
            })
            .collect()
    }

    fn same_set(a: &DomainKeySet, b: &DomainKeySet) -> bool {
        *a.serialize() == *b.serialize()
    }

    #[test]
    fn three_of_five_recovers_from_every_subset_of_three_or_more() {
        let set = DomainKeySet::generate().unwrap();
        let shares = set.split_to_custodians(3, &public_keys(5)).unwrap();
        assert_eq!(shares.len(), 5);
        for (i, s) in shares.iter().enumerate() {
            assert_eq!(usize::from(s.index()), i + 1);
            assert_eq!((s.threshold(), s.total()), (3, 5));
            assert_eq!(s.backup_id(), shares[0].backup_id());
            assert_eq!(s.fingerprint(), set.fingerprint());
            assert_eq!(s.custodian_key_id(), public_keys(5)[i].key_id());
            // Files round-trip.
            assert_eq!(
                EncryptedShare::from_bytes(s.as_bytes()).unwrap().as_bytes(),
                s.as_bytes()
            );
        }
        let all = decrypt_all(&shares);
        let mut subsets = 0;
        for mask in 0u32..32 {
            let chosen: Vec<usize> = (0..5).filter(|i| mask & (1 << i) != 0).collect();
            let result = DomainKeySet::recover(&pick(&all, &chosen));
            if chosen.len() >= 3 {
                let back = result.unwrap();
                assert!(same_set(&back, &set), "{chosen:?}");
                assert_eq!(back.fingerprint(), set.fingerprint());
                subsets += 1;
            } else {
                assert!(result.is_err(), "{chosen:?}");
            }
        }
        assert_eq!(subsets, 10 + 5 + 1);
    }

    #[test]
    fn two_of_three_needed_shares_are_refused() {
        let set = DomainKeySet::generate().unwrap();
        let all = decrypt_all(&set.split_to_custodians(3, &public_keys(5)).unwrap());
        let err = DomainKeySet::recover(&pick(&all, &[0, 4])).err().unwrap();
        assert_eq!(
            err,
            Error::InvalidInput("fewer shares than the backup's threshold")
        );
        assert!(DomainKeySet::recover(&[]).is_err());
    }

    #[test]
    fn one_of_one_and_five_of_five() {
        let set = DomainKeySet::generate().unwrap();
        let one = set.split_to_custodians(1, &public_keys(1)).unwrap();
        let back = DomainKeySet::recover(&decrypt_all(&one)).unwrap();
        assert!(same_set(&back, &set));

        let five = decrypt_all(&set.split_to_custodians(5, &public_keys(5)).unwrap());
        assert!(same_set(&DomainKeySet::recover(&five).unwrap(), &set));
        assert!(DomainKeySet::recover(&pick(&five, &[0, 1, 2, 3])).is_err());
    }

    #[test]
    fn bad_thresholds_and_custodian_lists_are_refused() {
        let set = DomainKeySet::generate().unwrap();
        assert!(set.split_to_custodians(0, &public_keys(3)).is_err());
        assert!(set.split_to_custodians(4, &public_keys(3)).is_err());
        assert!(set.split_to_custodians(1, &[]).is_err());
        let twice = vec![
            CustodianKey::from_pem(&custodians()[0].0).unwrap(),
            CustodianKey::from_pem(&custodians()[0].0).unwrap(),
        ];
        assert_eq!(
            set.split_to_custodians(1, &twice).err(),
            Some(Error::InvalidInput("the same custodian key is given twice"))
        );
    }

    #[test]
    fn every_flipped_bit_of_an_encrypted_share_is_refused() {
        let set = DomainKeySet::generate().unwrap();
        let shares = set.split_to_custodians(1, &public_keys(1)).unwrap();
        let bytes = shares[0].as_bytes();
        let private = &custodians()[0].1;
        // One bit in every byte (a different bit position byte to byte): every field of the
        // format is hit, and each try costs an RSA decryption.
        for bit in (0..bytes.len() * 8).step_by(9) {
            let mut bad = bytes.to_vec();
            bad[bit / 8] ^= 1 << (bit % 8);
            let opened = EncryptedShare::from_bytes(&bad).and_then(|s| decrypt_share(&s, private));
            assert!(opened.is_err(), "bit {bit}");
        }
        // Truncated files too.
        for len in 0..bytes.len() {
            let opened =
                EncryptedShare::from_bytes(&bytes[..len]).and_then(|s| decrypt_share(&s, private));
            assert!(opened.is_err(), "len {len}");
        }
    }

    #[test]
    fn a_flipped_bit_in_a_decrypted_share_fails_the_integrity_check() {
        let set = DomainKeySet::generate().unwrap();
        let all = decrypt_all(&set.split_to_custodians(3, &public_keys(5)).unwrap());
        let len = all[0].value.len();
        for bit in 0..len * 8 {
            let mut three = pick(&all, &[0, 2, 4]);
            three[1].value[bit / 8] ^= 1 << (bit % 8);
            let err = DomainKeySet::recover(&three).err();
            assert!(matches!(err, Some(Error::IntegrityFailure(_))), "bit {bit}");
        }
        // A corrupted share beyond the threshold is caught too.
        let mut four = pick(&all, &[0, 1, 2, 3]);
        four[3].value[0] ^= 1;
        assert!(DomainKeySet::recover(&four).is_err());
    }

    #[test]
    fn shares_of_different_backups_and_duplicate_indexes_are_refused() {
        let set = DomainKeySet::generate().unwrap();
        let a = decrypt_all(&set.split_to_custodians(2, &public_keys(3)).unwrap());
        let b = decrypt_all(&set.split_to_custodians(2, &public_keys(3)).unwrap());
        let mut mixed = pick(&a, &[0]);
        mixed.extend(pick(&b, &[1]));
        assert_eq!(
            DomainKeySet::recover(&mixed).err(),
            Some(Error::InvalidInput(
                "the shares come from different backups"
            ))
        );
        assert_eq!(
            DomainKeySet::recover(&pick(&a, &[1, 1])).err(),
            Some(Error::InvalidInput("two shares have the same index"))
        );
    }

    #[test]
    fn the_wrong_private_key_is_refused_by_name() {
        let set = DomainKeySet::generate().unwrap();
        let shares = set.split_to_custodians(2, &public_keys(2)).unwrap();
        assert_eq!(
            decrypt_share(&shares[0], &custodians()[1].1).err(),
            Some(Error::InvalidInput(
                "this private key is not the custodian key the share is encrypted to"
            ))
        );
        assert!(decrypt_share(&shares[0], b"not a key").is_err());
    }

    #[test]
    fn pkcs1_keys_work_and_small_or_non_rsa_keys_are_refused() {
        let rsa = Rsa::private_key_from_pem(&custodians()[0].1).unwrap();
        let pkcs1_public = rsa.public_key_to_pem_pkcs1().unwrap();
        let pkcs1_private = rsa.private_key_to_pem().unwrap();
        let key = CustodianKey::from_pem(&pkcs1_public).unwrap();
        assert_eq!(key.key_id(), public_keys(1)[0].key_id());
        let set = DomainKeySet::generate().unwrap();
        let shares = set.split_to_custodians(1, &[key]).unwrap();
        let back = DomainKeySet::recover(&[decrypt_share(&shares[0], &pkcs1_private).unwrap()]);
        assert!(same_set(&back.unwrap(), &set));

        let small = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        assert!(CustodianKey::from_pem(&small.public_key_to_pem().unwrap()).is_err());
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let ec = PKey::from_ec_key(ec).unwrap();
        assert!(CustodianKey::from_pem(&ec.public_key_to_pem().unwrap()).is_err());
        assert!(CustodianKey::from_pem(b"").is_err());
    }

    #[test]
    fn the_wrapped_key_opens_with_openssl() {
        // The format says custodians can open shares with standard tools: check that claim.
        let set = DomainKeySet::generate().unwrap();
        let share = &set.split_to_custodians(1, &public_keys(1)).unwrap()[0];
        let (_, wrapped, _) = share.parts();
        let pkey = PKey::private_key_from_pem(&custodians()[0].1).unwrap();
        let mut dec = openssl::encrypt::Decrypter::new(&pkey).unwrap();
        dec.set_rsa_padding(openssl::rsa::Padding::PKCS1_OAEP)
            .unwrap();
        dec.set_rsa_oaep_md(openssl::hash::MessageDigest::sha256())
            .unwrap();
        dec.set_rsa_mgf1_md(openssl::hash::MessageDigest::sha256())
            .unwrap();
        let mut out = vec![0u8; dec.decrypt_len(wrapped).unwrap()];
        assert_eq!(dec.decrypt(wrapped, &mut out).unwrap(), 32);
    }

    proptest! {
        #[test]
        fn arbitrary_share_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(share) = EncryptedShare::from_bytes(&bytes) {
                let _ = decrypt_share(&share, &custodians()[0].1);
            }
        }

        #[test]
        fn arbitrary_headers_on_a_real_share_never_panic(header in proptest::collection::vec(any::<u8>(), FIXED_HEADER_LEN)) {
            let set = DomainKeySet::generate().unwrap();
            let share = &set.split_to_custodians(1, &public_keys(1)).unwrap()[0];
            let mut bytes = share.as_bytes().to_vec();
            bytes[8..FIXED_HEADER_LEN].copy_from_slice(&header[8..]);
            if let Ok(share) = EncryptedShare::from_bytes(&bytes) {
                let _ = decrypt_share(&share, &custodians()[0].1);
            }
        }
    }
}
