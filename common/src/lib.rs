//! Shared vocabulary of the gateway's services.
//!
//! Only what two services must agree on lives here: the access-token claims
//! (authz-server issues, verifier checks), the revocation event (authz-server
//! publishes, verifier consumes), store key names, configuration primitives and
//! the clock seam.

pub mod audit;
pub mod authority;
pub mod claims;
pub mod clock;
pub mod config;
pub mod crypto;
#[cfg(feature = "jwt")]
pub mod dpop;
pub mod flow;
pub mod http_metrics;
pub mod jsonrpc;
#[cfg(feature = "jwt")]
pub mod keys;
pub mod lifecycle;
pub mod logging;
pub mod mcp_header;
pub mod mcp_version;
pub mod net_filter;
pub mod pkce;
pub mod revocation;
pub mod sse;
pub mod tool_policy;
pub mod trusted_proxies;
