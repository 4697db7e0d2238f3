//! [`Core`]: every key operation of the eHSM API, over opaque blobs.
//!
//! Each operation takes the key's context and blob as the store holds them, loads the key (from
//! the cache, or by unwrapping the blob), checks that the key may do the operation (spec §6.1,
//! §6.2) and runs it. Key operations also take the [`MacVerified`] of the request and refuse keys
//! of any other app.

use std::sync::{Arc, PoisonError, RwLock};

use crate::alg::rsa::RsaKey;
use crate::apikey::{self, ApiKey, LoadedApiKey, MacVerified};
use crate::blob::{self, KeyBlob, KeyContext, Purpose};
use crate::cache::{CacheStats, DEFAULT_CAPACITY, KeyCache};
use crate::ciphertext;
use crate::domain::{DomainKeySet, Succession};
use crate::family::{Family, HasFamily as _};
use crate::import::{self, ImportParams};
use crate::key::LoadedKey;
use crate::sigv4::SigV4Scope;
use crate::spec::{DigestMode, KeySpec, KeyUsage, MessageType, Origin, PaddingMode};
use crate::{Error, Result, SecretBytes};

/// Upstream's `EH_ENCRYPT_MAX_SIZE`: the largest Encrypt plaintext (spec §6.10).
pub const MAX_PLAINTEXT_LEN: usize = 6 * 1024;
/// The largest data key GenerateDataKey makes (spec §6.4).
pub const MAX_DATA_KEY_LEN: usize = 1024;

/// A generated data key: the plaintext for the caller and its ciphertext under the CMK.
pub struct DataKey {
    /// The data key itself.
    pub plaintext: SecretBytes,
    /// The data key encrypted under the CMK; Decrypt with the same aad returns it.
    pub ciphertext: Vec<u8>,
}

/// The trusted core: the domain keys and the cache of loaded keys.
pub struct Core {
    /// Replaced whole (never changed in place) when the key server hands out a new version, so
    /// an operation works on one consistent set; the lock is held only to clone the `Arc`.
    dks: RwLock<Arc<DomainKeySet>>,
    cache: KeyCache,
}

/// What [`Core::update_domain_keys`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainUpdate {
    /// The set holds nothing new.
    Unchanged,
    /// The set added these versions; the newest now wraps new blobs.
    Added(Vec<u32>),
}

impl Core {
    /// Starts a core over `dks` with the default cache size. Runs the known-answer self-tests of
    /// every algorithm first and refuses to start if any fails.
    pub fn new(dks: DomainKeySet) -> Result<Self> {
        Self::with_cache_capacity(dks, DEFAULT_CAPACITY)
    }

    /// As [`Core::new`], holding at most `capacity` loaded keys.
    pub fn with_cache_capacity(dks: DomainKeySet, capacity: usize) -> Result<Self> {
        crate::selftest::run()?;
        Ok(Self {
            dks: RwLock::new(Arc::new(dks)),
            cache: KeyCache::new(capacity),
        })
    }

    /// The domain keys now in use.
    fn dks(&self) -> Arc<DomainKeySet> {
        // A panic while the lock was held cannot leave the `Arc` half-written: keep going.
        Arc::clone(&self.dks.read().unwrap_or_else(PoisonError::into_inner))
    }

    // ---- domain keys ------------------------------------------------------------------------

    /// The version of the domain key that wraps new blobs.
    pub fn domain_key_version(&self) -> u32 {
        self.dks().current_version()
    }

    /// The public fingerprint of the current domain key (see [`DomainKeySet::fingerprint`]).
    pub fn domain_fingerprint(&self) -> String {
        self.dks().fingerprint()
    }

