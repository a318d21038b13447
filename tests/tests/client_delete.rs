//! RFC 7592 `DELETE /register/{id}` takes everything the client holds, as
//! `mcp-gateway clients delete` does (one implementation): its access tokens
//! are refused at the verifier (through the revocation feed, not by expiry),
//! its refresh tokens stop working, and neither `flows` nor `tokens list`
//! lists anything of it afterwards. Run in one-machine mode (`up`).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::time::Duration;

use gateway_common::config::Source;
use gateway_tests::faults_support::{
    authorize, browser, eventually, exchange, pkce, refresh, register_public,
};
use mcp_gateway::up;

async fn mcp_initialize(http: &reqwest::Client, mcp_url: &str, token: &str) -> u16 {
    gateway_testkit::mcp::initialize_status(http, mcp_url, token, "delete-test")
        .await
        .unwrap()
}

#[actix_web::test]
async fn rfc7592_delete_cuts_off_access_tokens_and_removes_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let args = gateway_tests::echo_up_args(dir.path().join("data"));
    let running = up::start(&args, &Source::default(), gateway_common::clock::system())
        .await
        .unwrap();
    let (user, password) = running.created_user.clone().unwrap();
    let base = running.issuer.clone();
    let mcp_url = running.mcp_url.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // Two clients of the same user: only the deleted one may lose anything.
    let mut grants = Vec::new();
    for _ in 0..2 {
        let (client_id, registration_token) = register_public(&http, &base).await.unwrap();
        let (verifier, challenge) = pkce();
        let code = authorize(
            &browser().unwrap(),
            &base,
            &client_id,
            (&user, &password),
            &challenge,
            &mcp_url,
        )
        .await
        .unwrap()
        .code;
        let tokens = exchange(&http, &base, &client_id, &code, &verifier, &mcp_url)
            .await
            .unwrap();
        let access = tokens["access_token"].as_str().unwrap().to_string();
        let refresh_token = tokens["refresh_token"].as_str().unwrap().to_string();
        assert_eq!(mcp_initialize(&http, &mcp_url, &access).await, 200);
        grants.push((client_id, registration_token, access, refresh_token));
    }
    let (gone, gone_rat, gone_access, gone_refresh) = grants[0].clone();
    let (kept, _, kept_access, kept_refresh) = grants[1].clone();
    let store = running.store.as_ref();
    assert!(mcp_gateway::flows::flows(store, None)
        .await
        .unwrap()
        .iter()
        .any(|f| f.client_id == gone));

    let r = http
        .delete(format!("{base}/register/{gone}"))
        .bearer_auth(&gone_rat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    // The access token is refused at the verifier well before its `exp`
    // (an hour away): the revocation reached it through the feed.
    assert!(
        eventually(Duration::from_secs(10), || async {
            mcp_initialize(&http, &mcp_url, &gone_access).await == 401
        })
        .await,
        "the deleted client's access token still passes the verifier"
    );
    let r = refresh(&http, &base, &gone, &gone_refresh).await.unwrap();
    assert_eq!(r.status(), 401, "a deleted client cannot refresh");
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_client"
    );

    // Nothing of it is listed any more.
    let flows = mcp_gateway::flows::flows(store, None).await.unwrap();
    assert!(
        flows.iter().all(|f| f.client_id != gone),
        "flows still lists the deleted client: {flows:?}"
    );
    let fams = mcp_gateway::tokens::list(store, None, None).await.unwrap();
    assert!(
        fams.iter().all(|f| f.client_id != gone),
        "tokens list still lists the deleted client's grants"
    );
    let consents = mcp_authz::admin::consents_of_client(store, &gone)
        .await
        .unwrap();
    assert!(consents.is_empty());

    // The other client is untouched.
    assert!(flows.iter().any(|f| f.client_id == kept));
    assert!(fams.iter().any(|f| f.client_id == kept && !f.revoked));
    assert_eq!(mcp_initialize(&http, &mcp_url, &kept_access).await, 200);
    let r = refresh(&http, &base, &kept, &kept_refresh).await.unwrap();
    assert_eq!(r.status(), 200);

    running.handle.stop(true).await;
}
