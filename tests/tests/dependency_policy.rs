//! deny.toml's licence allow-list, its crates.io-only sources and its ban on wildcard
//! requirements, enforced on `cargo metadata` for every crate the workspace builds or
//! tests with. cargo-deny itself is not run in the suite: building it took about eight
//! minutes on this project's two-core machines; `cargo deny --offline check licenses bans
//! sources` reads the same deny.toml where it is installed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn deny_toml() -> toml::Table {
    let text = std::fs::read_to_string(workspace().join("deny.toml")).expect("deny.toml");
    toml::from_str(&text).expect("deny.toml parses")
}

fn strings(v: Option<&toml::Value>) -> Vec<String> {
    v.and_then(toml::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `cargo metadata` for deny.toml's target platforms (crates of other platforms need not
/// be downloaded, so `--offline` works wherever the workspace has been built).
fn metadata(deny: &toml::Table) -> Value {
    let targets = strings(deny.get("graph").and_then(|g| g.get("targets")));
    assert!(!targets.is_empty(), "deny.toml: [graph] targets is empty");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace()).args([
        "metadata",
        "--locked",
        "--offline",
        "--format-version",
        "1",
    ]);
    for t in &targets {
        cmd.args(["--filter-platform", t]);
    }
    let out = cmd.output().expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// An SPDX licence expression (`A OR B`, `A AND B`, `A WITH exception`, parentheses;
/// the legacy `A/B` means `A OR B`), satisfied when some choice among its `OR`s uses
/// only licences in `allowed` (`A WITH e` must be allowed as written).
fn satisfied(expr: &str, allowed: &BTreeSet<String>) -> Result<bool, String> {
    let spaced = expr
        .replace('(', " ( ")
        .replace(')', " ) ")
        .replace('/', " OR ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut pos = 0;
    let ok = or_expr(&tokens, &mut pos, allowed)?;
    if pos != tokens.len() {
        return Err(format!("unexpected {:?} in {expr:?}", tokens[pos]));
    }
    Ok(ok)
}

fn or_expr(t: &[&str], pos: &mut usize, allowed: &BTreeSet<String>) -> Result<bool, String> {
    let mut ok = and_expr(t, pos, allowed)?;
    while t.get(*pos) == Some(&"OR") {
        *pos += 1;
        ok |= and_expr(t, pos, allowed)?;
    }
    Ok(ok)
}

fn and_expr(t: &[&str], pos: &mut usize, allowed: &BTreeSet<String>) -> Result<bool, String> {
    let mut ok = term(t, pos, allowed)?;
    while t.get(*pos) == Some(&"AND") {
        *pos += 1;
        ok &= term(t, pos, allowed)?;
    }
    Ok(ok)
}

fn term(t: &[&str], pos: &mut usize, allowed: &BTreeSet<String>) -> Result<bool, String> {
    match t.get(*pos) {
        Some(&"(") => {
            *pos += 1;
            let ok = or_expr(t, pos, allowed)?;
            if t.get(*pos) != Some(&")") {
                return Err("unbalanced parentheses".into());
            }
            *pos += 1;
            Ok(ok)
        }
        Some(id) if !matches!(*id, ")" | "AND" | "OR" | "WITH") => {
            *pos += 1;
            let mut licence = id.to_string();
            if t.get(*pos) == Some(&"WITH") {
                let exception = t.get(*pos + 1).ok_or("WITH needs an exception")?;
                licence = format!("{licence} WITH {exception}");
                *pos += 2;
            }
            Ok(allowed.contains(&licence))
        }
        other => Err(format!("expected a licence, found {other:?}")),
    }
}

#[test]
fn the_licence_evaluator_reads_spdx_as_cargo_deny_does() {
    let allowed: BTreeSet<String> = ["MIT", "Apache-2.0", "Apache-2.0 WITH LLVM-exception"]
        .into_iter()
        .map(String::from)
        .collect();
    for (expr, want) in [
        ("MIT", true),
        ("GPL-3.0-only", false),
        ("MIT OR GPL-3.0-only", true),
        ("MIT AND GPL-3.0-only", false),
        ("(MIT OR Apache-2.0) AND Unicode-3.0", false),
        ("(MIT OR Apache-2.0) AND (GPL-2.0-only OR MIT)", true),
        ("MIT/Apache-2.0", true),
        ("Apache-2.0 WITH LLVM-exception", true),
        ("MIT WITH LLVM-exception", false),
    ] {
        assert_eq!(satisfied(expr, &allowed), Ok(want), "{expr}");
    }
    assert!(satisfied("MIT AND", &allowed).is_err());
    assert!(satisfied("(MIT", &allowed).is_err());
}

#[test]
fn every_crate_has_an_allowed_licence_and_comes_from_crates_io() {
    let deny = deny_toml();
    let licences = deny.get("licenses").expect("deny.toml: [licenses]");
    let allowed: BTreeSet<String> = strings(licences.get("allow")).into_iter().collect();
    let mut exceptions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in licences
        .get("exceptions")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = e.get("crate").and_then(toml::Value::as_str).expect("crate");
        exceptions
            .entry(name.to_string())
            .or_default()
            .extend(strings(e.get("allow")));
    }
    let sources = deny.get("sources").expect("deny.toml: [sources]");
    assert!(
        strings(sources.get("allow-git")).is_empty(),
        "no git dependencies"
    );
    let registries: BTreeSet<String> = strings(sources.get("allow-registry"))
        .iter()
        .map(|r| format!("registry+{r}"))
        .collect();
    assert_eq!(
        registries,
        BTreeSet::from(["registry+https://github.com/rust-lang/crates.io-index".to_string()]),
        "crates.io only"
    );

    let meta = metadata(&deny);
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let in_graph: BTreeSet<&str> = meta["resolve"]["nodes"]
        .as_array()
        .expect("resolve")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let mut offences = Vec::new();
    let mut checked = 0;
    let mut used_exceptions = BTreeSet::new();
    for p in meta["packages"].as_array().expect("packages") {
        let id = p["id"].as_str().unwrap_or_default();
        if !in_graph.contains(id) {
            continue;
        }
        checked += 1;
        let name = p["name"].as_str().unwrap_or_default();
        let version = p["version"].as_str().unwrap_or_default();
        let mut allowed_here = allowed.clone();
        if let Some(extra) = exceptions.get(name) {
            allowed_here.extend(extra.iter().cloned());
        }
        match p["license"].as_str() {
            None => offences.push(format!("{name} {version}: no SPDX licence expression")),
            Some(expr) => match satisfied(expr, &allowed_here) {
                Ok(true) => {
                    if exceptions.contains_key(name) && satisfied(expr, &allowed) != Ok(true) {
                        used_exceptions.insert(name.to_string());
                    }
                }
                Ok(false) => offences.push(format!(
                    "{name} {version}: licence {expr:?} is not allowed by deny.toml"
                )),
                Err(e) => offences.push(format!("{name} {version}: licence {expr:?}: {e}")),
            },
        }
        match p["source"].as_str() {
            None if members.contains(id) => {}
            None => offences.push(format!(
                "{name} {version}: a path dependency outside the workspace"
            )),
            Some(s) if registries.contains(s) => {}
            Some(s) => offences.push(format!("{name} {version}: from {s}, not crates.io")),
        }
        if members.contains(id) {
            for d in p["dependencies"].as_array().into_iter().flatten() {
                if d["req"] == "*" && d["path"].is_null() {
                    offences.push(format!(
                        "{name}: wildcard requirement on {}",
                        d["name"].as_str().unwrap_or_default()
                    ));
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} crates in the graph");
    assert!(offences.is_empty(), "{}", offences.join("\n"));
    let stale: Vec<_> = exceptions
        .keys()
        .filter(|k| !used_exceptions.contains(*k))
        .collect();
    assert!(
        stale.is_empty(),
        "deny.toml: licence exceptions no crate needs any more: {stale:?}"
    );
}
