//! Attestation evidence, and structural views of the DCAP quotes the hardware platforms produce.
//!
//! The views only read fields at their documented offsets, after checking the version, the TEE
//! type and every length, so that a short or malformed quote is an error and never a panic.
//! They verify **nothing**: no signature, no certificate, no TCB level. The platforms use them to
//! learn their own measurement and to check that a fresh quote carries the report data they
//! asked for; verification of someone else's quote belongs to [`crate::dcap`], whose identity
//! types these views return (unverified here).
//!
//! Layouts (Intel SGX ECDSA Quote Library API, and dcap-qvl's `EnclaveReport` / `TDReport10`):
//! every quote starts with a 48-byte header (`version: u16`, `attestation_key_type: u16`,
//! `tee_type: u32`, ...). SGX quote v3: the 384-byte enclave report body follows at 48. TDX quote
//! v4: the 584-byte TD report body follows at 48; v5 puts a 6-byte body descriptor
//! (`type: u16`, `size: u32`) first, so the body starts at 54 (TDX 1.5 bodies extend the 1.0
//! body at its end, so the offsets used here are the same). After the body comes the
//! signature data, prefixed by its length (`u32`).

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::Path;

use crate::dcap::{SgxIdentity, TdxIdentity};
use crate::{Error, PlatformKind};

/// Attestation evidence produced by a [`crate::Platform`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// The platform that produced it, and so its format: a DCAP quote for SGX and TDX, the
    /// software format of [`crate::sim`] for sim.
    pub kind: PlatformKind,
    /// The raw bytes, exactly as the platform returned them.
    pub bytes: Vec<u8>,
}

/// How both hardware platforms make a quote: write the report data to the file `input`, then
/// read the quote from `output`. `input` is never created: the platform (Gramine, the kernel)
/// makes it, so a missing one means the interface is not there, and the error names it.
pub(crate) fn write_then_read(
    input: &Path,
    report_data: &[u8; 64],
    output: &Path,
) -> Result<Vec<u8>, Error> {
    // One write of all 64 bytes: configfs takes the blob as written when the file is closed.
    OpenOptions::new()
        .write(true)
        .open(input)
        .and_then(|mut f| f.write_all(report_data))
        .map_err(Error::io(input))?;
    fs::read(output).map_err(Error::io(output))
}

/// The size of the header every DCAP quote starts with.
const HEADER: usize = 48;
/// The size of an SGX enclave report body.
const SGX_BODY: usize = 384;
/// The size of a TDX 1.0 TD report body; TDX 1.5's body extends it, keeping these offsets.
const TD10_BODY: usize = 584;
/// `tee_type` in the header.
const TEE_TYPE_SGX: u32 = 0x0000_0000;
const TEE_TYPE_TDX: u32 = 0x0000_0081;
/// TDX quote v5 body types (the descriptor's `type`): 2 = TD report 1.0, 3 = 1.5, 4 = 1.5 "ex".
const V5_BODY_TD10: u16 = 2;
const V5_BODY_TD15_EX: u16 = 4;

/// The report data of an SGX or TDX quote, read without verifying anything; the error says why
/// neither layout fits.
pub fn report_data(quote: &[u8]) -> Result<[u8; 64], String> {
    match sgx_report_body(quote) {
        Ok(sgx) => Ok(sgx.report_data),
        Err(sgx_reason) => td_report_body(quote)
            .map(|td| td.report_data)
            .map_err(|td_reason| {
                format!("not an SGX quote ({sgx_reason}) nor a TDX quote ({td_reason})")
            }),
    }
}

/// Reads the enclave report body of an SGX DCAP quote (version 3).
pub fn sgx_report_body(quote: &[u8]) -> Result<SgxIdentity, &'static str> {
    let version = u16_at(quote, 0).ok_or("too short for a quote header")?;
    if version != 3 {
        return Err("not an SGX quote: the version (u16 at offset 0) is not 3");
    }
    if u32_at(quote, 4) != Some(TEE_TYPE_SGX) {
        return Err("not an SGX quote: the TEE type (u32 at offset 4) is not SGX (0)");
    }
    check_signature_fits(quote, HEADER + SGX_BODY)?;
    let body = HEADER;
    Ok(SgxIdentity {
        mr_enclave: array_at(quote, body + 64).ok_or(SHORT)?,
        mr_signer: array_at(quote, body + 128).ok_or(SHORT)?,
        isv_prod_id: u16_at(quote, body + 256).ok_or(SHORT)?,
        isv_svn: u16_at(quote, body + 258).ok_or(SHORT)?,
        report_data: array_at(quote, body + 320).ok_or(SHORT)?,
    })
}

/// Reads the TD report body of a TDX DCAP quote (version 4, or 5 with a TD 1.0 or 1.5 body).
pub fn td_report_body(quote: &[u8]) -> Result<TdxIdentity, &'static str> {
    let version = u16_at(quote, 0).ok_or("too short for a quote header")?;
    if u32_at(quote, 4) != Some(TEE_TYPE_TDX) {
        return Err("not a TDX quote: the TEE type (u32 at offset 4) is not TDX (0x81)");
    }
    let (body, body_len) = match version {
        4 => (HEADER, TD10_BODY),
        5 => {
            // Every TD report type (1.0, 1.5, 1.5 "ex") starts with the 1.0 body; only its
            // size differs, so the descriptor's size is used as is, after a lower bound.
            if !matches!(u16_at(quote, HEADER), Some(V5_BODY_TD10..=V5_BODY_TD15_EX)) {
                return Err("TDX quote v5 whose body is not a TD report (type 2, 3 or 4)");
            }
            let size = u32_at(quote, HEADER + 2).ok_or(SHORT)?;
            match usize::try_from(size) {
                Ok(size) if size >= TD10_BODY => (HEADER + 6, size),
                _ => return Err("TDX quote v5: the body is smaller than a TD report"),
            }
        }
        _ => return Err("not a TDX quote: the version (u16 at offset 0) is not 4 or 5"),
    };
    check_signature_fits(quote, body + body_len)?;
    let rtmr = |i: usize| array_at(quote, body + 328 + 48 * i).ok_or(SHORT);
    Ok(TdxIdentity {
        mr_td: array_at(quote, body + 136).ok_or(SHORT)?,
        rtmr: [rtmr(0)?, rtmr(1)?, rtmr(2)?, rtmr(3)?],
        report_data: array_at(quote, body + 520).ok_or(SHORT)?,
    })
}

const SHORT: &str = "the quote is truncated inside its report body";

/// The signature data's length (u32 at `at`) and the data must fit in the quote. Trailing bytes
/// are allowed: TDX quote buffers come zero-padded (dcap-qvl's TDX sample has 70 such bytes).
fn check_signature_fits(quote: &[u8], at: usize) -> Result<(), &'static str> {
    let len = u32_at(quote, at).ok_or(SHORT)?;
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| at.checked_add(4)?.checked_add(len));
    match end {
        Some(end) if end <= quote.len() => Ok(()),
        _ => Err("the quote's signature data runs past its end (truncated quote)"),
    }
}

fn array_at<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    array_at(bytes, at).map(u16::from_le_bytes)
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    array_at(bytes, at).map(u32::from_le_bytes)
}
