//! Every operator command against both stores (embedded in a temp dir, a real
//! private redis-server), through the library functions the CLI calls.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use gateway_common::flow::FlowStep;
use gateway_common::revocation::{
    grant_revocation_id, revoked_key, RevocationEvent, REVOCATION_CHANNEL,
};
use gateway_store::Store;
use mcp_authz::protocol::records::*;
use mcp_gateway::{backup, clients, flows, tokens};

#[tokio::test]
async fn clients_list_show_and_delete_revoke_tokens_and_publish() {
    let stores = Stores::start().await;
    for (backend, store) in stores.both() {
        let now = now();
        seed(store, now).await;
        let list = clients::list(store).await.unwrap();
        let ids: Vec<_> = list.iter().map(|c| c.client_id.as_str()).collect();
        assert_eq!(ids, ["c-claude", "c-test"], "{backend}");
        assert_eq!(list[1].active_families, 2, "{backend}");
        assert!(clients::render_list(&list).contains("test-client-1"));

        let shown = clients::show(store, "c-test").await.unwrap();
        assert_eq!(shown.families.len(), 2);
        assert_eq!(shown.consent_users, ["local:alice", "local:bob"]);
        let text = clients::render_show(&shown);
        assert!(
            text.contains("fam-a") && !text.contains(&"ab".repeat(32)),
            "{text}"
        );
        assert!(clients::show(store, "nope").await.is_err());

        let mut events = store.subscribe(REVOCATION_CHANNEL).await.unwrap();
        let report = clients::delete(store, now, "c-test").await.unwrap();
        assert_eq!(
            report,
            clients::DeleteReport {
                clients_deleted: 1,
                families_revoked: 2,
                // One revocation per grant: every access token carries its `sid`.
                access_tokens_revoked: 2,
                consents_deleted: 2
            },
            "{backend}"
        );
        // Verifiers hear about every grant, as from the authz-server.
        let mut heard = Vec::new();
        for _ in 0..2 {
            let raw = tokio::time::timeout(Duration::from_secs(5), events.next())
                .await
                .unwrap()
                .unwrap();
            heard.push(serde_json::from_slice::<RevocationEvent>(&raw).unwrap().jti);
        }
        heard.sort();
        let mut want = [
            grant_revocation_id(&grant_sid("fam-a")),
            grant_revocation_id(&grant_sid("fam-b")),
        ];
        want.sort();
        assert_eq!(heard, want, "{backend}");
        let grant_a = revoked_key(&grant_revocation_id(&grant_sid("fam-a")));
        let rev: RevocationEvent = get_json(store, &grant_a).await.unwrap();
        assert_eq!(
            rev.exp,
            now + HOUR,
            "kept until the grant's newest access token lapses"
        );
        let ttl = store.ttl(&grant_a).await.unwrap().unwrap().unwrap();
        assert!(ttl <= Duration::from_secs(HOUR) && ttl > Duration::from_secs(HOUR - 10));
        // Records of a deleted client go with it (the grant's revocation stays).
        assert!(store.get(&family_key("fam-a")).await.unwrap().is_none());
        assert!(tokens::list(store, None, Some("c-test"))
            .await
            .unwrap()
            .is_empty());
        assert!(store.get(&client_key("c-test")).await.unwrap().is_none());
        assert!(store
            .get(&consent_key("local:alice", "c-test"))
            .await
            .unwrap()
            .is_none());
        // The other client is untouched.
        let other: RefreshFamily = get_json(store, &family_key("fam-c")).await.unwrap();
        assert!(!other.revoked);
        assert!(store
            .get(&consent_key("local:alice", "c-claude"))
            .await
            .unwrap()
            .is_some());
        assert!(clients::delete(store, now, "c-test").await.is_err());
    }
}

