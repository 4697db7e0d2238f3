//! The records the store keeps. Blobs are opaque ciphertext made by `ehsm-core`; the manual
//! `Debug` impls print their lengths only, to keep logs terse and never dump them.

use std::fmt;

/// An enrolled application.
#[derive(Clone, PartialEq, Eq)]
pub struct AppRecord {
    /// The application id (upstream `appid`, a UUID string).
    pub appid: String,
    /// The API key, wrapped by `ehsm-core` (opaque).
    pub apikey_blob: Vec<u8>,
    /// Enrollment time, milliseconds since the Unix epoch.
    pub created_at: i64,
}

impl fmt::Debug for AppRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppRecord")
            .field("appid", &self.appid)
            .field("apikey_blob", &BlobLen(self.apikey_blob.len()))
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// Whether a key may be used (upstream `keyState`: 1 enabled, 0 disabled).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Usable (stored as 1).
    Enabled,
    /// Refused for every cryptographic use (stored as 0).
    Disabled,
}

impl KeyState {
    pub(crate) const fn code(self) -> i64 {
        match self {
            Self::Enabled => 1,
            Self::Disabled => 0,
        }
    }

    pub(crate) const fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(Self::Enabled),
            0 => Some(Self::Disabled),
            _ => None,
        }
    }
}

/// A customer master key: public metadata plus every version's key material, wrapped by
/// `ehsm-core`.
#[derive(Clone, PartialEq, Eq)]
pub struct CmkRecord {
    /// The key id (upstream `keyid`, a UUID string). Unique across all apps.
    pub keyid: String,
    /// The owning application.
    pub appid: String,
    /// The keyspec name as given at creation, e.g. `EH_AES_GCM_256`.
    pub keyspec: String,
    /// The origin name, e.g. `EH_INTERNAL_KEY` or `EH_EXTERNAL_KEY`.
    pub origin: String,
    /// The key usage name, e.g. `EH_KEYUSAGE_ENCRYPT_DECRYPT`.
    pub keyusage: String,
    /// The version new ciphertexts, signatures and MACs use: the newest one.
    pub primary_version: u32,
    /// Enabled or disabled.
    pub state: KeyState,
    /// Creation time, ms since the Unix epoch.
    pub creation_date: i64,
    /// Expiry time, ms since the Unix epoch.
    pub expire_time: i64,
    /// Whether `ListKey`, `DeleteKey` and `DeleteAllKey` see this key. Internal keys made at
    /// enrollment are not listed (upstream keeps them outside the `cmk` partition).
    pub listed: bool,
    /// Pending BYOK import parameters, if `GetParametersForImport` was called and the import
    /// has not completed.
    pub import: Option<ImportParams>,
    /// What the app said the key is for, if anything.
    pub description: Option<String>,
    /// The automatic rotation interval in days. Kept while rotation is off.
    pub rotation_interval_days: Option<u32>,
    /// When the rotation job next rotates the key (ms); `Some` exactly while automatic
    /// rotation is on.
    pub next_rotation: Option<i64>,
    /// When the deletion job deletes the key (ms); `Some` while a deletion is scheduled.
    pub deletion_date: Option<i64>,
    /// Every version, oldest first: 1, 2, ... up to `primary_version`.
    pub versions: Vec<CmkVersion>,
}

impl fmt::Debug for CmkRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CmkRecord")
            .field("keyid", &self.keyid)
            .field("appid", &self.appid)
            .field("keyspec", &self.keyspec)
            .field("origin", &self.origin)
            .field("keyusage", &self.keyusage)
            .field("primary_version", &self.primary_version)
            .field("state", &self.state)
            .field("creation_date", &self.creation_date)
            .field("expire_time", &self.expire_time)
            .field("listed", &self.listed)
            .field("import", &self.import)
            .field("description", &self.description)
            .field("rotation_interval_days", &self.rotation_interval_days)
            .field("next_rotation", &self.next_rotation)
            .field("deletion_date", &self.deletion_date)
            .field("versions", &self.versions)
            .finish()
    }
}

impl CmkRecord {
    /// The primary version (the last one); `None` only for a record no store read returns.
    pub fn primary(&self) -> Option<&CmkVersion> {
        self.versions
            .last()
            .filter(|v| v.version == self.primary_version)
    }
}

/// One version of a key: its own blob, bound (by the blob's AAD) to its number.
#[derive(Clone, PartialEq, Eq)]
pub struct CmkVersion {
    /// The version number, from 1.
    pub version: u32,
    /// The wrapped key material (opaque; for an external key awaiting import, a blob of no
    /// material).
    pub blob: Vec<u8>,
    /// When the version was made, ms since the Unix epoch.
    pub creation_date: i64,
}

impl fmt::Debug for CmkVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CmkVersion")
            .field("version", &self.version)
            .field("blob", &BlobLen(self.blob.len()))
            .field("creation_date", &self.creation_date)
            .finish()
    }
}

