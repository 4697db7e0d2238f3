//! Domain keys (DKs): the root of every key blob.
//!
//! A domain holds a *set* of 256-bit DK versions. Every blob names the version that wrapped it,
//! so a rotation can add a version, re-wrap blobs in the background and retire the old version
//! only once nothing uses it. The set is sealed to the platform's sealing key for storage; the
//! sealed form is authenticated, so a file sealed under another key, or tampered with, is
//! refused — never silently replaced by a new DK, which would orphan every key blob.

use ehsm_tee::SealingKey;
use zeroize::Zeroizing;

use crate::alg::aes_gcm::{AesGcmKey, IV_LEN, TAG_LEN};
use crate::alg::hmac::HmacKey;
use crate::kdf::{self, label};
use crate::{Error, Result};

/// Length of a domain key in bytes.
pub const DOMAIN_KEY_LEN: usize = 32;

/// The magic and format version at the start of a sealed domain-key file.
const SEALED_MAGIC: &[u8; 8] = b"EHSMDK\x00\x01";

/// The magic and format version at the start of the domain keys as one attested peer hands them
/// to another ([`DomainKeySet::to_transfer`]).
const TRANSFER_MAGIC: &[u8; 8] = b"EHSMDKT\x01";

/// One DK version and the keys derived from it. The raw DK stays here for sealing; operations
/// use only the derived keys.
struct DomainKey {
    version: u32,
    raw: Zeroizing<[u8; DOMAIN_KEY_LEN]>,
    blob_key: AesGcmKey,
    token_key: HmacKey,
    fingerprint: [u8; 32],
}

impl DomainKey {
    fn new(version: u32, raw: Zeroizing<[u8; DOMAIN_KEY_LEN]>) -> Result<Self> {
        let blob_key = AesGcmKey::new(kdf::derive(raw.as_slice(), label::KEY_BLOB)?.as_slice())?;
        let token_key = HmacKey::new(kdf::derive(raw.as_slice(), label::IMPORT_TOKEN)?.as_slice());
        let fingerprint = *kdf::derive(raw.as_slice(), label::FINGERPRINT)?;
        Ok(Self {
            version,
            raw,
            blob_key,
            token_key,
            fingerprint,
        })
    }
}

/// See [`DomainKeySet::succession`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Succession {
    /// The received set adds nothing: keep the held one.
    Keep,
    /// The received set holds the held one and more: replace it.
    Replace,
    /// The received set is of another domain: refuse it.
    Foreign,
}

/// The versioned set of domain keys a core holds. No `Debug`, no `Clone`: there is one copy.
pub struct DomainKeySet {
    /// Sorted by version, ascending; never empty.
    keys: Vec<DomainKey>,
}

impl DomainKeySet {
    /// Creates a new domain with a fresh random DK, version 1 (standalone mode, first start).
    pub fn generate() -> Result<Self> {
        let raw = Zeroizing::new(crate::rand::array::<DOMAIN_KEY_LEN>()?);
        Ok(Self {
            keys: vec![DomainKey::new(1, raw)?],
        })
    }

    /// The version that wraps new blobs: the newest one.
    pub fn current_version(&self) -> u32 {
        self.current().version
    }

    /// Every version held, ascending.
    pub fn versions(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.iter().map(|k| k.version)
    }

    /// Rotation: adds a fresh random DK as the next version, which wraps new blobs from now on,
    /// and returns that version. Every older version stays, so every existing blob still opens.
    pub fn rotate(&mut self) -> Result<u32> {
        let version = self
            .current_version()
            .checked_add(1)
            .ok_or(Error::InvalidInput("no domain-key version is left"))?;
        let raw = Zeroizing::new(crate::rand::array::<DOMAIN_KEY_LEN>()?);
        self.keys.push(DomainKey::new(version, raw)?);
        Ok(version)
    }