#[tokio::test]
async fn delete_test_removes_only_clients_whose_name_matches() {
    let stores = Stores::start().await;
    for (backend, store) in stores.both() {
        let now = now();
        seed(store, now).await;
        put_json(
            store,
            &client_key("c-noname"),
            &client("c-noname", None, now),
            None,
        )
        .await;
        let (matched, report) = clients::delete_matching(store, now, "test-*", true)
            .await
            .unwrap();
        assert_eq!(matched, ["c-test\ttest-client-1"], "{backend}");
        assert_eq!(report, clients::DeleteReport::default());
        assert!(store.get(&client_key("c-test")).await.unwrap().is_some());

        let (matched, report) = clients::delete_matching(store, now, "test-*", false)
            .await
            .unwrap();
        assert_eq!(matched.len(), 1);
        assert_eq!(report.clients_deleted, 1);
        assert_eq!(report.families_revoked, 2);
        let left: Vec<_> = clients::list(store)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.client_id)
            .collect();
        assert_eq!(left, ["c-claude", "c-noname"], "{backend}");
    }
}

#[tokio::test]
async fn tokens_list_revoke_and_revoke_user() {
    let stores = Stores::start().await;
    for (backend, store) in stores.both() {
        let now = now();
        seed(store, now).await;
        let alice = tokens::list(store, Some("alice"), None).await.unwrap();
        assert_eq!(
            alice
                .iter()
                .map(|f| f.family_id.as_str())
                .collect::<Vec<_>>(),
            ["fam-a", "fam-c"]
        );
        let by_sub = tokens::list(store, Some("local:alice"), Some("c-test"))
            .await
            .unwrap();
        assert_eq!(by_sub.len(), 1);
        assert!(tokens::render_list(&by_sub, now).contains("jti-a2"));

        // A refresh token `<family>.<secret>` revokes its family.
        let r = tokens::revoke(
            store,
            now,
            "fam-c.c2VjcmV0LXBhcnQtb2YtdGhlLXRva2VuLXh4eHh4eHg",
        )
        .await
        .unwrap();
        assert_eq!(
            r,
            tokens::Revoked::Family {
                family_id: "fam-c".into(),
                access_tokens: 1
            },
            "{backend}"
        );
        assert!(
            get_json::<RefreshFamily>(store, &family_key("fam-c"))
                .await
                .unwrap()
                .revoked
        );
        // A jti revokes only that access token.
        let r = tokens::revoke(store, now, "jti-a2").await.unwrap();
        assert_eq!(
            r,
            tokens::Revoked::AccessToken {
                jti: "jti-a2".into()
            }
        );
        assert!(store.get(&revoked_key("jti-a2")).await.unwrap().is_some());
        let grant_a = revoked_key(&grant_revocation_id(&grant_sid("fam-a")));
        assert!(store.get(&grant_a).await.unwrap().is_none());
        assert!(
            !get_json::<RefreshFamily>(store, &family_key("fam-a"))
                .await
                .unwrap()
                .revoked
        );
        assert!(tokens::revoke(store, now, "no-such-thing").await.is_err());

        let report = tokens::revoke_user(store, now, "alice").await.unwrap();
        assert_eq!(
            report.families_revoked, 1,
            "{backend}: fam-c was already revoked"
        );
        assert_eq!(report.access_tokens_revoked, 1, "fam-a's grant");
        assert_eq!(report.sessions_ended, 1);
        assert!(store
            .get(&session_key("sess-alice"))
            .await
            .unwrap()
            .is_none());
        assert!(
            !get_json::<RefreshFamily>(store, &family_key("fam-b"))
                .await
                .unwrap()
                .revoked
        );
    }
}

