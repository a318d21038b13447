//! Memory under a flood of concurrent sign-ins, alone in its own test
//! binary so no other test's allocations blur the measurement.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

// The allocator the gateway's binaries ship with (cli/src/main.rs), so the
// memory measured here is the memory an operator would see.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use gateway_tests::abuse_support::*;

/// Memory under a flood of concurrent sign-ins: argon2id takes ~19 MiB per
/// hash, so hashing runs under a permit. 64 attempts at once, from 64
/// addresses, must not hold 64 hashes' memory at once.
#[actix_web::test]
async fn concurrent_sign_ins_hash_a_bounded_number_at_once() {
    let g = Arc::new(
        Gateway::start(
            &[("PASSWORD_HASH_CONCURRENCY", "2")],
            gateway_common::clock::system(),
        )
        .await,
    );
    // Each attacker prepares its form first, so the 64 posts land together.
    let mut prepared = Vec::new();
    for n in 100..164u8 {
        let browser = client_from(&attacker(n));
        let id = register_from(&g, &browser).await;
        let (req, csrf) = sign_in_form(&g, &browser, &id).await;
        prepared.push((browser, req, csrf));
    }
    let rss = || {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    };
    let (before, _) = rss();
    let results =
        futures_util::future::join_all(prepared.iter().enumerate().map(|(i, (b, req, csrf))| {
            let g = Arc::clone(&g);
            // A name each, so the per-account throttle stays out of the way.
            let name = format!("nobody{i}");
            async move {
                b.post(g.url("/signin"))
                    .form(&[
                        ("req", req.as_str()),
                        ("csrf", csrf.as_str()),
                        ("username", name.as_str()),
                        ("password", "wrong"),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        }))
        .await;
    let (_, peak) = rss();
    assert!(
        results.iter().all(|s| *s == 401 || *s == 503),
        "{results:?}"
    );
    assert!(results.iter().filter(|s| **s == 401).count() >= 1);
    // 64 × 19 MiB would be 1.2 GiB; two at a time is ~40 MiB. The bound
    // leaves room for everything else this process runs meanwhile.
    let grown_kib = peak.saturating_sub(before);
    assert!(
        grown_kib < 400 * 1024,
        "peak RSS grew by {} MiB during 64 concurrent sign-ins",
        grown_kib / 1024
    );
    g.legitimate_client(&[]).await;
}
