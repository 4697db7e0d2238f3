//! The eHSM-KMS REST service: envelope, canonical signing string, validation and actions.
//! Empty until the REST-service work fills it.
#![forbid(unsafe_code)]
