//! Local users: a file of `name:$argon2id$...` lines (optionally `:email`
//! after the hash), for single-machine setups and the demo.
//!
//! The file is read again when it changes (its size, modification or change
//! time, or inode differ from the copy in memory), so an operator adding or
//! removing a user needs no restart, while a refresh grant's re-check costs one
//! `stat` instead of a read and a parse. A file modified within
//! [`RACY_WINDOW`] of the read may have changed again within the file system's
//! timestamp granularity without its metadata showing it, so such a copy is not
//! trusted until it is older (the "racy" case git's index handles the same way).
//! An unknown name is checked against a dummy hash, so the answer time does not
//! tell whether a user exists.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use async_trait::async_trait;

use super::{Identity, IdentityProvider, SignInError, SignInStart};

#[derive(Debug, Clone)]
pub struct LocalUsers {
    path: PathBuf,
    loaded: Arc<Mutex<Option<Loaded>>>,
}

/// How close to the file's modification time a read must be for the copy not to be trusted.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// The users as last read, and what the file looked like then.
#[derive(Debug)]
struct Loaded {
    stamp: Stamp,
    /// The read happened within [`RACY_WINDOW`] of the file's modification: read again next time.
    racy: bool,
    users: Arc<HashMap<String, LocalUser>>,
}

/// What tells a changed file: size, modification and change times, inode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    changed: Option<(i64, i64)>,
    inode: Option<(u64, u64)>,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let (changed, inode) = {
            use std::os::unix::fs::MetadataExt;
            (
                Some((meta.ctime(), meta.ctime_nsec())),
                Some((meta.dev(), meta.ino())),
            )
        };
        #[cfg(not(unix))]
        let (changed, inode) = (None, None);
        Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            changed,
            inode,
        }
    }
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
            loaded: Arc::new(Mutex::new(None)),
        }
    }

    /// The users, read again only when the file changed (see the module doc).
    fn load(&self) -> Result<Arc<HashMap<String, LocalUser>>, SignInError> {
        let unavailable = |e: std::io::Error| {
            SignInError::Unavailable(format!("reading {}: {e}", self.path.display()))
        };
        let stamp = Stamp::of(&std::fs::metadata(&self.path).map_err(unavailable)?);
        {
            let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(l) = loaded.as_ref() {
                if !l.racy && l.stamp == stamp {
                    return Ok(Arc::clone(&l.users));
                }
            }
        }
        // Stamp before reading: a write after the stamp shows as a changed stamp next time.
        let stamp_before = stamp;
        let text = std::fs::read_to_string(&self.path).map_err(unavailable)?;
        let users = Arc::new(parse_users(&text));
        // The wall clock only decides whether to trust the copy, never who may sign in.
        #[allow(clippy::disallowed_methods)]
        let now = SystemTime::now();
        let racy = stamp_before
            .modified
            .is_none_or(|m| !now.duration_since(m).is_ok_and(|age| age >= RACY_WINDOW));
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        *loaded = Some(Loaded {
            stamp: stamp_before,
            racy,
            users: Arc::clone(&users),
        });
        Ok(users)
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

    /// A settled file is read once; a change of it (a user added) is read again.
    #[tokio::test]
    async fn reads_the_file_again_only_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let hash = hash_password("pw").unwrap();
        std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
        // Older than the racy window: the copy in memory is trusted.
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let p = LocalUsers::new(&path);
        let first = p.load().unwrap();
        assert!(
            Arc::ptr_eq(&first, &p.load().unwrap()),
            "unchanged file not read again"
        );
        let bob = Identity {
            sub: "local:bob".into(),
            name: "bob".into(),
            idp: "local".into(),
            ..Identity::default()
        };
        assert!(p.recheck(&bob, 0).await.is_err());
        std::fs::write(&path, format!("alice:{hash}\nbob:{hash}\n")).unwrap();
        assert!(
            p.recheck(&bob, 0).await.unwrap().is_none(),
            "added user seen"
        );
        assert!(p.load().unwrap().contains_key("bob"));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            p.recheck(&bob, 0).await,
            Err(SignInError::Unavailable(_))
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
