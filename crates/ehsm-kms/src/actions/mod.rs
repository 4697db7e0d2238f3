//! One function per action, all with the same shape: `(state, authenticated request) -> reply`.
//! Dispatch is a plain `match`.

pub(crate) mod aliases;
pub(crate) mod asymmetric;
mod byok;
pub(crate) mod keys;
pub(crate) mod lifecycle;
mod mac;
mod quote;
mod secrets;
pub(crate) mod symmetric;

pub(crate) use keys::PAGE_MAX as LIST_KEY_PAGE_MAX;
pub(crate) use lifecycle::{delete_due as delete_due_keys, rotate_due as rotate_due_keys};
pub(crate) use secrets::new_default_key as new_default_secret_key;

use ehsm_proto::Action;

use crate::envelope::Authenticated;
use crate::reply::{ApiError, ApiResult};
use crate::state::AppState;

/// Runs an authenticated action. Actions this server does not serve (yet) are "API Not Found".
pub(crate) async fn dispatch(
    state: &AppState,
    action: Action,
    req: &Authenticated<'_>,
) -> ApiResult {
    match action {
        Action::CreateKey => keys::create_key(state, req).await,
        Action::ListKey => keys::list_key(state, req).await,
        Action::DeleteKey => keys::delete_key(state, req).await,
        Action::DeleteAllKey => keys::delete_all_key(state, req).await,
        Action::EnableKey => keys::set_state(state, req, true).await,
        Action::DisableKey => keys::set_state(state, req, false).await,
        Action::Encrypt => symmetric::encrypt(state, req).await,
        Action::Decrypt => symmetric::decrypt(state, req).await,
        Action::GenerateDataKey => symmetric::generate_data_key(state, req, true).await,
        Action::GenerateDataKeyWithoutPlaintext => {
            symmetric::generate_data_key(state, req, false).await
        }
        Action::ExportDataKey => symmetric::export_data_key(state, req).await,
        Action::AsymmetricEncrypt => asymmetric::encrypt(state, req).await,
        Action::AsymmetricDecrypt => asymmetric::decrypt(state, req).await,
        Action::Sign => asymmetric::sign(state, req).await,
        Action::Verify => asymmetric::verify(state, req).await,
        Action::GetPublicKey => asymmetric::get_public_key(state, req).await,
        Action::GetParametersForImport => byok::get_parameters_for_import(state, req).await,
        Action::ImportKeyMaterial => byok::import_key_material(state, req).await,
        Action::GenerateMac => mac::generate_mac(state, req).await,
        Action::VerifyMac => mac::verify_mac(state, req).await,
        Action::CreateSecret => secrets::create_secret(state, req).await,
        Action::UpdateSecretDesc => secrets::update_secret_desc(state, req).await,
        Action::PutSecretValue => secrets::put_secret_value(state, req).await,
        Action::ListSecretVersionIds => secrets::list_secret_version_ids(state, req).await,
        Action::ListSecrets => secrets::list_secrets(state, req).await,
        Action::DescribeSecret => secrets::describe_secret(state, req).await,
        Action::DeleteSecret => secrets::delete_secret(state, req).await,
        Action::GetSecretValue => secrets::get_secret_value(state, req).await,
        Action::RestoreSecret => secrets::restore_secret(state, req).await,
        Action::GenerateQuote => quote::generate_quote(state, req).await,
        Action::VerifyQuote => quote::verify_quote(state, req).await,
        Action::UploadQuotePolicy => quote::upload_quote_policy(state, req).await,
        Action::GetQuotePolicy => quote::get_quote_policy(state, req).await,
        // Unauthenticated: answered before any envelope check (`crate::handle`).
        Action::GetVersion | Action::Enroll | Action::GetServerEvidence => {
            Err(ApiError::not_found())
        }
        Action::RotateKey => lifecycle::rotate_key(state, req).await,
        Action::UpdateRotationPolicy => lifecycle::update_rotation_policy(state, req).await,
        Action::ListKeyVersions => lifecycle::list_key_versions(state, req).await,
        Action::DescribeKey => lifecycle::describe_key(state, req).await,
        Action::ScheduleKeyDeletion => lifecycle::schedule_key_deletion(state, req).await,
        Action::CancelKeyDeletion => lifecycle::cancel_key_deletion(state, req).await,
        Action::CreateAlias => aliases::create_alias(state, req).await,
        Action::UpdateAlias => aliases::update_alias(state, req).await,
        Action::DeleteAlias => aliases::delete_alias(state, req).await,
        Action::ListAliases => aliases::list_aliases(state, req).await,
        Action::ReEncrypt => symmetric::reencrypt(state, req).await,
    }
}

/// A store error of an insert under a per-app quota as the client's answer: a full quota is a
/// 400 that says so (`what`: "Key", `plural`: "keys"); any other error is what it is.
pub(crate) fn over_quota(
    e: ehsm_store::Error,
    what: &str,
    plural: &str,
    quota: Option<u64>,
) -> ApiError {
    match (e, quota) {
        (ehsm_store::Error::QuotaExceeded { count }, Some(quota)) => {
            crate::reply::quota_exceeded(what, plural, count, quota)
        }
        (e, _) => e.into(),
    }
}

/// Runs CPU-heavy core work (key generation, RSA private-key operations) without stalling the
/// other requests: at most one heavy operation per CPU runs at a time, the others wait in FIFO
/// order (tokio's semaphore is fair, so the latency of a burst of RSA requests is shared evenly),
/// and the running one moves the other tasks off its worker thread (`block_in_place`).
pub(crate) async fn heavy<T>(state: &AppState, f: impl FnOnce() -> T) -> T {
    // The semaphore is never closed, so acquiring cannot fail; if it somehow did, running the
    // work anyway is still correct, only less fair.
    let _permit = state.heavy.acquire().await.ok();
    tokio::task::block_in_place(f)
}
