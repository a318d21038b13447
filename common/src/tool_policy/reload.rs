//! Noticing a changed policy file.

use std::path::{Path, PathBuf};

use super::{PolicyError, ToolPolicy};

/// Change detection for a policy file, polled (once a second by the services):
/// the content is compared, not only the mtime, so a rewrite within the
/// file system's timestamp granularity is still seen.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    last: Option<Vec<u8>>,
}

/// What a poll found.
#[derive(Debug)]
pub enum Reload {
    Unchanged,
    /// New content that parsed: swap it in.
    Changed(ToolPolicy),
    /// New content (or an unreadable file) that did not: keep the old policy, log this.
    Invalid(PolicyError),
}

impl Reloader {
    /// Starts from the content already loaded (so the first poll reports no change).
    pub fn new(path: PathBuf) -> Self {
        let last = std::fs::read(&path).ok();
        Self { path, last }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn poll(&mut self) -> Reload {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) => {
                // Report a vanished file once, then wait for it to come back.
                if self.last.take().is_some() {
                    return Reload::Invalid(PolicyError::new(
                        self.path.display().to_string(),
                        e.to_string(),
                    ));
                }
                return Reload::Unchanged;
            }
        };
        if self.last.as_deref() == Some(bytes.as_slice()) {
            return Reload::Unchanged;
        }
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|_| PolicyError::new(self.path.display().to_string(), "is not UTF-8"))
            .and_then(ToolPolicy::parse);
        self.last = Some(bytes);
        match parsed {
            Ok(p) => Reload::Changed(p),
            Err(e) => Reload::Invalid(e),
        }
    }
}
