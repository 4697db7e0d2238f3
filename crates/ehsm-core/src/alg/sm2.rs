//! SM2 — STUB, being written.
#![allow(dead_code, unused_variables)]
use crate::spec::DigestMode;
use crate::{Result, SecretBytes};

pub(crate) struct Sm2Key {}

impl Sm2Key {
    pub(crate) fn generate() -> Result<(Self, SecretBytes)> {
        todo!()
    }
    pub(crate) fn from_secret(secret: &[u8]) -> Result<Self> {
        todo!()
    }
    pub(crate) fn public_key_pem(&self) -> String {
        todo!()
    }
    pub(crate) fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        todo!()
    }
    pub(crate) fn verify(&self, digest: DigestMode, msg: &[u8], sig: &[u8]) -> Result<bool> {
        todo!()
    }
    pub(crate) fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        todo!()
    }
    pub(crate) fn decrypt(&self, ciphertext: &[u8]) -> Result<SecretBytes> {
        todo!()
    }
    pub(crate) fn self_test() -> Result<()> {
        todo!()
    }
}