    /// Takes a newer set of domain keys (a rotation, learned from the key server). A set that
    /// holds every version this core holds, with the same keys, replaces it; an older set of the
    /// same domain (from a key server that has not learned the rotation yet) changes nothing; a
    /// set of another domain is refused with [`Error::IntegrityFailure`] and changes nothing,
    /// since adopting it would make every stored blob unreadable.
    pub fn update_domain_keys(&self, new: DomainKeySet) -> Result<DomainUpdate> {
        let mut current = self.dks.write().unwrap_or_else(PoisonError::into_inner);
        match current.succession(&new) {
            Succession::Keep => Ok(DomainUpdate::Unchanged),
            Succession::Foreign => Err(Error::IntegrityFailure(
                "the new domain keys do not hold this node's: they belong to another domain",
            )),
            Succession::Replace => {
                let added = new
                    .versions()
                    .filter(|v| current.blob_key(*v).is_err())
                    .collect();
                *current = Arc::new(new);
                Ok(DomainUpdate::Added(added))
            }
        }
    }

    /// After a rotation: the CMK blob re-wrapped under the current domain key, or `None` if it
    /// already is. The material and the context stay the same, so the key works as before.
    pub fn rewrap_cmk(&self, ctx: &KeyContext<'_>, blob: &KeyBlob) -> Result<Option<KeyBlob>> {
        self.rewrap(Purpose::Cmk, ctx, blob)
    }

    /// After a rotation: an app's API-key blob re-wrapped under the current domain key, or
    /// `None` if it already is.
    pub fn rewrap_api_key(&self, appid: &str, blob: &KeyBlob) -> Result<Option<KeyBlob>> {
        self.rewrap(Purpose::ApiKey, &apikey::context(appid), blob)
    }

    fn rewrap(
        &self,
        purpose: Purpose,
        ctx: &KeyContext<'_>,
        blob: &KeyBlob,
    ) -> Result<Option<KeyBlob>> {
        let dks = self.dks();
        if blob.domain_key_version() == Some(dks.current_version()) {
            return Ok(None);
        }
        let material = blob::unwrap(&dks, purpose, ctx, blob)?;
        blob::wrap(&dks, purpose, ctx, material.as_slice()).map(Some)
    }

    /// Key-cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    // ---- keys ------------------------------------------------------------------------------

    /// CreateKey: generates the material for `ctx` (spec §6.1) and returns its blob. An external
    /// key gets an empty blob that BYOK fills later.
    pub fn create_key(&self, ctx: &KeyContext<'_>) -> Result<KeyBlob> {
        if ctx.origin == Origin::External {
            return blob::wrap(&self.dks(), Purpose::Cmk, ctx, &[]);
        }
        let allowed = match ctx.spec.family() {
            Family::AesGcm | Family::Sm4 => ctx.usage == KeyUsage::EncryptDecrypt,
            Family::Hmac => ctx.usage == KeyUsage::SignVerify,
            Family::Rsa | Family::Ec | Family::Sm2 => true,
        };
        if !allowed {
            return Err(Error::NotPermitted(
                "this key spec does not support this key usage",
            ));
        }
        let (key, material) = LoadedKey::generate(ctx.spec)?;
        let blob = blob::wrap(&self.dks(), Purpose::Cmk, ctx, material.as_slice())?;
        self.cache.insert(Purpose::Cmk, ctx, &blob, Arc::new(key));
        Ok(blob)
    }

    /// Loads a CMK for an operation of `auth`'s app.
    fn load(
        &self,
        auth: &MacVerified<'_>,
        ctx: &KeyContext<'_>,
        blob: &KeyBlob,
    ) -> Result<Arc<LoadedKey>> {
        if auth.appid() != ctx.appid {
            // The service looked up a key of another app: never use it.
            return Err(Error::NotPermitted("key belongs to another app"));
        }
        self.load_purpose(Purpose::Cmk, ctx, blob)
    }

    fn load_purpose(
        &self,
        purpose: Purpose,
        ctx: &KeyContext<'_>,
        blob: &KeyBlob,
    ) -> Result<Arc<LoadedKey>> {
        if let Some(key) = self.cache.get(purpose, ctx, blob) {
            return Ok(key);
        }
        let material = blob::unwrap(&self.dks(), purpose, ctx, blob)?;
        let key = Arc::new(match purpose {
            // An API key is the secret of two MACs (eHSM's and SigV4's), not a key of its spec.
            Purpose::ApiKey => LoadedKey::ApiKey(LoadedApiKey::from_material(material.as_slice())?),
            Purpose::Cmk | Purpose::ImportWrapping => {
                LoadedKey::from_material(ctx.spec, material.as_slice())?
            }
        });
        self.cache.insert(purpose, ctx, blob, Arc::clone(&key));
        Ok(key)
    }