    /// What a holder of this set should do with `received`, a set from its key server: take it
    /// if it adds versions, keep its own if `received` adds nothing (the same set, or an older
    /// one from a key server that has not learned a rotation yet), and refuse a set of another
    /// domain (a key server pointed at the wrong data, or recreated), which would make every
    /// blob unreadable.
    pub fn succession(&self, received: &DomainKeySet) -> Succession {
        if self.extends(received) {
            Succession::Keep
        } else if received.extends(self) {
            Succession::Replace
        } else {
            Succession::Foreign
        }
    }

    /// Whether this set holds every version of `older` with the same key.
    pub fn extends(&self, older: &DomainKeySet) -> bool {
        older.keys.iter().all(|old| {
            self.get(old.version)
                .is_ok_and(|new| new.fingerprint == old.fingerprint)
        })
    }

    /// The domain keys as an attested peer hands them to another: the plaintext keys, for
    /// sending only inside an RA-TLS channel to a peer whose evidence a policy accepted. Layout:
    /// `EHSMDKT\x01` ‖ the key list of [`DomainKeySet::seal`]. [`DomainKeySet::from_transfer`]
    /// reads it.
    pub fn to_transfer(&self) -> Zeroizing<Vec<u8>> {
        let list = self.serialize();
        let mut out = Zeroizing::new(Vec::with_capacity(TRANSFER_MAGIC.len() + list.len()));
        out.extend_from_slice(TRANSFER_MAGIC);
        out.extend_from_slice(&list);
        out
    }

    /// Reads domain keys written by [`DomainKeySet::to_transfer`]; anything else is refused with
    /// [`Error::IntegrityFailure`].
    pub fn from_transfer(bytes: &[u8]) -> Result<Self> {
        let list = bytes
            .strip_prefix(TRANSFER_MAGIC.as_slice())
            .ok_or(Error::IntegrityFailure(
                "not ehsm domain keys in transfer form (bad magic)",
            ))?;
        parse_key_list(list)
    }

