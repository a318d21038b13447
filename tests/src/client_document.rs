//! A Client ID Metadata Document (draft-ietf-oauth-client-id-metadata-document,
//! MCP 2025-11-25 "Client Registration") served from loopback for the
//! end-to-end client: the `client_id` is the document's URL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};

/// The redirect URI of `tests/js/e2e_client.mjs` (never listened on: the
/// scripted browser stops at the redirect).
pub const REDIRECT_URI: &str = "http://127.0.0.1:33418/callback";

const PATH: &str = "/clients/gateway-e2e.json";

/// The document server; counts fetches so a test can tell the authorization
/// server read it.
#[derive(Debug)]
pub struct ClientDocument {
    pub url: String,
    fetches: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

impl ClientDocument {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}{PATH}", listener.local_addr()?);
        let doc = serde_json::json!({
            "client_id": url,
            "client_name": "gateway e2e client (metadata document)",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        });
        let fetches = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&fetches);
        let server = HttpServer::new(move || {
            let doc = doc.clone();
            let counter = Arc::clone(&counter);
            App::new().route(
                PATH,
                web::get().to(move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let doc = doc.clone();
                    async move { HttpResponse::Ok().json(doc) }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Ok(Self {
            url,
            fetches,
            handle,
        })
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// The same document over https with a self-signed certificate made here with
/// the `openssl` CLI and served by `openssl s_server -WWW`: what the SDK's
/// `clientMetadataUrl` accepts (https only) but no authorization server that
/// checks certificates will fetch.
#[derive(Debug)]
pub struct TlsClientDocument {
    pub url: String,
    log: std::path::PathBuf,
    _server: gateway_testkit::ChildGuard,
    _dir: tempfile::TempDir,
}

impl TlsClientDocument {
    pub async fn start() -> anyhow::Result<Self> {
        use anyhow::Context;
        use std::process::{Command, Stdio};

        let dir = tempfile::tempdir()?;
        let status = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args([
                "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "1",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running the openssl CLI")?;
        anyhow::ensure!(status.success(), "openssl req failed ({status})");
        // s_server's port is on its command line: a port taken before it
        // binds means another attempt on another port.
        let dir_path = dir.path().to_path_buf();
        let (url, log, server) = gateway_testkit::retry_on_port_taken(|port| {
            let dir = dir_path.clone();
            async move {
                let url = format!("https://127.0.0.1:{port}{PATH}");
                let doc = serde_json::json!({
                    "client_id": url,
                    "client_name": "gateway e2e client (metadata document over https)",
                    "redirect_uris": [REDIRECT_URI],
                    "token_endpoint_auth_method": "none",
                });
                let file = dir.join(PATH.trim_start_matches('/'));
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&file, doc.to_string())?;
                let log = dir.join(format!("s_server-{port}.log"));
                let server = Command::new("openssl")
                    .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
                    .args(["-cert", "cert.pem", "-key", "key.pem", "-WWW"])
                    .current_dir(&dir)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(std::fs::File::create(&log)?)
                    .spawn()
                    .context("starting openssl s_server")?;
                let mut server = gateway_testkit::ChildGuard(server);
                let log_path = log.clone();
                gateway_testkit::wait_listening(
                    &mut server.0,
                    port,
                    || std::fs::read_to_string(&log_path).unwrap_or_default(),
                    std::time::Duration::from_secs(10),
                )
                .await?;
                Ok((url, log, server))
            }
        })
        .await?;
        Ok(Self {
            url,
            log,
            _server: server,
            _dir: dir,
        })
    }

    /// What `s_server` logged (handshake failures, files served).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