    // ---- symmetric --------------------------------------------------------------------------

    /// Encrypt: AES-GCM or SM4 under a CMK (internal or imported) with usage ENCRYPT_DECRYPT.
    pub fn encrypt(
        &self,
        auth: &MacVerified<'_>,
        ctx: &KeyContext<'_>,
        blob: &KeyBlob,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(Error::InvalidInput("plaintext must be 1 to 6144 bytes"));
        }
        let key = self.load(auth, ctx, blob)?;
        symmetric_encrypt(&key, ctx, plaintext, aad)
    }

    /// Decrypt: reverses [`Core::encrypt`] and [`Core::generate_data_key`].
    pub fn decrypt(
        &self,
        auth: &MacVerified<'_>,
        ctx: &KeyContext<'_>,
        blob: &KeyBlob,
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<SecretBytes> {
        let key = self.load(auth, ctx, blob)?;
        symmetric_decrypt(&key, ctx, ciphertext, aad)
    }

    /// ReEncrypt: decrypts `ciphertext` under the source key version `ctx` and encrypts the
    /// plaintext under the destination key version `dest_ctx` with `dest_aad`, without the
    /// plaintext ever leaving the core. Both keys must be the app's symmetric keys; they may be
    /// the same key (moving a ciphertext to its primary version).
    #[allow(clippy::too_many_arguments)]
    pub fn reencrypt(
        &self,
        auth: &MacVerified<'_>,
        ctx: &KeyContext<'_>,
        blob: &KeyBlob,
        ciphertext: &[u8],
        aad: &[u8],
        dest_ctx: &KeyContext<'_>,
        dest_blob: &KeyBlob,
        dest_aad: &[u8],
    ) -> Result<Vec<u8>> {
        let key = self.load(auth, ctx, blob)?;
        let dest = self.load(auth, dest_ctx, dest_blob)?;
        // Checked before decrypting: a destination that cannot encrypt must not cost a
        // decryption (nor turn one into an oracle).
        check_symmetric(dest_ctx)?;
        let plaintext = symmetric_decrypt(&key, ctx, ciphertext, aad)?;
        symmetric_encrypt(&dest, dest_ctx, plaintext.as_slice(), dest_aad)
    }

    /// GenerateDataKey: `len` random bytes (1..=1024) and their ciphertext under an internal CMK.
    pub fn generate_data_key(
        &self,
        auth: &MacVerified<'_>,
        ctx: &KeyContext<'_>,
        blob: &KeyBlob,
        len: usize,
        aad: &[u8],
    ) -> Result<DataKey> {
        if len == 0 || len > MAX_DATA_KEY_LEN {
            return Err(Error::InvalidInput(
                "data key length must be 1 to 1024 bytes",
            ));
        }
        if ctx.origin != Origin::Internal {
            return Err(Error::NotPermitted(
                "data keys need a CMK generated by ehsm",
            ));
        }
        let key = self.load(auth, ctx, blob)?;
        let plaintext = SecretBytes::random(len)?;
        let ciphertext = symmetric_encrypt(&key, ctx, plaintext.as_slice(), aad)?;
        Ok(DataKey {
            plaintext,
            ciphertext,
        })
    }

    /// GenerateRandom (the AWS API's): `len` random bytes (1..=1024, as a data key) from the
    /// core's CSPRNG, tied to no key.
    pub fn generate_random(&self, len: usize) -> Result<SecretBytes> {
        if len == 0 || len > MAX_DATA_KEY_LEN {
            return Err(Error::InvalidInput("random byte count must be 1 to 1024"));
        }
        SecretBytes::random(len)
    }

    /// ExportDataKey: decrypts `data_key_ciphertext` under the symmetric CMK and re-encrypts
    /// the data key to the public key of `ukey` (RSA: always OAEP-SHA256; SM2: SM2 encryption),
    /// as upstream does (spec §6.8).
    #[allow(clippy::too_many_arguments)]
    pub fn export_data_key(
        &self,
        auth: &MacVerified<'_>,
        ctx: &KeyContext<'_>,
        blob: &KeyBlob,
        ukey_ctx: &KeyContext<'_>,
        ukey_blob: &KeyBlob,
        data_key_ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        if ctx.origin != Origin::Internal {
            return Err(Error::NotPermitted(
                "data keys need a CMK generated by ehsm",
            ));
        }
        check_public_key_encryption(ukey_ctx)?;
        let key = self.load(auth, ctx, blob)?;
        let ukey = self.load(auth, ukey_ctx, ukey_blob)?;
        let data_key = symmetric_decrypt(&key, ctx, data_key_ciphertext, aad)?;
        match &*ukey {
            LoadedKey::Rsa(k) => k.encrypt(PaddingMode::RsaPkcs1Oaep, data_key.as_slice()),
            LoadedKey::Sm2(k) => k.encrypt(data_key.as_slice()),
            _ => Err(Error::NotPermitted(
                "export needs an RSA or SM2 encryption key",
            )),
        }
    }

    // ---- asymmetric -------------------------------------------------------------------------

    /// AsymmetricEncrypt: RSA (PKCS#1 v1.5 or OAEP-SHA256) or SM2 (padding ignored).
    pub fn asymmetric_encrypt(
        &self,
        auth: &MacVerified<'_>,
        ctx: &KeyContext<'_>,
        blob: &KeyBlob,
        padding: PaddingMode,
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        check_public_key_encryption(ctx)?;
        match &*self.load(auth, ctx, blob)? {
            LoadedKey::Rsa(k) => k.encrypt(padding, plaintext),
            LoadedKey::Sm2(k) => k.encrypt(plaintext),
            _ => Err(Error::NotPermitted("key has no material")),
        }
    }

    /// AsymmetricDecrypt: reverses [`Core::asymmetric_encrypt`]; RSA padding must match.
    pub fn asymmetric_decrypt(
        &self,
        auth: &MacVerified<'_>,
        ctx: &KeyContext<'_>,
        blob: &KeyBlob,
        padding: PaddingMode,
        ciphertext: &[u8],
    ) -> Result<SecretBytes> {
        check_public_key_encryption(ctx)?;
        match &*self.load(auth, ctx, blob)? {
            LoadedKey::Rsa(k) => k.decrypt(padding, ciphertext),
            LoadedKey::Sm2(k) => k.decrypt(ciphertext),
            _ => Err(Error::NotPermitted("key has no material")),
        }
    }

    /// Sign: RSA (PKCS#1 v1.5 or PSS), ECDSA (DER; padding ignored) or SM2 (DER; always SM3 with
    /// ID 1234567812345678, and a "digest" is signed as a message, as upstream does).
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        &self,
        auth: &MacVerified<'_>,
        ctx: &KeyContext<'_>,
        blob: &KeyBlob,
        digest: DigestMode,
        padding: PaddingMode,
        kind: MessageType,
        message: &[u8],
    ) -> Result<Vec<u8>> {
        check_signing(ctx)?;
        match &*self.load(auth, ctx, blob)? {
            LoadedKey::Rsa(k) => k.sign(padding, digest, kind, message),
            LoadedKey::Ec(k) => k.sign(digest, kind, message),
            LoadedKey::Sm2(k) => k.sign(message),
            _ => Err(Error::NotPermitted("key has no material")),
        }
    }

    /// Verify: `Ok(false)` for a signature that does not verify.
    #[allow(clippy::too_many_arguments)]
    pub fn verify(
        &self,
        auth: &MacVerified<'_>,
        ctx: &KeyContext<'_>,
        blob: &KeyBlob,
        digest: DigestMode,
        padding: PaddingMode,
        kind: MessageType,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool> {
        check_signing(ctx)?;
        match &*self.load(auth, ctx, blob)? {
            LoadedKey::Rsa(k) => k.verify(padding, digest, kind, message, signature),
            LoadedKey::Ec(k) => k.verify(digest, kind, message, signature),
            LoadedKey::Sm2(k) => k.verify(digest, message, signature),
            _ => Err(Error::NotPermitted("key has no material")),
        }
    }

    /// GetPublicKey: PEM (PKCS#1 `RSA PUBLIC KEY` for RSA, SPKI `PUBLIC KEY` for EC and SM2).
    pub fn public_key_pem(
        &self,
        auth: &MacVerified<'_>,
        ctx: &KeyContext<'_>,
        blob: &KeyBlob,
    ) -> Result<String> {
        if !ctx.spec.is_asymmetric() {
            return Err(Error::NotPermitted(
                "only RSA, EC and SM2 keys have a public key",
            ));
        }
        match &*self.load(auth, ctx, blob)? {
            LoadedKey::Rsa(k) => Ok(k.public_key_pem()),
            LoadedKey::Ec(k) => Ok(k.public_key_pem()),
            LoadedKey::Sm2(k) => Ok(k.public_key_pem()),
            _ => Err(Error::NotPermitted("key has no material")),
        }
    }

    // ---- HMAC keys (an extension: upstream declared EH_HMAC but never built it) --------------

    /// GenerateMac: HMAC-SHA256 of `message` under an `EH_HMAC` key.
    pub fn generate_mac(
        &self,
        auth: &MacVerified<'_>,
        ctx: &KeyContext<'_>,
        blob: &KeyBlob,
        message: &[u8],
    ) -> Result<[u8; 32]> {
        check_mac(ctx)?;
        match &*self.load(auth, ctx, blob)? {
            LoadedKey::Hmac(k) => Ok(k.sign(message)),
            _ => Err(Error::NotPermitted("key has no material")),
        }
    }

    /// VerifyMac: constant-time check of an HMAC-SHA256 tag.
    pub fn verify_mac(
        &self,
        auth: &MacVerified<'_>,
        ctx: &KeyContext<'_>,
        blob: &KeyBlob,
        message: &[u8],
        mac: &[u8],
    ) -> Result<bool> {
        check_mac(ctx)?;
        match &*self.load(auth, ctx, blob)? {
            LoadedKey::Hmac(k) => Ok(k.verify(message, mac)),
            _ => Err(Error::NotPermitted("key has no material")),
        }
    }

    // ---- BYOK -------------------------------------------------------------------------------

    /// GetParametersForImport: a fresh RSA wrapping key for an external CMK, its public key, and
    /// an import token bound to the key, its context and `expires_at_ms`.
    pub fn get_parameters_for_import(
        &self,
        auth: &MacVerified<'_>,
        ctx: &KeyContext<'_>,
        wrapping_spec: KeySpec,
        expires_at_ms: u64,
    ) -> Result<ImportParams> {
        if auth.appid() != ctx.appid {
            return Err(Error::NotPermitted("key belongs to another app"));
        }
        import::check_importable(ctx)?;
        if wrapping_spec.family() != Family::Rsa {
            return Err(Error::InvalidInput(
                "the wrapping key spec must be an RSA spec",
            ));
        }
        let (key, material) = RsaKey::generate(wrapping_spec)?;
        let wrapping_ctx = import::wrapping_context(ctx, wrapping_spec);
        let dks = self.dks();
        let wrapping_blob = blob::wrap(
            &dks,
            Purpose::ImportWrapping,
            &wrapping_ctx,
            material.as_slice(),
        )?;
        let token = import::make_token(&dks, ctx, &wrapping_blob, expires_at_ms)?;
        let public_key_pem = key.public_key_pem();
        self.cache.insert(
            Purpose::ImportWrapping,
            &wrapping_ctx,
            &wrapping_blob,
            Arc::new(LoadedKey::Rsa(key)),
        );
        Ok(ImportParams {
            public_key_pem,
            wrapping_blob,
            wrapping_spec,
            token,
        })
    }

    /// ImportKeyMaterial: checks the token, unwraps `key_material` (RSA PKCS#1 v1.5 or
    /// OAEP-SHA256) with the wrapping key and returns the CMK's new blob. The material must be
    /// exactly as long as the key spec's key (16, 24 or 32 bytes).
    #[allow(clippy::too_many_arguments)]
    pub fn import_key_material(
        &self,
        auth: &MacVerified<'_>,
        ctx: &KeyContext<'_>,
        wrapping_spec: KeySpec,
        wrapping_blob: &KeyBlob,
        token: &str,
        now_ms: u64,
        padding: PaddingMode,
        key_material: &[u8],
    ) -> Result<KeyBlob> {
        if auth.appid() != ctx.appid {
            return Err(Error::NotPermitted("key belongs to another app"));
        }
        let expected_len = import::check_importable(ctx)?;
        import::check_token(&self.dks(), ctx, wrapping_blob, token, now_ms)?;
        let wrapping_ctx = import::wrapping_context(ctx, wrapping_spec);
        let material =
            match &*self.load_purpose(Purpose::ImportWrapping, &wrapping_ctx, wrapping_blob)? {
                LoadedKey::Rsa(k) => k.decrypt(padding, key_material)?,
                _ => {
                    return Err(Error::IntegrityFailure(
                        "import wrapping key is not an RSA key",
                    ));
                }
            };
        if material.len() != expected_len {
            return Err(Error::InvalidInput(
                "imported key material has the wrong length for its key spec",
            ));
        }
        let key = LoadedKey::from_material(ctx.spec, material.as_slice())?;
        let blob = blob::wrap(&self.dks(), Purpose::Cmk, ctx, material.as_slice())?;
        self.cache.insert(Purpose::Cmk, ctx, &blob, Arc::new(key));
        Ok(blob)
    }

    /// Whether a CMK's blob holds key material: `false` only for an external key whose material
    /// has not been imported yet. ImportKeyMaterial asks first, so that a key's material is
    /// never replaced (which would leave every earlier ciphertext undecryptable).
    pub fn has_material(
        &self,
        auth: &MacVerified<'_>,
        ctx: &KeyContext<'_>,
        blob: &KeyBlob,
    ) -> Result<bool> {
        Ok(!matches!(
            *self.load(auth, ctx, blob)?,
            LoadedKey::NotImported
        ))
    }

    // ---- API keys and request MACs ------------------------------------------------------------

    /// Enroll: a new API key for `appid` and the blob to store it as.
    pub fn create_api_key(&self, appid: &str) -> Result<(ApiKey, KeyBlob)> {
        let key = ApiKey::generate()?;
        let ctx = apikey::context(appid);
        let blob = blob::wrap(&self.dks(), Purpose::ApiKey, &ctx, key.expose().as_bytes())?;
        Ok((key, blob))
    }

    /// Checks a request MAC (spec §3.2): `sign` must be the base64 HMAC-SHA256 of `canonical`
    /// keyed with the app's API key. Compared in constant time; the API key never leaves the core.
    pub fn verify_request_mac<'a>(
        &self,
        appid: &'a str,
        apikey_blob: &KeyBlob,
        canonical: &[u8],
        sign: &str,
    ) -> Result<MacVerified<'a>> {
        let key = self.api_key(appid, apikey_blob)?;
        if apikey::sign_matches(&key.as_api_key()?.request_mac.sign(canonical), sign) {
            Ok(MacVerified::new(appid))
        } else {
            Err(Error::RequestMacMismatch)
        }
    }

    /// Checks an AWS Signature Version 4 (the AWS KMS API): `signature_hex` must be the hex
    /// HMAC-SHA256 of `string_to_sign` under kSigning, derived from the app's API key (its
    /// secret access key) as AWS does: kDate = HMAC("AWS4" ‖ API key, `scope.date`), then
    /// `scope.region`, `scope.service` and `"aws4_request"` in turn.
    ///
    /// The service has built `string_to_sign` from the request and checked the scope against
    /// it. The comparison is constant-time, and a signature that is not 64 lowercase hex digits
    /// is a mismatch like any other. The API key and the keys derived from it never leave the
    /// core.
    pub fn verify_sigv4<'a>(
        &self,
        appid: &'a str,
        apikey_blob: &KeyBlob,
        scope: &SigV4Scope<'_>,
        string_to_sign: &[u8],
        signature_hex: &str,
    ) -> Result<MacVerified<'a>> {
        let key = self.api_key(appid, apikey_blob)?;
        if key
            .as_api_key()?
            .sigv4
            .verify(scope, string_to_sign, signature_hex)?
        {
            Ok(MacVerified::new(appid))
        } else {
            Err(Error::RequestMacMismatch)
        }
    }

    /// A response MAC (spec §9.3, VerifyQuote's `sign`): the base64 HMAC-SHA256 of `canonical`
    /// under the API key of the app whose request `auth` proves, so that the client can check
    /// the answer with its API key. Only for an authenticated request, and only under that
    /// request's own app's key (the blob is bound to the appid); the API key stays in the core.
    pub fn response_mac(
        &self,
        auth: &MacVerified<'_>,
        apikey_blob: &KeyBlob,
        canonical: &[u8],
    ) -> Result<String> {
        let key = self.api_key(auth.appid(), apikey_blob)?;
        Ok(apikey::encode_mac(
            &key.as_api_key()?.request_mac.sign(canonical),
        ))
    }

    /// An app's API key, from the cache or unwrapped from its blob (which is bound to `appid`).
    fn api_key(&self, appid: &str, apikey_blob: &KeyBlob) -> Result<Arc<LoadedKey>> {
        self.load_purpose(Purpose::ApiKey, &apikey::context(appid), apikey_blob)
    }
}

