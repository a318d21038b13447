//! Per-server token file: `<dir>/<sha256(server URL)[..32]>.json`, mode 0600, written
//! atomically (temp file + rename) so a crash never leaves half a file.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What is kept for one server: the registration and the current tokens.
#[derive(Clone, Serialize, Deserialize, Default)]
pub struct Saved {
    pub server_url: String,
    pub issuer: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    pub client_id: String,
    /// The secret a registration response issued (RFC 7591 §3.2.1): kept here, in the
    /// 0600 file, for confidential-only servers. Never a pre-registered one (that stays in
    /// the user's own file or environment).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// How the client authenticates at the token endpoint (RFC 7591 §2).
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    pub resource: String,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Unix seconds; from `expires_in` (RFC 6749 §5.1).
    #[serde(default)]
    pub expires_at: Option<u64>,
    #[serde(default)]
    pub lifetime: Option<u64>,
}

impl std::fmt::Debug for Saved {
    // Tokens never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Saved")
            .field("server_url", &self.server_url)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The token file of one server.
#[derive(Debug, Clone)]
pub struct TokenFile {
    pub path: PathBuf,
}

/// `$XDG_CONFIG_HOME/mcp-gateway/connect`, else `$HOME/.config/mcp-gateway/connect`.
pub fn default_dir(xdg_config_home: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    let base = match (xdg_config_home.filter(|s| !s.is_empty()), home) {
        (Some(x), _) => PathBuf::from(x),
        (None, Some(h)) if !h.is_empty() => Path::new(h).join(".config"),
        _ => return None,
    };
    Some(base.join("mcp-gateway").join("connect"))
}

/// The file name for a server URL.
pub fn file_name(server_url: &str) -> String {
    let digest = hex::encode(Sha256::digest(server_url.as_bytes()));
    format!("{}.json", &digest[..32])
}

impl TokenFile {
    pub fn new(dir: &Path, server_url: &str) -> Self {
        Self {
            path: dir.join(file_name(server_url)),
        }
    }

    /// The saved state, if any (an unreadable file counts as none: sign in again).
    pub fn load(&self) -> Option<Saved> {
        let raw = std::fs::read(&self.path).ok()?;
        serde_json::from_slice(&raw).ok()
    }

    pub fn save(&self, saved: &Saved) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let tmp = self
            .path
            .with_extension(format!("tmp{}", gateway_common::crypto::random_token(6)));
        let body = serde_json::to_vec_pretty(saved).map_err(std::io::Error::other)?;
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn saved_file_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let f = TokenFile::new(&dir.path().join("sub"), "https://svc.example.com/mcp");
        let s = Saved {
            server_url: "https://svc.example.com/mcp".into(),
            access_token: Some("secret-token".into()),
            client_secret: Some("client-secret".into()),
            ..Saved::default()
        };
        f.save(&s).unwrap();
        let mode = std::fs::metadata(&f.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            f.load().unwrap().access_token.as_deref(),
            Some("secret-token")
        );
        assert_eq!(
            f.load().unwrap().client_secret.as_deref(),
            Some("client-secret")
        );
        assert!(!format!("{s:?}").contains("secret-token"));
        assert!(!format!("{s:?}").contains("client-secret"));
    }

    #[test]
    fn default_dir_prefers_xdg() {
        assert_eq!(
            default_dir(Some("/x"), Some("/home/u")).unwrap(),
            PathBuf::from("/x/mcp-gateway/connect")
        );
        assert_eq!(
            default_dir(None, Some("/home/u")).unwrap(),
            PathBuf::from("/home/u/.config/mcp-gateway/connect")
        );
        assert!(default_dir(None, None).is_none());
    }

    #[test]
    fn one_file_per_server() {
        assert_ne!(file_name("https://a/mcp"), file_name("https://b/mcp"));
        assert_eq!(file_name("https://a/mcp").len(), 37);
    }
}
