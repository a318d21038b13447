//! The OAuth protocol core: decisions as plain functions over plain types.
//!
//! Nothing here imports the web framework, the store or the application
//! state (`authz-server/tests/architecture.rs` fails the build's tests if a
//! module does). Handlers in [`crate::http`] read the request and the store,
//! call into these modules with what they found (records, `now`, random
//! values) and turn the result into a response; errors become HTTP once, in
//! `crate::http::error`.

pub mod client_auth;
pub mod client_credentials;
pub mod device;
pub mod dpop;
pub mod error;
pub mod identity;
pub mod private_key_jwt;
pub mod records;
pub mod redirect_uri;
pub mod registration;
pub mod scope;
pub mod token;