/// The parameters of a pending BYOK import (upstream `sessionkeyBlob` and
/// `token_expired_time`).
#[derive(Clone, PartialEq, Eq)]
pub struct ImportParams {
    /// The wrapping keyspec name, e.g. `EH_RSA_3072`.
    pub wrapping_spec: String,
    /// The wrapping key pair, wrapped by `ehsm-core` (opaque). Also the identity of this set of
    /// parameters for [`Store::complete_import`](crate::Store::complete_import).
    pub wrapping_blob: Vec<u8>,
    /// When the import token expires, ms since the Unix epoch.
    pub expires_at: i64,
}

impl fmt::Debug for ImportParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportParams")
            .field("wrapping_spec", &self.wrapping_spec)
            .field("wrapping_blob", &BlobLen(self.wrapping_blob.len()))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// One request seen by the replay check (compatibility spec §3.3).
///
/// The store keeps a fingerprint of the request's (appid, timestamp, nonce), not the strings:
/// the service computes it with a keyed hash whose key every node reads from the settings, so
/// all nodes and restarts agree on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplayEntry {
    /// The keyed hash of the request's appid, timestamp and nonce.
    pub fingerprint: [u8; 16],
    /// Arrival time, ms since the Unix epoch.
    pub seen_at: i64,
}

impl ReplayEntry {
    /// The packed size: fingerprint, then the arrival time as a little-endian i64.
    pub(crate) const PACKED: usize = 24;

    pub(crate) fn pack(entries: &[ReplayEntry]) -> Vec<u8> {
        let mut out = Vec::with_capacity(entries.len() * Self::PACKED);
        for e in entries {
            out.extend_from_slice(&e.fingerprint);
            out.extend_from_slice(&e.seen_at.to_le_bytes());
        }
        out
    }

    /// The entries of a packed batch; `None` if its length is not a whole number of entries.
    pub(crate) fn unpack(packed: &[u8]) -> Option<impl Iterator<Item = ReplayEntry> + '_> {
        let (chunks, rest) = packed.as_chunks::<{ Self::PACKED }>();
        rest.is_empty().then(|| {
            chunks.iter().map(|c| {
                let (fingerprint, seen_at) = c.split_at(16);
                ReplayEntry {
                    fingerprint: fingerprint.try_into().unwrap_or_default(),
                    seen_at: i64::from_le_bytes(seen_at.try_into().unwrap_or_default()),
                }
            })
        })
    }
}

/// Prints `<N bytes>` in place of a blob.
struct BlobLen(usize);

impl fmt::Debug for BlobLen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_blob_lengths_not_bytes() {
        let key = CmkRecord {
            keyid: "k".into(),
            appid: "a".into(),
            keyspec: "EH_AES_GCM_256".into(),
            origin: "EH_INTERNAL_KEY".into(),
            keyusage: "EH_KEYUSAGE_ENCRYPT_DECRYPT".into(),
            primary_version: 1,
            state: KeyState::Enabled,
            creation_date: 1,
            expire_time: 2,
            listed: true,
            import: Some(ImportParams {
                wrapping_spec: "EH_RSA_3072".into(),
                wrapping_blob: vec![0xCD; 7],
                expires_at: 3,
            }),
            description: None,
            rotation_interval_days: None,
            next_rotation: None,
            deletion_date: None,
            versions: vec![CmkVersion {
                version: 1,
                blob: vec![0xAB; 48],
                creation_date: 1,
            }],
        };
        let text = format!("{key:?}");
        assert!(text.contains("blob: <48 bytes>"), "{text}");
        assert!(text.contains("wrapping_blob: <7 bytes>"), "{text}");
        assert!(!text.contains("171") && !text.contains("205"), "{text}");

        let app = AppRecord {
            appid: "a".into(),
            apikey_blob: vec![0xEF; 60],
            created_at: 1,
        };
        let text = format!("{app:?}");
        assert!(text.contains("apikey_blob: <60 bytes>"), "{text}");
        assert!(!text.contains("239"), "{text}");
    }

    #[test]
    fn key_state_codes_match_upstream() {
        assert_eq!(KeyState::Enabled.code(), 1);
        assert_eq!(KeyState::Disabled.code(), 0);
        assert_eq!(KeyState::from_code(1), Some(KeyState::Enabled));
        assert_eq!(KeyState::from_code(0), Some(KeyState::Disabled));
        assert_eq!(KeyState::from_code(2), None);
    }

    #[test]
    fn replay_entries_pack_and_unpack() {
        let entries = [
            ReplayEntry {
                fingerprint: [1; 16],
                seen_at: -5,
            },
            ReplayEntry {
                fingerprint: [0xff; 16],
                seen_at: i64::MAX,
            },
        ];
        let packed = ReplayEntry::pack(&entries);
        assert_eq!(packed.len(), 2 * ReplayEntry::PACKED);
        let back: Vec<_> = ReplayEntry::unpack(&packed).unwrap().collect();
        assert_eq!(back, entries);
        assert_eq!(ReplayEntry::unpack(&[]).unwrap().count(), 0);
        assert!(ReplayEntry::unpack(&packed[1..]).is_none());
    }
}
