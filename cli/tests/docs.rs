//! The operator's book (`docs/`) checked without mdBook: its structure, its
//! links, every `mcp-gateway` command it shows, and the configuration
//! reference against the variables the code actually reads — so the book
//! cannot drift from the code silently. (`mdbook build docs` renders it.)

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use mcp_gateway::commands::Cli;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn book_src() -> PathBuf {
    repo().join("docs/src")
}

fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            markdown_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

/// `[text](target)` link targets of a markdown text (code blocks excluded).
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    out
}

#[test]
fn every_summary_entry_exists_every_chapter_is_listed_and_links_resolve() {
    let src = book_src();
    assert!(repo().join("docs/book.toml").is_file());
    let summary = fs::read_to_string(src.join("SUMMARY.md")).unwrap();
    let listed: BTreeSet<PathBuf> = links(&summary).iter().map(|l| src.join(l)).collect();
    assert!(listed.len() >= 10, "{listed:?}");
    for chapter in &listed {
        assert!(
            chapter.is_file(),
            "SUMMARY.md names a missing chapter {}",
            chapter.display()
        );
    }
    let mut files = Vec::new();
    markdown_files(&src, &mut files);
    for f in &files {
        if f.ends_with("SUMMARY.md") {
            continue;
        }
        assert!(listed.contains(f), "{} is not in SUMMARY.md", f.display());
        let text = fs::read_to_string(f).unwrap();
        for link in links(&text) {
            if link.starts_with("http://") || link.starts_with("https://") || link.starts_with('#')
            {
                continue;
            }
            let path = link.split('#').next().unwrap();
            let target = f.parent().unwrap().join(path);
            assert!(
                target.exists(),
                "{}: link {link} does not resolve ({})",
                f.display(),
                target.display()
            );
        }
    }
    for section in [
        "quick-start.md",
        "architecture.md",
        "configuration.md",
        "clients.md",
        "migration.md",
        "security.md",
        "deployment/compose.md",
        "deployment/kubernetes.md",
        "deployment/nginx.md",
        "deployment/caddy.md",
    ] {
        assert!(
            listed.contains(&src.join(section)),
            "{section} missing from the book"
        );
    }
}

/// Every line of every ```sh block that runs `mcp-gateway` (directly, after
/// `VAR=value` assignments, or as `cargo run -p mcp-gateway -- …`).
fn documented_commands() -> Vec<(String, Vec<String>)> {
    let mut files = Vec::new();
    markdown_files(&book_src(), &mut files);
    files.push(repo().join("README.md"));
    let mut out = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        let mut in_sh = false;
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with("```") {
                in_sh = t == "```sh";
                continue;
            }
            if !in_sh || t.is_empty() || t.starts_with('#') {
                continue;
            }
            let words =
                shell_words::split(t).unwrap_or_else(|e| panic!("{}: {t}: {e}", f.display()));
            let words: Vec<String> = words
                .into_iter()
                .skip_while(|w| {
                    w.contains('=') && w.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                })
                .collect();
            let argv = if words.first().is_some_and(|w| w == "mcp-gateway") {
                words
            } else if words.starts_with(&["cargo".into(), "run".into()])
                && words.iter().any(|w| w == "mcp-gateway")
            {
                let Some(dash) = words.iter().position(|w| w == "--") else {
                    continue;
                };
                std::iter::once("mcp-gateway".to_string())
                    .chain(words[dash + 1..].iter().cloned())
                    .collect()
            } else {
                continue;
            };
            out.push((format!("{}: {t}", f.display()), argv));
        }
    }
    out
}

#[test]
fn every_command_in_the_docs_is_a_real_command_and_every_command_is_documented() {
    let commands = documented_commands();
    assert!(commands.len() > 20, "{commands:?}");
    let mut used = BTreeSet::new();
    for (where_, argv) in &commands {
        if let Err(e) = Cli::try_parse_from(argv) {
            panic!("{where_}\ndoes not parse: {e}");
        }
        used.insert(argv[1].clone());
        if argv.len() > 2 && (argv[1] == "clients" || argv[1] == "tokens") {
            used.insert(format!("{} {}", argv[1], argv[2]));
        }
    }
    let cli = Cli::command();
    for sub in cli.get_subcommands() {
        let name = sub.get_name().to_string();
        assert!(
            used.contains(&name),
            "`mcp-gateway {name}` is not shown in the docs"
        );
        for nested in sub.get_subcommands() {
            let full = format!("{name} {}", nested.get_name());
            assert!(
                used.contains(&full),
                "`mcp-gateway {full}` is not shown in the docs"
            );
        }
    }
}

