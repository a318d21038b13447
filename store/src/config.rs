//! Choosing the store from configuration (the shared contract):
//! `REDIS_URL` set → Redis (`REDIS_PASSWORD` applied when the URL has none);
//! otherwise the embedded store at `STORE_PATH` (default [`DEFAULT_STORE_PATH`]).

use std::path::Path;
use std::sync::Arc;

use gateway_common::config::{ConfigError, Source};

use crate::redis_store::{RedisUrl, EXAMPLE_URL};
use crate::{EmbeddedStore, RedisStore, Store, StoreError};

pub const DEFAULT_STORE_PATH: &str = "./data/gateway.redb";

/// Which store the configuration asks for, checked but not yet opened.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Redis(RedisUrl),
    Embedded { path: std::path::PathBuf },
}

impl StoreConfig {
    /// Reads `REDIS_URL`, `REDIS_PASSWORD` and `STORE_PATH` without touching
    /// the network or the disk (for `--check-config` and parse-before-bind).
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        match src.get("REDIS_URL") {
            Some(url) => RedisUrl::parse(url, src.get("REDIS_PASSWORD"))
                .map(Self::Redis)
                .map_err(|e| ConfigError::new("REDIS_URL", problem(e), EXAMPLE_URL)),
            None => Ok(Self::Embedded {
                path: src.string("STORE_PATH", DEFAULT_STORE_PATH).into(),
            }),
        }
    }

    /// Opens the store (creating the embedded store's directory if needed).
    pub async fn open(&self) -> Result<Arc<dyn Store>, ConfigError> {
        match self {
            Self::Redis(url) => {
                let store = RedisStore::from_url(url.clone())
                    .map_err(|e| ConfigError::new("REDIS_URL", problem(e), EXAMPLE_URL))?;
                Ok(Arc::new(store))
            }
            Self::Embedded { path } => {
                let example = DEFAULT_STORE_PATH;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        ConfigError::new(
                            "STORE_PATH",
                            format!(
                                "names a directory that cannot be created ({}): {e}",
                                dir.display()
                            ),
                            example,
                        )
                    })?;
                }
                let store = EmbeddedStore::open(Path::new(path)).await.map_err(|e| {
                    ConfigError::new(
                        "STORE_PATH",
                        format!(
                            "cannot be opened as the store ({}): {}",
                            path.display(),
                            problem(e)
                        ),
                        example,
                    )
                })?;
                Ok(Arc::new(store))
            }
        }
    }
}

/// Opens the store the configuration names (see the module docs).
pub async fn open_from_config(src: &Source) -> Result<Arc<dyn Store>, ConfigError> {
    StoreConfig::from_source(src)?.open().await
}

fn problem(e: StoreError) -> String {
    match e {
        StoreError::Config(m) | StoreError::Unavailable(m) | StoreError::Backend(m) => m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_malformed_redis_url_is_one_line_naming_the_variable_with_an_example() {
        let src = Source::from_pairs([("REDIS_URL", "http://:hunter2@redis:6379")]);
        let err = open_from_config(&src).await.unwrap_err();
        let line = err.to_string();
        assert_eq!(err.var, "REDIS_URL");
        assert!(
            line.contains("redis://") && line.contains("not http://"),
            "{line}"
        );
        assert!(
            line.ends_with("(example: REDIS_URL=redis://redis:6379/0)"),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
        assert!(!line.contains("hunter2"), "the password leaked: {line}");

        let err = open_from_config(&Source::from_pairs([("REDIS_URL", "redis://redis:63x9/0")]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("invalid port"), "{err}");
    }

    #[tokio::test]
    async fn redis_url_selects_redis_and_password_is_applied() {
        let src = Source::from_pairs([
            ("REDIS_URL", "redis://redis:6379/3"),
            ("REDIS_PASSWORD", "pw"),
        ]);
        match StoreConfig::from_source(&src).unwrap() {
            StoreConfig::Redis(url) => {
                assert!(url.has_password());
                assert_eq!(url.display(), "redis://redis:6379/3");
            }
            other => panic!("{other:?}"),
        }
        // Opening makes no connection, so a Redis that is not up yet is fine.
        assert_eq!(open_from_config(&src).await.unwrap().backend(), "redis");
    }

    #[tokio::test]
    async fn without_redis_url_the_embedded_store_opens_and_creates_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deeper/gateway.redb");
        let src = Source::from_pairs([("STORE_PATH", path.to_str().unwrap())]);
        let store = open_from_config(&src).await.unwrap();
        assert_eq!(store.backend(), "embedded");
        store.put("k", b"v", None).await.unwrap();
        assert!(path.exists());
        match StoreConfig::from_source(&Source::default()).unwrap() {
            StoreConfig::Embedded { path } => assert_eq!(path, Path::new(DEFAULT_STORE_PATH)),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unusable_store_path_names_store_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"not a directory").unwrap();
        let src = Source::from_pairs([("STORE_PATH", file.join("x.redb").to_str().unwrap())]);
        let err = open_from_config(&src).await.unwrap_err();
        assert_eq!(err.var, "STORE_PATH");
        assert!(!err.to_string().contains('\n'), "{err}");
    }
}
