//! AWS's JSON 1.1 error shape and the exceptions the AWS KMS API answers with.
//!
//! An error is HTTP `status` with `Content-Type: application/x-amz-json-1.1` and the body
//! `{"__type":"<type>","message":"<message>"}`; botocore and the other SDKs choose the exception
//! class from `__type` and show `message`. Every client error is 400, as AWS sends them (its
//! JSON protocol has no other client status); a server fault is 500 with a fixed message, the
//! details going to the log instead.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One error answer of the AWS API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AwsError {
    pub(crate) status: u16,
    /// The exception name, e.g. `InvalidSignatureException`.
    pub(crate) type_name: &'static str,
    pub(crate) message: String,
}

impl AwsError {
    fn client(type_name: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: 400,
            type_name,
            message: message.into(),
        }
    }

    // ---- authentication (AWS's common errors; messages as AWS words them) ---------------------

    /// No `Authorization` header, or one that is not AWS's (`AWS4-…`).
    pub(crate) fn missing_authentication_token() -> Self {
        Self::client(
            "MissingAuthenticationTokenException",
            "Request is missing Authentication Token",
        )
    }

    /// The `Authorization` header lacks a part, or a part is malformed.
    pub(crate) fn incomplete_signature(message: impl Into<String>) -> Self {
        Self::client("IncompleteSignatureException", message)
    }

    /// The signature is not valid for this request: wrong scope, clock skew, unsigned host.
    pub(crate) fn invalid_signature(message: impl Into<String>) -> Self {
        Self::client("InvalidSignatureException", message)
    }

    /// The signature does not match the one computed with the app's API key.
    pub(crate) fn signature_mismatch() -> Self {
        Self::invalid_signature(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details.",
        )
    }

    /// The access key id is no enrolled app.
    pub(crate) fn unrecognized_client() -> Self {
        Self::client(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    }

    pub(crate) fn access_denied(message: impl Into<String>) -> Self {
        Self::client("AccessDeniedException", message)
    }

    // ---- the request ------------------------------------------------------------------------

    /// `X-Amz-Target` names no operation of `TrentService`.
    pub(crate) fn unknown_operation() -> Self {
        Self::client("UnknownOperationException", "")
    }

    /// The body is not JSON, or a field has the wrong JSON type.
    pub(crate) fn serialization(message: impl Into<String>) -> Self {
        Self::client("SerializationException", message)
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::client("ValidationException", message)
    }

    /// An operation or parameter this server does not implement (grants, key policies, custom
    /// key stores, multi-Region keys).
    pub(crate) fn unsupported_operation(message: impl Into<String>) -> Self {
        Self::client("UnsupportedOperationException", message)
    }

    // ---- KMS's own exceptions -----------------------------------------------------------------

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::client("NotFoundException", message)
    }

    pub(crate) fn disabled(message: impl Into<String>) -> Self {
        Self::client("DisabledException", message)
    }

    pub(crate) fn invalid_state(message: impl Into<String>) -> Self {
        Self::client("KMSInvalidStateException", message)
    }

    pub(crate) fn invalid_ciphertext(message: impl Into<String>) -> Self {
        Self::client("InvalidCiphertextException", message)
    }

    pub(crate) fn incorrect_key(message: impl Into<String>) -> Self {
        Self::client("IncorrectKeyException", message)
    }

    pub(crate) fn already_exists(message: impl Into<String>) -> Self {
        Self::client("AlreadyExistsException", message)
    }

    pub(crate) fn limit_exceeded(message: impl Into<String>) -> Self {
        Self::client("LimitExceededException", message)
    }

    /// An error every AWS SDK retries, re-signing the request (botocore makes a new request,
    /// with a new X-Amz-Date, for each attempt).
    pub(crate) fn throttling(message: impl Into<String>) -> Self {
        Self::client("ThrottlingException", message)
    }

    /// A server fault. The body never carries the cause; log it where this is made.
    pub(crate) fn internal() -> Self {
        Self {
            status: 500,
            type_name: "KMSInternalException",
            message: "The request processing has failed because of an unknown error, \
                      exception or failure."
                .to_owned(),
        }
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "__type": self.type_name, "message": self.message });
        (
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
            body.to_string(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn rendered(e: AwsError) -> (u16, String, serde_json::Value) {
        let response = e.into_response();
        let status = response.status().as_u16();
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, content_type, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn renders_awss_json_error_shape() {
        let (status, content_type, body) = rendered(AwsError::signature_mismatch()).await;
        assert_eq!(status, 400);
        assert_eq!(content_type, "application/x-amz-json-1.1");
        assert_eq!(
            body,
            serde_json::json!({
                "__type": "InvalidSignatureException",
                "message": "The request signature we calculated does not match the signature \
                            you provided. Check your AWS Secret Access Key and signing method. \
                            Consult the service documentation for details."
            })
        );
        // A message is JSON-escaped, whatever the client put in it.
        let (_, _, body) = rendered(AwsError::validation("a \"quoted\"\nline")).await;
        assert_eq!(body["message"], "a \"quoted\"\nline");
    }

    #[tokio::test]
    async fn every_exception_has_its_aws_name_and_status() {
        let cases = [
            (
                AwsError::missing_authentication_token(),
                "MissingAuthenticationTokenException",
                400,
            ),
            (
                AwsError::incomplete_signature("m"),
                "IncompleteSignatureException",
                400,
            ),
            (
                AwsError::invalid_signature("m"),
                "InvalidSignatureException",
                400,
            ),
            (
                AwsError::unrecognized_client(),
                "UnrecognizedClientException",
                400,
            ),
            (AwsError::access_denied("m"), "AccessDeniedException", 400),
            (
                AwsError::unknown_operation(),
                "UnknownOperationException",
                400,
            ),
            (AwsError::serialization("m"), "SerializationException", 400),
            (AwsError::validation("m"), "ValidationException", 400),
            (
                AwsError::unsupported_operation("m"),
                "UnsupportedOperationException",
                400,
            ),
            (AwsError::not_found("m"), "NotFoundException", 400),
            (AwsError::disabled("m"), "DisabledException", 400),
            (
                AwsError::invalid_state("m"),
                "KMSInvalidStateException",
                400,
            ),
            (
                AwsError::invalid_ciphertext("m"),
                "InvalidCiphertextException",
                400,
            ),
            (AwsError::incorrect_key("m"), "IncorrectKeyException", 400),
            (AwsError::already_exists("m"), "AlreadyExistsException", 400),
            (AwsError::limit_exceeded("m"), "LimitExceededException", 400),
            (AwsError::internal(), "KMSInternalException", 500),
        ];
        for (error, type_name, status) in cases {
            let message = error.message.clone();
            let (got_status, _, body) = rendered(error).await;
            assert_eq!(
                (got_status, body["__type"].as_str()),
                (status, Some(type_name))
            );
            assert_eq!(body["message"], message, "{type_name}");
        }
        assert_eq!(
            AwsError::unrecognized_client().message,
            "The security token included in the request is invalid."
        );
    }
}