#[tokio::test]
async fn purge_expired_deletes_lapsed_records_and_keeps_those_without_ttl() {
    let stores = Stores::start().await;
    for (backend, store) in stores.both() {
        let now = now();
        seed(store, now).await;
        let mut lapsed = family("fam-old", "c-test", "alice", now, None);
        lapsed.exp = now - 10;
        put_json(store, &family_key("fam-old"), &lapsed, Some(HOUR)).await;
        let mut permanent = family("fam-pinned", "c-test", "alice", now, None);
        permanent.exp = now - 10;
        put_json(store, &family_key("fam-pinned"), &permanent, None).await;
        let mut old_client = client("c-lapsed", Some("old"), now);
        old_client.expires_at = Some(now - 1);
        put_json(store, &client_key("c-lapsed"), &old_client, Some(HOUR)).await;
        // A family whose refresh token lapsed but whose access token lives is kept.
        let mut still = family("fam-live", "c-test", "alice", now, Some("jti-live"));
        still.exp = now - 10;
        put_json(store, &family_key("fam-live"), &still, Some(HOUR)).await;

        let report = tokens::purge_expired(store, now).await.unwrap();
        assert_eq!(
            report,
            tokens::PurgeReport {
                deleted: 2,
                kept_without_ttl: 1
            },
            "{backend}"
        );
        assert!(store.get(&family_key("fam-old")).await.unwrap().is_none());
        assert!(store.get(&client_key("c-lapsed")).await.unwrap().is_none());
        assert!(store
            .get(&family_key("fam-pinned"))
            .await
            .unwrap()
            .is_some());
        assert!(store.get(&family_key("fam-live")).await.unwrap().is_some());
        assert!(store.get(&family_key("fam-a")).await.unwrap().is_some());
        assert!(
            store.get(&client_key("c-claude")).await.unwrap().is_some(),
            "no TTL, not expired"
        );
    }
}

async fn wipe(store: &dyn Store) {
    for prefix in backup::BACKUP_PREFIXES {
        for k in store.keys_with_prefix(prefix).await.unwrap() {
            store.delete(&k).await.unwrap();
        }
    }
    assert!(backup::backup(store, now())
        .await
        .unwrap()
        .records
        .is_empty());
}

/// Same keys, values and absolute expiries (±2 s for rounding and the test's own time).
fn assert_same(a: &backup::Backup, b: &backup::Backup, what: &str) {
    let keys = |x: &backup::Backup| x.records.iter().map(|r| r.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(a), keys(b), "{what}");
    for (x, y) in a.records.iter().zip(&b.records) {
        assert_eq!(x.value, y.value, "{what}: {}", x.key);
        match (x.expires_at, y.expires_at) {
            (None, None) => {}
            (Some(p), Some(q)) => assert!(p.abs_diff(q) <= 2, "{what}: {} {p} vs {q}", x.key),
            other => panic!("{what}: {} expiry {other:?}", x.key),
        }
    }
}