    /// A public fingerprint of the current DK: 16 hex characters derived one-way from it. Nodes
    /// of one domain show the same fingerprint; operators compare them, and logs may show it.
    pub fn fingerprint(&self) -> String {
        self.current().fingerprint[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn current(&self) -> &DomainKey {
        // `keys` is never empty: every constructor puts at least one key in, and nothing removes.
        &self.keys[self.keys.len() - 1]
    }

    pub(crate) fn blob_key(&self, version: u32) -> Result<&AesGcmKey> {
        self.get(version).map(|k| &k.blob_key)
    }

    pub(crate) fn current_blob_key(&self) -> (u32, &AesGcmKey) {
        let k = self.current();
        (k.version, &k.blob_key)
    }

    pub(crate) fn token_key(&self, version: u32) -> Result<&HmacKey> {
        self.get(version).map(|k| &k.token_key)
    }

    fn get(&self, version: u32) -> Result<&DomainKey> {
        self.keys
            .binary_search_by_key(&version, |k| k.version)
            .map(|i| &self.keys[i])
            .map_err(|_| Error::UnknownDomainKey(version))
    }

    /// Seals the set for storage under `sealing_key`.
    ///
    /// Layout: magic (8) ‖ IV (12) ‖ AES-256-GCM(ciphertext ‖ tag) with the magic as AAD, where
    /// the plaintext is count (u32 BE) ‖ count × (version u32 BE ‖ DK 32 bytes). The AES key is
    /// derived from the sealing key with its own HKDF label.
    pub fn seal(&self, sealing_key: &SealingKey) -> Result<Vec<u8>> {
        let wrap = sealing_wrap_key(sealing_key)?;
        let plain = self.serialize();
        let mut body = Vec::with_capacity(plain.len() + IV_LEN + TAG_LEN);
        wrap.seal(&plain, SEALED_MAGIC, &mut body)?;
        let mut out = Vec::with_capacity(SEALED_MAGIC.len() + body.len());
        out.extend_from_slice(SEALED_MAGIC);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The plaintext key list: count (u32 BE) ‖ count × (version u32 BE ‖ DK 32 bytes). Sealing
    /// and backup ([`crate::backup`]) protect this same encoding; [`parse_key_list`] reads it.
    pub(crate) fn serialize(&self) -> Zeroizing<Vec<u8>> {
        let mut plain = Zeroizing::new(Vec::with_capacity(4 + self.keys.len() * 36));
        plain.extend_from_slice(&(self.keys.len() as u32).to_be_bytes());
        for k in &self.keys {
            plain.extend_from_slice(&k.version.to_be_bytes());
            plain.extend_from_slice(k.raw.as_slice());
        }
        plain
    }

    /// The bytes behind [`Self::fingerprint`]: public, and stored in backup shares so that a
    /// recovery can be checked against the domain it should give back.
    pub(crate) fn fingerprint_bytes(&self) -> [u8; 8] {
        let mut out = [0u8; 8];
        out.copy_from_slice(&self.current().fingerprint[..8]);
        out
    }

    /// Unseals a set written by [`DomainKeySet::seal`]. A file from another sealing key, a
    /// tampered file or a file in an unknown format is refused with
    /// [`Error::IntegrityFailure`].
    pub fn unseal(sealed: &[u8], sealing_key: &SealingKey) -> Result<Self> {
        let body = sealed
            .strip_prefix(SEALED_MAGIC.as_slice())
            .ok_or(Error::IntegrityFailure(
                "not a sealed ehsm domain-key file (bad magic)",
            ))?;
        let plain = sealing_wrap_key(sealing_key)?.open(body, SEALED_MAGIC).map_err(|_| {
            Error::IntegrityFailure(
                "sealed domain keys do not open: sealed by another platform key, or tampered with",
            )
        })?;
        parse_key_list(plain.as_slice())
    }
}

fn sealing_wrap_key(sealing_key: &SealingKey) -> Result<AesGcmKey> {
    AesGcmKey::new(kdf::derive(sealing_key.expose(), label::SEAL_DOMAIN_KEYS)?.as_slice())
}

pub(crate) fn parse_key_list(plain: &[u8]) -> Result<DomainKeySet> {
    const BAD: Error = Error::IntegrityFailure("sealed domain keys are malformed");
    let (count, mut rest) = plain.split_first_chunk::<4>().ok_or(BAD)?;
    let count = u32::from_be_bytes(*count) as usize;
    if count == 0 || rest.len() != count * (4 + DOMAIN_KEY_LEN) {
        return Err(BAD);
    }
    let mut keys: Vec<DomainKey> = Vec::with_capacity(count);
    while let Some((version, tail)) = rest.split_first_chunk::<4>() {
        let (raw, tail) = tail.split_first_chunk::<DOMAIN_KEY_LEN>().ok_or(BAD)?;
        let version = u32::from_be_bytes(*version);
        // Strictly ascending versions: no duplicates, and binary search stays valid.
        if keys.last().is_some_and(|k| k.version >= version) {
            return Err(BAD);
        }
        keys.push(DomainKey::new(version, Zeroizing::new(*raw))?);
        rest = tail;
    }
    Ok(DomainKeySet { keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealing_key(byte: u8) -> SealingKey {
        SealingKey::from_bytes([byte; 32])
    }

    #[test]
    fn seal_unseal_round_trip_keeps_versions_and_keys() {
        let set = DomainKeySet::generate().unwrap();
        let sealed = set.seal(&sealing_key(1)).unwrap();
        let back = DomainKeySet::unseal(&sealed, &sealing_key(1)).unwrap();
        assert_eq!(back.versions().collect::<Vec<_>>(), vec![1]);
        assert_eq!(*back.keys[0].raw, *set.keys[0].raw);
        assert_eq!(back.fingerprint(), set.fingerprint());
        assert_eq!(set.fingerprint().len(), 16);
        assert_ne!(
            DomainKeySet::generate().unwrap().fingerprint(),
            set.fingerprint()
        );
    }

    #[test]
    fn another_sealing_key_is_refused() {
        let sealed = DomainKeySet::generate()
            .unwrap()
            .seal(&sealing_key(1))
            .unwrap();
        let err = DomainKeySet::unseal(&sealed, &sealing_key(2))
            .err()
            .unwrap();
        assert!(matches!(err, Error::IntegrityFailure(_)));
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let sealed = DomainKeySet::generate()
            .unwrap()
            .seal(&sealing_key(1))
            .unwrap();
        for i in 0..sealed.len() * 8 {
            let mut bad = sealed.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(
                DomainKeySet::unseal(&bad, &sealing_key(1)).is_err(),
                "bit {i}"
            );
        }
    }

    #[test]
    fn truncated_and_empty_files_are_refused() {
        let sealed = DomainKeySet::generate()
            .unwrap()
            .seal(&sealing_key(1))
            .unwrap();
        for len in 0..sealed.len() {
            assert!(
                DomainKeySet::unseal(&sealed[..len], &sealing_key(1)).is_err(),
                "len {len}"
            );
        }
    }

    #[test]
    fn malformed_key_lists_are_refused() {
        assert!(parse_key_list(&[]).is_err());
        assert!(parse_key_list(&0u32.to_be_bytes()).is_err());
        let mut two = 2u32.to_be_bytes().to_vec();
        for v in [2u32, 1] {
            two.extend_from_slice(&v.to_be_bytes());
            two.extend_from_slice(&[9u8; 32]);
        }
        assert!(parse_key_list(&two).is_err(), "descending versions");
        assert!(parse_key_list(&two[..two.len() - 1]).is_err(), "short");
    }

    #[test]
    fn rotation_adds_a_version_and_keeps_the_old_ones() {
        let mut set = DomainKeySet::generate().unwrap();
        let before = set.to_transfer();
        let old = DomainKeySet::from_transfer(&before).unwrap();
        assert_eq!(set.rotate().unwrap(), 2);
        assert_eq!(set.rotate().unwrap(), 3);
        assert_eq!(set.versions().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(set.current_version(), 3);
        assert_eq!(*set.keys[0].raw, *old.keys[0].raw);
        assert_ne!(*set.keys[1].raw, *set.keys[0].raw);
        assert_ne!(set.fingerprint(), old.fingerprint());
        assert!(set.extends(&old));
        assert!(!old.extends(&set));
        assert!(set.extends(&set));
    }

    #[test]
    fn another_domain_is_not_an_extension() {
        let a = DomainKeySet::generate().unwrap();
        let mut b = DomainKeySet::generate().unwrap();
        b.rotate().unwrap();
        assert!(!b.extends(&a), "same version numbers, other keys");
    }

    #[test]
    fn transfer_round_trip_and_refusals() {
        let mut set = DomainKeySet::generate().unwrap();
        set.rotate().unwrap();
        let bytes = set.to_transfer();
        let back = DomainKeySet::from_transfer(&bytes).unwrap();
        assert_eq!(*back.serialize(), *set.serialize());
        assert!(back.extends(&set) && set.extends(&back));
        // The sealed form, the bare key list, truncations and extra bytes are all refused.
        assert!(DomainKeySet::from_transfer(&set.seal(&sealing_key(1)).unwrap()).is_err());
        assert!(DomainKeySet::from_transfer(&set.serialize()).is_err());
        for len in 0..bytes.len() {
            assert!(
                DomainKeySet::from_transfer(&bytes[..len]).is_err(),
                "len {len}"
            );
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(DomainKeySet::from_transfer(&longer).is_err());
    }

    #[test]
    fn unknown_version_is_reported() {
        let set = DomainKeySet::generate().unwrap();
        assert!(matches!(
            set.blob_key(7).err(),
            Some(Error::UnknownDomainKey(7))
        ));
    }
}
