//! The local users file: one `name:argon2-PHC-hash` per line, read by the
//! authz-server's local sign-in (`LOCAL_USERS_FILE`).

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::Argon2;

/// Adds (or replaces) a user. The file is created with mode 0600.
pub fn add_user(file: &Path, name: &str, password: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) {
        bail!("user name must be non-empty, without ':' or spaces: {name:?}");
    }
    if password.len() < 8 {
        bail!("password must be at least 8 characters");
    }
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?
        .to_string();
    let existing = fs::read_to_string(file).unwrap_or_default();
    let mut lines: Vec<String> = existing
        .lines()
        .filter(|l| l.split(':').next() != Some(name))
        .map(str::to_string)
        .collect();
    lines.push(format!("{name}:{hash}"));
    if let Some(dir) = file.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(file)
        .with_context(|| format!("writing {}", file.display()))?;
    writeln!(f, "{}", lines.join("\n"))?;
    Ok(())
}

/// Whether the file names at least one user.
pub fn has_users(file: &Path) -> bool {
    fs::read_to_string(file)
        .map(|s| s.lines().any(|l| l.contains(":$argon2")))
        .unwrap_or(false)
}

/// A password a person can type: 4 groups of 5 from an unambiguous alphabet.
pub fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    (0..4)
        .map(|_| {
            (0..5)
                .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHash, PasswordVerifier};

    #[test]
    fn add_user_writes_a_verifiable_hash_and_replaces_the_same_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        add_user(&file, "alice", "first-password").unwrap();
        add_user(&file, "bob", "bobs-password").unwrap();
        add_user(&file, "alice", "second-password").unwrap();
        let text = fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(!text.contains("second-password"));
        let line = text.lines().find(|l| l.starts_with("alice:")).unwrap();
        let hash = PasswordHash::new(&line["alice:".len()..]).unwrap();
        assert!(Argon2::default()
            .verify_password(b"second-password", &hash)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"first-password", &hash)
            .is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn bad_names_and_short_passwords_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        assert!(add_user(&file, "a:b", "long-enough").is_err());
        assert!(add_user(&file, "alice", "short").is_err());
        assert!(!has_users(&file));
        let p = generate_password();
        assert_eq!(p.len(), 23);
        assert_ne!(p, generate_password());
    }
}
