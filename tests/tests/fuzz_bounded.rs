//! The cargo-fuzz targets (`fuzz/src/lib.rs`) run on stable Rust for a bounded
//! time, in the ordinary test suite: a small mutation fuzzer (no coverage
//! feedback) seeded from `fuzz/seeds/<target>/`. It finds shallow crashes and
//! broken properties on every machine; `cargo fuzz run` (fuzz/README.md) is the
//! deep, coverage-guided run.
//!
//! `FUZZ_SECONDS` (default 40) is the budget across all targets; `FUZZ_SEED`
//! replays a run.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// xorshift64*: reproducible from `FUZZ_SEED`, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Bytes that matter to the parsers under test.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b".",
    b"%",
    b"%2",
    b"%00",
    b"+",
    b"=",
    b"&",
    b"\n",
    b"\r\n",
    b" ",
    b"\0",
    b"\\u0000",
    b"\xff",
    b"\xc3\xa9",
    b"../",
    b"//",
    b"#",
    b"?",
    b"@",
    b"[::1]",
    b"127.0.0.1",
    b"localhost",
    b":65535",
    b":99999",
    b"http://",
    b"https://",
    b"null",
    b"true",
    b"-1",
    b"1e309",
    b"18446744073709551616",
    b"Bearer ",
    b"Basic ",
    b"jsonrpc",
    b"\"2.0\"",
    b"\"id\"",
    b"\"method\"",
    b"X-Forwarded-Host: ",
    b"X-Forwarded-Uri: ",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, pool: &[Vec<u8>]) {
    for _ in 0..=rng.below(4) {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                input.insert(i, rng.next() as u8);
            }
            2 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                input.drain(a..b);
            }
            3 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let i = rng.below(len + 1);
                input.splice(i..i, t.iter().copied());
            }
            4 if len > 0 => {
                // Repeat a slice: deep nesting, long values.
                let a = rng.below(len);
                let b = (a + 1 + rng.below(8)).min(len);
                let piece = input[a..b].to_vec();
                for _ in 0..=rng.below(64) {
                    input.splice(a..a, piece.iter().copied());
                }
            }
            5 if !pool.is_empty() => {
                let other = &pool[rng.below(pool.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
            _ => {
                let i = rng.below(len + 1);
                input.truncate(i);
            }
        }
    }
    input.truncate(64 * 1024);
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = gateway_testkit::repo_root().join("fuzz/seeds").join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| std::fs::read(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    out.push(Vec::new());
    out
}

#[test]
fn every_fuzz_target_survives_a_bounded_run() {
    let total: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x9E37_79B9_7F4A_7C15);
    let per_target = Duration::from_secs(total) / targets::TARGETS.len() as u32;
    // Quiet the default hook: a caught panic is reported below with its input.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut report = Vec::new();
    let mut failure = None;
    for (name, run) in targets::TARGETS {
        let mut pool = seeds(name);
        assert!(pool.len() > 1, "fuzz/seeds/{name} is empty or missing");
        let mut rng = Rng(seed ^ name.len() as u64 ^ 0xD1B5_4A32_D192_ED03);
        let start = Instant::now();
        let mut execs = 0u64;
        // Seeds first, as they are.
        let mut queue: Vec<Vec<u8>> = pool.clone();
        while failure.is_none() && start.elapsed() < per_target {
            let input = queue.pop().unwrap_or_else(|| {
                let mut m = pool[rng.below(pool.len())].clone();
                mutate(&mut rng, &mut m, &pool);
                m
            });
            execs += 1;
            if catch_unwind(AssertUnwindSafe(|| run(&input))).is_err() {
                failure = Some((name, input));
                break;
            }
            // Keep a few mutants as new parents, so mutations compound.
            if execs.is_multiple_of(64) && pool.len() < 512 {
                pool.push(input);
            }
        }
        report.push(format!("{name}: {execs} inputs in {:.1?}", start.elapsed()));
    }
    std::panic::set_hook(hook);
    eprintln!("{}", report.join("\n"));
    if let Some((name, input)) = failure {
        // Re-run outside catch_unwind for the panic message, after printing the input.
        eprintln!(
            "fuzz target {name} failed on {} bytes: {:?}\nreplay: FUZZ_SEED={seed}",
            input.len(),
            String::from_utf8_lossy(&input)
        );
        run_named(name, &input);
        panic!("fuzz target {name} panicked");
    }
}

fn run_named(name: &str, input: &[u8]) {
    for (n, run) in targets::TARGETS {
        if *n == name {
            run(input);
        }
    }
}
