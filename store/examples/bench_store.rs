//! Side-by-side latency of the two backends for the operations the gateway's
//! hot-ish paths use (issuing a code: put; redeeming it: take; rotating a
//! refresh token: compare-and-swap; reading: get).
//!
//! `cargo run -p gateway-store --example bench_store [-- N]` — starts a private
//! redis-server and an embedded store in a temp dir, runs N sequential operations
//! of each kind, and prints microseconds per operation and the embedded/redis ratio.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_store::{EmbeddedStore, RedisStore, Store};

async fn time_each<F, Fut>(n: usize, mut op: F) -> anyhow::Result<Duration>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let start = Instant::now();
    for i in 0..n {
        op(i).await?;
    }
    Ok(start.elapsed() / u32::try_from(n.max(1))?)
}

async fn run(store: Arc<dyn Store>, n: usize) -> anyhow::Result<Vec<(&'static str, Duration)>> {
    let ttl = Some(Duration::from_secs(600));
    let s = store.clone();
    let put = time_each(n, |i| {
        let s = s.clone();
        async move {
            Ok(
                s.put(&format!("bench:{i}"), b"authorization-grant-record", ttl)
                    .await?,
            )
        }
    })
    .await?;
    let get = time_each(n, |i| {
        let s = s.clone();
        async move {
            s.get(&format!("bench:{i}"))
                .await
                .map(drop)
                .map_err(Into::into)
        }
    })
    .await?;
    let cas = time_each(n, |i| {
        let s = s.clone();
        async move {
            let k = format!("bench:{i}");
            s.compare_and_swap(&k, b"authorization-grant-record", Some(b"rotated"), ttl)
                .await?;
            Ok(())
        }
    })
    .await?;
    let take = time_each(n, |i| {
        let s = s.clone();
        async move {
            s.take(&format!("bench:{i}"))
                .await
                .map(drop)
                .map_err(Into::into)
        }
    })
    .await?;
    Ok(vec![
        ("put", put),
        ("get", get),
        ("compare_and_swap", cas),
        ("take", take),
    ])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(2000);
    let dir = tempfile::tempdir()?;
    let embedded: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(dir.path().join("bench.redb")).await?);
    let server = gateway_testkit::RedisServer::start().await?;
    let redis: Arc<dyn Store> = Arc::new(RedisStore::connect(&server.url(0), None).await?);
    redis.ping().await?;

    let e = run(embedded, n).await?;
    let r = run(redis, n).await?;
    println!("{n} sequential operations each; µs per operation");
    println!(
        "{:<18} {:>10} {:>10} {:>16}",
        "operation", "embedded", "redis", "embedded/redis"
    );
    for ((name, te), (_, tr)) in e.iter().zip(r.iter()) {
        println!(
            "{:<18} {:>10.1} {:>10.1} {:>16.2}",
            name,
            te.as_secs_f64() * 1e6,
            tr.as_secs_f64() * 1e6,
            te.as_secs_f64() / tr.as_secs_f64()
        );
    }
    Ok(())
}