fn symmetric_encrypt(
    key: &LoadedKey,
    ctx: &KeyContext<'_>,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>> {
    check_symmetric(ctx)?;
    let mut out = Vec::with_capacity(plaintext.len() + 64);
    ciphertext::write_header(ctx.version, &mut out);
    match key {
        LoadedKey::AesGcm(k) => k.seal(plaintext, aad, &mut out)?,
        // SM4 ignores aad, as upstream does (spec §6.3).
        LoadedKey::Sm4(k) => k.seal(plaintext, &mut out)?,
        _ => return Err(Error::NotPermitted("key has no material (import it first)")),
    }
    Ok(out)
}

fn symmetric_decrypt(
    key: &LoadedKey,
    ctx: &KeyContext<'_>,
    ciphertext: &[u8],
    aad: &[u8],
) -> Result<SecretBytes> {
    check_symmetric(ctx)?;
    let (version, body) = ciphertext::parse(ciphertext)?;
    if version != ctx.version {
        // Made with another version of this key (or another key): it cannot decrypt here.
        return Err(Error::DecryptionFailed);
    }
    match key {
        LoadedKey::AesGcm(k) => k.open(body, aad),
        LoadedKey::Sm4(k) => k.open(body),
        _ => Err(Error::NotPermitted("key has no material (import it first)")),
    }
}

