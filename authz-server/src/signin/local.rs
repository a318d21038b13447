//! Local users: a file of `name:$argon2id$...` lines (optionally `:email`
//! after the hash), for single-machine setups and the demo.
//!
//! The file is re-read on every attempt (it is small, and an operator adding a
//! user should not need a restart). An unknown name is checked against a dummy
//! hash, so the answer time does not tell whether a user exists.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use async_trait::async_trait;

use super::{Identity, IdentityProvider, SignInError, SignInStart};

#[derive(Debug, Clone)]
pub struct LocalUsers {
    path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalUser {
    pub name: String,
    pub hash: String,
    pub email: Option<String>,
}

/// Valid user names: what fits in a `sub` and a header without escaping.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

/// Parses the users file; malformed lines are skipped with a warning naming the line number only.
pub fn parse_users(text: &str) -> HashMap<String, LocalUser> {
    let mut users = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let (Some(name), Some(hash)) = (parts.next(), parts.next()) else {
            tracing::warn!(line = n + 1, "local users file: malformed line skipped");
            continue;
        };
        if !valid_name(name) || PasswordHash::new(hash).is_err() {
            tracing::warn!(line = n + 1, "local users file: malformed line skipped");
            continue;
        }
        let email = parts
            .next()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string);
        users.insert(
            name.to_string(),
            LocalUser {
                name: name.to_string(),
                hash: hash.to_string(),
                email,
            },
        );
    }
    users
}

/// An argon2id PHC hash of a password (for the add-user command and tests).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

impl LocalUsers {
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
        }
    }

    fn load(&self) -> Result<HashMap<String, LocalUser>, SignInError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| {
            SignInError::Unavailable(format!("reading {}: {e}", self.path.display()))
        })?;
        Ok(parse_users(&text))
    }
}

/// Equalises the time of unknown-user attempts with real verifications.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3Yq3bJ2Sx5iQ5cVnOeL7ZQ0tYJgk6x5Xw0B1i2bqVZs";

#[async_trait]
impl IdentityProvider for LocalUsers {
    fn id(&self) -> &'static str {
        "local"
    }

    fn label(&self) -> &str {
        "Local account"
    }

    async fn start(&self, _request_id: &str) -> Result<SignInStart, SignInError> {
        Ok(SignInStart::Form)
    }

    async fn verify_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<Identity>, SignInError> {
        if password.len() > 1024 || username.len() > 64 {
            return Ok(None);
        }
        let users = self.load()?;
        let user = users.get(username).cloned();
        let password = password.to_string();
        let hash = user
            .as_ref()
            .map(|u| u.hash.clone())
            .unwrap_or_else(|| DUMMY_HASH.to_string());
        // argon2 is deliberately slow: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || verify(&password, &hash))
            .await
            .map_err(|e| SignInError::Unavailable(e.to_string()))?;
        Ok(match (ok, user) {
            (true, Some(u)) => Some(Identity {
                sub: format!("local:{}", u.name),
                name: u.name,
                email: u.email,
                groups: Vec::new(),
                idp: "local".to_string(),
                ..Identity::default()
            }),
            _ => None,
        })
    }

    /// A user removed from the file loses their grants at the next refresh.
    async fn recheck(&self, user: &Identity, _now: u64) -> Result<Option<Identity>, SignInError> {
        if user.idp != "local" {
            return Ok(None);
        }
        let users = self.load()?;
        match users.get(&user.name) {
            Some(_) => Ok(None),
            None => Err(SignInError::Refused(
                "the local user was removed".to_string(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_argon2_hashes_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let hash = hash_password("correct horse").unwrap();
        std::fs::write(
            &path,
            format!("# users\nalice:{hash}:alice@example.com\nbad line\n"),
        )
        .unwrap();
        let p = LocalUsers::new(&path);
        let id = p
            .verify_password("alice", "correct horse")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(id.sub, "local:alice");
        assert_eq!(id.email.as_deref(), Some("alice@example.com"));
        assert!(p.verify_password("alice", "wrong").await.unwrap().is_none());
        assert!(p
            .verify_password("bob", "correct horse")
            .await
            .unwrap()
            .is_none());
        assert!(p.recheck(&id, 0).await.unwrap().is_none());
        std::fs::write(&path, "# nobody\n").unwrap();
        assert!(matches!(
            p.recheck(&id, 0).await,
            Err(SignInError::Refused(_))
        ));
    }

    #[test]
    fn names_are_restricted() {
        assert!(valid_name("alice.b-c_d@x"));
        assert!(!valid_name("a b"));
        assert!(!valid_name("<script>"));
        assert!(!valid_name(""));
    }
}