#[test]
fn just_recipes_are_the_cli_commands() {
    let text = fs::read_to_string(repo().join("justfile")).unwrap();
    let recipes: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with([' ', '\t', '#']) && !l.contains(":=") && l.contains(':'))
        .map(|l| l.split([' ', ':']).next().unwrap().to_string())
        .collect();
    let cli: BTreeSet<String> = Cli::command()
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for c in &cli {
        assert!(recipes.contains(c), "justfile has no recipe {c}");
    }
    for r in &recipes {
        assert!(
            cli.contains(r) || r == "test" || r == "docs",
            "justfile recipe {r} is not a CLI command"
        );
    }
}

/// Variable names the crates read from their `Source`: `x.get("NAME")`,
/// `.string/.required/.bool/.seconds/.u64/.list("NAME", …)`, helpers called as
/// `f(src, "NAME", …)`, `std::env::var("NAME")`, and per-service names built
/// as `format!("MCP_{…}_SUFFIX")` (reported as `MCP_<NAME>_SUFFIX`). Test
/// modules are not scanned.
fn variables_in_code() -> BTreeMap<String, BTreeSet<String>> {
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for crate_dir in [
        "common",
        "store",
        "authz-server",
        "verifier",
        "mcp-bridge",
        "connect",
        "cli",
    ] {
        let mut files = Vec::new();
        rust_files(&repo().join(crate_dir).join("src"), &mut files);
        for f in files {
            let text = fs::read_to_string(&f).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for name in scan(code) {
                found.entry(name).or_default().insert(crate_dir.to_string());
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_var(s: &str) -> bool {
    s.len() >= 3
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The string literal starting right at `s` (after optional spaces), if any.
fn literal_at(s: &str) -> Option<&str> {
    let s = s.trim_start().strip_prefix('"')?;
    Some(&s[..s.find('"')?])
}

fn scan(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    // Any call whose first argument is a NAME_WITH_UNDERSCORE literal (Source
    // methods, helpers and closures such as `size("RATE_LIMIT_MAX_BODY_BYTES", ..)`,
    // `strip_prefix("BRIDGE_ENV_")` for a family of names), and the Source
    // methods also for short names (`HOME`, `PATH`).
    let methods = [
        ".get",
        ".string",
        ".required",
        ".bool",
        ".seconds",
        ".u64",
        ".list",
        "env::var",
    ];
    for (i, _) in code.match_indices('(') {
        let called = code[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        let Some(lit) = literal_at(&code[i + 1..]) else {
            continue;
        };
        if !called || !is_var(lit) {
            continue;
        }
        // `strip_prefix("MCP_")` is `Source::enabled_services` reading
        // MCP_<NAME>_ENABLED (listed as indirect below); per-service names are
        // found through their `format!("MCP_{..}_X")`.
        if lit == "MCP_" {
            continue;
        }
        if lit.ends_with('_') {
            out.push(format!("{lit}<NAME>"));
        } else if lit.contains('_') || methods.iter().any(|m| code[..i].ends_with(m)) {
            out.push(lit.to_string());
        }
    }
    // Helpers taking the source first: `positive(src, "NAME", ..)`, however wrapped.
    for (i, _) in code.match_indices('(') {
        let rest = code[i + 1..].trim_start();
        let Some(rest) = rest
            .strip_prefix("&src")
            .or_else(|| rest.strip_prefix("src"))
        else {
            continue;
        };
        if let Some(lit) = rest.trim_start().strip_prefix(',').and_then(literal_at) {
            if is_var(lit) {
                out.push(lit.to_string());
            }
        }
    }
    // Names kept in constants: `const VAR: &str = "REVOCATION_FEED_SECRET";`.
    for (i, _) in code.match_indices("str = ") {
        if let Some(lit) = literal_at(&code[i + 5..]) {
            if is_var(lit) && lit.contains('_') {
                out.push(lit.to_string());
            }
        }
    }
    for (i, _) in code.match_indices("\"MCP_{") {
        let rest = &code[i + 1..];
        let lit = &rest[..rest.find('"').unwrap_or(0)];
        if let (Some(open), Some(close)) = (lit.find('{'), lit.find('}')) {
            let templated = format!("{}<NAME>{}", &lit[..open], &lit[close + 1..]);
            if is_var(&templated.replace("<NAME>", "X")) {
                out.push(templated);
            }
        }
    }
    out
}

#[test]
fn the_configuration_reference_lists_exactly_what_the_code_reads() {
    let doc = fs::read_to_string(book_src().join("configuration.md")).unwrap();
    let documented: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect();
    let code = variables_in_code();
    // Read outside a `Source` call the scanner sees: `Source::enabled_services`
    // parses every `MCP_<NAME>_ENABLED`, and tracing reads RUST_LOG itself.
    let indirect = ["MCP_<NAME>_ENABLED", "RUST_LOG"];
    let missing: Vec<_> = code
        .iter()
        .filter(|(name, _)| !documented.contains(*name))
        .map(|(name, crates)| {
            format!(
                "{name} (read in {})",
                crates.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    assert!(
        missing.is_empty(),
        "add these to docs/src/configuration.md:\n{}",
        missing.join("\n")
    );
    let stale: Vec<_> = documented
        .iter()
        .filter(|d| !code.contains_key(*d) && !indirect.contains(&d.as_str()))
        .collect();
    assert!(
        stale.is_empty(),
        "documented but no longer read by any crate: {stale:?}"
    );
    // The scanner itself finds what it must (a scanner that finds nothing would pass).
    for known in [
        "AUTH_ISSUER",
        "REDIS_URL",
        "MCP_<NAME>_URL",
        "ENV_FILE",
        "BRIDGE_COMMAND",
        "ACCESS_TOKEN_LIFETIME",
    ] {
        assert!(
            code.contains_key(known),
            "scanner missed {known}: {:?}",
            code.keys()
        );
    }
}

/// A default written in the code as a literal: `"text"`, `true`, `600`,
/// `10_000`, `30 * 24 * 3600`. Anything else (a constant, a field) is `None`.
fn literal_default(expr: &str) -> Option<String> {
    let expr = expr.trim();
    if let Some(text) = expr.strip_prefix('"') {
        return text.strip_suffix('"').map(str::to_string);
    }
    if expr == "true" || expr == "false" {
        return Some(expr.to_string());
    }
    let mut product: u64 = 1;
    for factor in expr.split('*') {
        product = product.checked_mul(factor.trim().replace('_', "").parse().ok()?)?;
    }
    Some(product.to_string())
}

#[test]
fn every_literal_default_in_the_code_is_the_documented_one() {
    let doc = fs::read_to_string(book_src().join("configuration.md")).unwrap();
    let documented: BTreeMap<String, String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| {
            let cols: Vec<&str> = l.split(" | ").collect();
            let name = cols.first()?.split('`').next()?.to_string();
            // The first `value` of the default column.
            let default = cols.get(2)?.split('`').nth(1).unwrap_or("—").to_string();
            Some((name, default))
        })
        .collect();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for crate_dir in [
        "common",
        "store",
        "authz-server",
        "verifier",
        "mcp-bridge",
        "connect",
        "cli",
    ] {
        let mut files = Vec::new();
        rust_files(&repo().join(crate_dir).join("src"), &mut files);
        for f in files {
            let text = fs::read_to_string(&f).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            // `NAME", default)` and `NAME", default, min, max)`: the reads with a default.
            for (i, _) in code.match_indices("\",") {
                let before = &code[..i];
                let Some(open) = before.rfind('"') else {
                    continue;
                };
                let name = &before[open + 1..];
                if !is_var(name) || !documented.contains_key(name) {
                    continue;
                }
                let call: String = before[..open]
                    .chars()
                    .rev()
                    .take(48)
                    .filter(|c| !c.is_whitespace())
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                let reads = [
                    ".string(",
                    ".bool(",
                    ".seconds(",
                    ".u64(",
                    "usize_var(src,",
                    "positive(src,",
                    "bounded(src,",
                    "base_url(src,",
                    "header_name(src,",
                ];
                if !reads.iter().any(|r| call.ends_with(r)) {
                    continue;
                }
                let rest = code[i + 2..].trim_start();
                let end = rest.find([',', ')']).unwrap_or(rest.len());
                let Some(default) = literal_default(&rest[..end]) else {
                    continue;
                };
                checked += 1;
                if documented[name] != default {
                    wrong.push(format!(
                        "{name}: the code says {default:?}, docs/src/configuration.md {:?} ({})",
                        documented[name],
                        f.display()
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The reader found the reads (a reader that finds nothing would pass).
    assert!(checked > 40, "only {checked} defaults found");
}