fn check_symmetric(ctx: &KeyContext<'_>) -> Result<()> {
    if !ctx.spec.is_symmetric_cipher() {
        return Err(Error::NotPermitted(
            "Encrypt and Decrypt need an AES or SM4 key",
        ));
    }
    if ctx.usage != KeyUsage::EncryptDecrypt {
        return Err(Error::NotPermitted("key usage is not ENCRYPT_DECRYPT"));
    }
    Ok(())
}

fn check_public_key_encryption(ctx: &KeyContext<'_>) -> Result<()> {
    if !matches!(ctx.spec.family(), Family::Rsa | Family::Sm2) {
        return Err(Error::NotPermitted(
            "asymmetric encryption needs an RSA or SM2 key",
        ));
    }
    if ctx.usage != KeyUsage::EncryptDecrypt {
        return Err(Error::NotPermitted("key usage is not ENCRYPT_DECRYPT"));
    }
    Ok(())
}

fn check_signing(ctx: &KeyContext<'_>) -> Result<()> {
    if !matches!(ctx.spec.family(), Family::Rsa | Family::Ec | Family::Sm2) {
        return Err(Error::NotPermitted(
            "Sign and Verify need an RSA, EC or SM2 key",
        ));
    }
    if ctx.usage != KeyUsage::SignVerify {
        return Err(Error::NotPermitted("key usage is not SIGN_VERIFY"));
    }
    Ok(())
}

fn check_mac(ctx: &KeyContext<'_>) -> Result<()> {
    if ctx.spec != KeySpec::Hmac || ctx.usage != KeyUsage::SignVerify {
        return Err(Error::NotPermitted(
            "MACs need an EH_HMAC key with usage SIGN_VERIFY",
        ));
    }
    Ok(())
}