#[tokio::test]
async fn backup_wipe_restore_loses_nothing() {
    let stores = Stores::start().await;
    for (backend, store) in stores.both() {
        let now = now();
        seed(store, now).await;
        let before = backup::backup(store, now).await.unwrap();
        assert_eq!(before.source_backend, backend);
        assert_eq!(
            before.records.len(),
            11,
            "{backend}: {:?}",
            before.records.iter().map(|r| &r.key).collect::<Vec<_>>()
        );
        let keys = before
            .records
            .iter()
            .find(|r| r.key == mcp_authz::keys::KEYS_RECORD)
            .unwrap();
        assert_eq!(
            keys.value,
            backup::Value::Text(r#"{"v":1,"nonce":"AAAA","ct":"sealed"}"#.into())
        );
        assert_eq!(keys.expires_at, None);
        let fam = before
            .records
            .iter()
            .find(|r| r.key == family_key("fam-a"))
            .unwrap();
        let exp = fam.expires_at.unwrap();
        assert!(
            exp.abs_diff(now + 30 * 24 * HOUR) <= 2,
            "absolute expiry {exp}"
        );

        let text = serde_json::to_string(&before).unwrap();
        wipe(store).await;
        let report = backup::restore(store, &backup::parse(&text).unwrap(), now, false)
            .await
            .unwrap();
        assert_eq!(
            report,
            backup::RestoreReport {
                restored: 11,
                replaced: 0,
                expired: 0
            }
        );
        let after = backup::backup(store, now).await.unwrap();
        assert_same(&before, &after, backend);
        // The restored records work as the originals: the client reads back typed.
        let c: ClientRecord = get_json(store, &client_key("c-test")).await.unwrap();
        assert_eq!(c.metadata.client_name.as_deref(), Some("test-client-1"));
    }
}

#[tokio::test]
async fn time_on_disk_counts_and_restore_refuses_to_overwrite_without_force() {
    let stores = Stores::start().await;
    for (backend, store) in stores.both() {
        let now = now();
        seed(store, now).await;
        let b = backup::backup(store, now).await.unwrap();

        let err = backup::restore(store, &b, now, false).await.unwrap_err();
        assert!(err.to_string().contains("--force"), "{backend}: {err}");
        // Nothing was changed by the refusal.
        store
            .put(&client_key("c-test"), b"changed", None)
            .await
            .unwrap();
        assert!(backup::restore(store, &b, now, false).await.is_err());
        assert_eq!(
            store.get(&client_key("c-test")).await.unwrap().unwrap(),
            b"changed"
        );

        let report = backup::restore(store, &b, now, true).await.unwrap();
        assert_eq!(report.restored, 11);
        assert_eq!(report.replaced, 11);
        assert!(get_json::<ClientRecord>(store, &client_key("c-test"))
            .await
            .is_some());

        // Restored 31 days later: the session (15 min), families (30 d) and the
        // flow record (30 d) lapsed on disk and stay gone; the rest comes back
        // with the remaining time only.
        wipe(store).await;
        let later = now + 31 * 24 * HOUR;
        let report = backup::restore(store, &b, later, false).await.unwrap();
        assert_eq!(report.expired, 5, "{backend}");
        assert_eq!(report.restored, 6);
        assert!(store
            .get(&session_key("sess-alice"))
            .await
            .unwrap()
            .is_none());
        let ttl = store
            .ttl(&client_key("c-test"))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(ttl.as_secs().abs_diff(59 * 24 * HOUR) <= 2, "{ttl:?}");
    }
}

#[tokio::test]
async fn redis_to_embedded_to_redis_round_trips() {
    let stores = Stores::start().await;
    let now = now();
    seed(&*stores.redis, now).await;
    let from_redis = backup::backup(&*stores.redis, now).await.unwrap();
    let json = serde_json::to_string_pretty(&from_redis).unwrap();

    backup::restore(
        &*stores.embedded,
        &backup::parse(&json).unwrap(),
        now,
        false,
    )
    .await
    .unwrap();
    let from_embedded = backup::backup(&*stores.embedded, now).await.unwrap();
    assert_eq!(from_embedded.source_backend, "embedded");
    assert_same(&from_redis, &from_embedded, "redis -> embedded");

    wipe(&*stores.redis).await;
    backup::restore(&*stores.redis, &from_embedded, now, false)
        .await
        .unwrap();
    let back = backup::backup(&*stores.redis, now).await.unwrap();
    assert_same(&from_redis, &back, "embedded -> redis");
}

#[tokio::test]
async fn flows_show_recorded_and_derived_steps_with_a_diagnosis() {
    let stores = Stores::start().await;
    for (backend, store) in stores.both() {
        let now = now();
        seed(store, now).await;
        put_json(
            store,
            &client_key("c-new"),
            &client("c-new", Some("fresh"), now),
            None,
        )
        .await;
        let all = flows::flows(store, None).await.unwrap();
        assert_eq!(all.len(), 3, "{backend}");
        let get = |id: &str| all.iter().find(|f| f.client_id == id).unwrap();
        let step = |f: &flows::ClientFlow, s: FlowStep| {
            f.steps.iter().find(|(x, _)| *x == s).unwrap().1.clone()
        };

        let claude = get("c-claude");
        assert_eq!(
            step(claude, FlowStep::Registered),
            flows::Seen::At(now - HOUR)
        );
        assert_eq!(step(claude, FlowStep::FirstUse), flows::Seen::At(now - 60));
        assert!(claude.diagnosis().starts_with("working"));

        let test = get("c-test");
        assert!(matches!(
            step(test, FlowStep::TokenIssued),
            flows::Seen::Derived(_)
        ));
        assert_eq!(step(test, FlowStep::FirstUse), flows::Seen::No);
        assert!(
            test.diagnosis().contains("never used it"),
            "{}",
            test.diagnosis()
        );

        assert!(get("c-new").diagnosis().starts_with("registered but never"));
        let one = flows::flows(store, Some("c-claude")).await.unwrap();
        assert_eq!(one.len(), 1);
        assert!(flows::render(&one).contains("first_use"));
    }
}
