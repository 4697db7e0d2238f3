//! `ehsm import`: bring your own key (spec §6.9), in one command.

use std::path::PathBuf;
use std::process::ExitCode;

use ehsm_client::{KeySpec, PaddingMode};

use super::names::{WrapPadding, WrapSpec};
use super::output::read_input;
use super::wrap::wrap_key_material;
use super::{CmdResult, ConnArgs, Session, output};

#[derive(clap::Args)]
#[command(
    after_help = "Steps: GetParametersForImport (the server makes an RSA wrapping key), \
                        the key material is encrypted to it here, ImportKeyMaterial. Create the \
                        key first: ehsm key create --spec aes-gcm-256 --origin external"
)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,

    /// The external key to import into
    #[arg(long, value_name = "KEYID")]
    key: String,

    /// The raw key bytes: 16 (AES-128, SM4), 24 (AES-192) or 32 (AES-256); '-' is stdin
    #[arg(long, value_name = "FILE")]
    material: PathBuf,

    /// The size of the RSA wrapping key the server makes
    #[arg(long, value_enum, ignore_case = true, default_value = "rsa-3072")]
    wrapping_spec: WrapSpec,

    /// How the key material is encrypted to the wrapping key (oaep: OAEP with SHA-256)
    #[arg(long, value_enum, ignore_case = true, default_value = "oaep")]
    padding: WrapPadding,
}

pub(crate) async fn run(s: &Session, a: &Args) -> CmdResult {
    let too_big = "key material is 16, 24 or 32 raw bytes";
    let material = read_input(Some(&a.material), 32, too_big)?;
    if ![16, 24, 32].contains(&material.len()) {
        fail!(
            "the key material is {} bytes; it must be exactly the key's length: 16 bytes for \
             AES-128 and SM4, 24 for AES-192, 32 for AES-256 (raw bytes, not hex or base64)",
            material.len()
        );
    }
    let spec: KeySpec = a.wrapping_spec.0;
    let padding: PaddingMode = a.padding.0;
    let params = s.client.get_parameters_for_import(&a.key, spec).await?;
    let wrapped = wrap_key_material(&params.pubkey_pem, padding, &material)?;
    s.client
        .import_key_material(&a.key, padding, &wrapped, &params.import_token)
        .await?;
    output::line(format_args!(
        "imported {} bytes into {}",
        material.len(),
        a.key
    ))?;
    Ok(ExitCode::SUCCESS)
}
