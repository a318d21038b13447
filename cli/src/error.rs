//! The operator commands' one error type. Printed once by `main` as
//! `mcp-gateway: <message>` with exit status 2.

use gateway_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("record {key} is not readable ({detail}); was it written by another version?")]
    Corrupt { key: String, detail: String },
    #[error("{0}")]
    NotFound(String),
    /// Restore without `--force` found live records it would replace.
    #[error("refusing to overwrite {count} existing record(s) (first: {first}); run restore with --force to replace them")]
    WouldOverwrite { count: usize, first: String },
    #[error("backup file: {0}")]
    BadBackup(String),
    /// `import-python`: the Python gateway's Redis cannot be read.
    #[error("import-python: {0}")]
    Import(String),
}

impl From<mcp_authz::admin::AdminError> for AdminError {
    fn from(e: mcp_authz::admin::AdminError) -> Self {
        match e {
            mcp_authz::admin::AdminError::Store(e) => AdminError::Store(e),
            mcp_authz::admin::AdminError::Corrupt { key, detail } => {
                AdminError::Corrupt { key, detail }
            }
            mcp_authz::admin::AdminError::NotFound(m) => AdminError::NotFound(m),
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;
