//! The layering rules, checked on the source (docs/src/architecture.md):
//!
//! * protocol modules import neither the web framework nor the store, nor
//!   anything that does I/O (`tokio`, `reqwest`, `redis`), nor the modules
//!   that do (`crate::state`, `crate::http`);
//! * inside the crates listed in [`ACYCLIC`], no two modules import each other,
//!   directly or through others.
//!
//! The scan reads `crate::…` and `super::…` paths outside comments and test
//! modules; it is deliberately simple, so the rules stay simple too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Words a protocol module must not contain (outside comments and tests).
const FORBIDDEN: &[&str] = &[
    "actix",
    "gateway_store",
    "tokio",
    "reqwest",
    "redis",
    "crate::state",
    "crate::http",
];

/// Protocol modules, by crate: a whole folder, or single files.
const PROTOCOL: &[(&str, &[&str])] = &[
    ("authz-server", &["protocol/"]),
    (
        "verifier",
        &[
            "cache.rs",
            "decision.rs",
            "forwarded.rs",
            "jwt.rs",
            "negative.rs",
            "policy.rs",
            "revoked.rs",
            "token.rs",
        ],
    ),
    ("mcp-bridge", &["jsonrpc.rs"]),
    ("connect", &["challenge.rs"]),
    (
        "common",
        &[
            "authority.rs",
            "claims.rs",
            "crypto.rs",
            "dpop.rs",
            "jsonrpc.rs",
            "keys.rs",
            "mcp_header.rs",
            "mcp_version.rs",
            "pkce.rs",
            "sse.rs",
        ],
    ),
];

/// Crates whose modules form no import cycle.
const ACYCLIC: &[&str] = &[
    "authz-server",
    "cli",
    "common",
    "connect",
    "mcp-bridge",
    "store",
    "verifier",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without its test module and without comment lines.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let before_tests = text.split("#[cfg(test)]").next().unwrap_or_default();
    before_tests
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| l.split(" // ").next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `a::b` for `src/a/b.rs` and `src/a/b/mod.rs`; `` for lib.rs and main.rs.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// Paths after `prefix` (`crate::` or `super::`): `a::b::c`.
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    code.match_indices(prefix)
        .filter(|(i, _)| {
            // A whole word: not `my_crate::`.
            *i == 0
                || !code.as_bytes()[i - 1].is_ascii_alphanumeric() && code.as_bytes()[i - 1] != b'_'
        })
        .map(|(i, _)| {
            let rest = &code[i + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            rest[..end].trim_end_matches(':')
        })
        .collect()
}

/// The longest known module a path starts with.
fn resolve(modules: &BTreeSet<String>, path: &str) -> Option<String> {
    let segs: Vec<&str> = path.split("::").collect();
    (1..=segs.len())
        .rev()
        .map(|n| segs[..n].join("::"))
        .find(|m| modules.contains(m))
}

fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(src, f)).collect();
    let mut graph = BTreeMap::new();
    for f in &files {
        let m = module_of(src, f);
        let text = code(f);
        let mut targets = BTreeSet::new();
        for p in paths_after(&text, "crate::") {
            targets.extend(resolve(&modules, p));
        }
        // `super::` names the parent module (of `a/b.rs` and of `a/b/mod.rs` alike: `a`).
        let segs: Vec<&str> = m.split("::").collect();
        let above = &segs[..segs.len().saturating_sub(1)];
        for p in paths_after(&text, "super::") {
            let mut full: Vec<&str> = above.to_vec();
            full.extend(p.split("::"));
            targets.extend(resolve(&modules, &full.join("::")));
        }
        // A module naming its own parent or child is not a cycle of concern.
        targets.retain(|t| t != &m && !m.starts_with(&format!("{t}::")) && !t.is_empty());
        graph.insert(m, targets);
    }
    graph
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct S<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut S<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        let g = s.g;
        for w in g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = S {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn protocol_modules_import_neither_the_web_framework_nor_the_store() {
    let mut offences = Vec::new();
    let mut checked = 0;
    for (krate, entries) in PROTOCOL {
        let src = workspace().join(krate).join("src");
        for entry in *entries {
            let mut files = Vec::new();
            if entry.ends_with('/') {
                rust_files(&src.join(entry), &mut files);
            } else {
                files.push(src.join(entry));
            }
            assert!(!files.is_empty(), "{krate}/src/{entry}: nothing to check");
            for f in files {
                assert!(f.exists(), "{} is listed but missing", f.display());
                checked += 1;
                let text = code(&f);
                for word in FORBIDDEN {
                    if text.contains(word) {
                        offences.push(format!("{} uses {word}", f.display()));
                    }
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} files checked");
    assert!(offences.is_empty(), "{}", offences.join("\n"));
}

#[test]
fn modules_do_not_import_each_other_in_a_circle() {
    for krate in ACYCLIC {
        let graph = import_graph(&workspace().join(krate).join("src"));
        assert!(graph.len() > 3, "{krate}: the scan found no modules");
        let found = cycles(&graph);
        assert!(found.is_empty(), "{krate}: import cycles {found:?}");
    }
}

/// The checks themselves: a cycle and a forbidden import are seen.
#[test]
fn the_scan_sees_a_cycle_and_a_framework_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("http")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod http;\n").expect("write");
    std::fs::write(src.join("a.rs"), "use crate::http::b::thing;\n").expect("write");
    std::fs::write(src.join("http/mod.rs"), "pub mod b;\npub mod c;\n").expect("write");
    std::fs::write(
        src.join("http/b.rs"),
        "use super::c::x;\n// crate::a in a comment\n",
    )
    .expect("write");
    std::fs::write(
        src.join("http/c.rs"),
        "use crate::a::y;\nuse actix_web::web;\n",
    )
    .expect("write");
    let graph = import_graph(&src);
    assert!(graph.contains_key("http::b") && graph.contains_key("http"));
    assert_eq!(
        cycles(&graph),
        vec![vec!["a".to_string(), "http::b".into(), "http::c".into()]]
    );
    assert!(code(&src.join("http/c.rs")).contains("actix"));
    assert!(!code(&src.join("http/b.rs")).contains("crate::a"));
}
