//! ECDSA — STUB, being written.
#![allow(dead_code, unused_variables)]
use crate::spec::{DigestMode, KeySpec, MessageType};
use crate::{Result, SecretBytes};

pub(crate) struct EcKey {}

impl EcKey {
    pub(crate) fn generate(spec: KeySpec) -> Result<(Self, SecretBytes)> {
        todo!()
    }
    pub(crate) fn from_secret(spec: KeySpec, secret: &[u8]) -> Result<Self> {
        todo!()
    }
    pub(crate) fn public_key_pem(&self) -> String {
        todo!()
    }
    pub(crate) fn sign(
        &self,
        digest: DigestMode,
        kind: MessageType,
        msg: &[u8],
    ) -> Result<Vec<u8>> {
        todo!()
    }
    pub(crate) fn verify(
        &self,
        digest: DigestMode,
        kind: MessageType,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<bool> {
        todo!()
    }
    pub(crate) fn self_test() -> Result<()> {
        todo!()
    }
}
