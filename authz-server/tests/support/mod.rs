//! Shared helpers for the sign-in tests: the GitHub stand-in and a browser
//! that follows one redirect at a time.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test harness

pub mod github_standin;

/// GET `url` with `client` (no automatic redirects) and return the response.
pub async fn get(client: &reqwest::Client, url: &str) -> reqwest::Response {
    client.get(url).send().await.unwrap()
}

/// The `Location` of a redirect, made absolute against `base` when relative.
pub fn next_url(base: &str, resp: &reqwest::Response) -> String {
    let loc = resp
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no location on {}", resp.status()))
        .to_str()
        .unwrap()
        .to_string();
    if loc.starts_with('/') {
        format!("{base}{loc}")
    } else {
        loc
    }
}
