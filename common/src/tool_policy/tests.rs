use super::*;

const FILE: &str = r#"
[services.echo]
default = "deny"

[[services.echo.rules]]
name = "no secrets for contractors"
effect = "deny"
teams = ["acme/contractors"]
tools = ["secret_*"]

[[services.echo.rules]]
effect = "allow"
users = ["alice", "github:42"]
tools = ["echo"]

[[services.echo.rules]]
effect = "allow"
orgs = ["acme"]
scopes = ["mcp:write"]
tools = ["*"]
prompts = ["*"]

[[services.echo.rules]]
effect = "allow"
emails = ["@example.org"]
resources = ["file:///docs/*"]

[services.open]
"#;

fn caller<'a>(name: &'a str, groups: Option<&'a [String]>) -> Caller<'a> {
    Caller {
        user_id: "github:1",
        user_name: name,
        email: "",
        client_id: "c",
        scopes: "mcp",
        groups,
    }
}

fn call<'a>(method: &'a str, name: &'a str) -> Call<'a> {
    Call {
        method,
        name: Some(name),
    }
}

/// `decide_for(applicable(caller))` is `decide(caller)`, for any policy
/// built from these pieces, any caller and any call: the per-token memo
/// of the verifier can never change a verdict.
mod memo_agrees {
    use super::*;
    use proptest::prelude::*;

    fn pick(pool: &[&'static str]) -> impl Strategy<Value = Vec<&'static str>> {
        proptest::sample::subsequence(pool.to_vec(), 0..=pool.len().min(2))
    }

    fn rule() -> impl Strategy<Value = String> {
        (
            any::<bool>(),
            pick(&["alice", "github:7", "Bob"]),
            pick(&["acme", "other"]),
            pick(&["acme/sre", "acme/dev"]),
            pick(&["@example.org", "carol@x.test"]),
            pick(&["c", "d"]),
            pick(&["mcp", "admin"]),
            pick(&["tools/*", "prompts/get", "*"]),
            pick(&["echo", "ec*", "*o", "*", "a*b*c"]),
            pick(&["p*", "greet"]),
            pick(&["file:///*"]),
        )
            .prop_map(
                |(
                    allow,
                    users,
                    orgs,
                    teams,
                    emails,
                    clients,
                    scopes,
                    methods,
                    tools,
                    prompts,
                    resources,
                )| {
                    let list = |k: &str, v: Vec<&str>| {
                        if v.is_empty() {
                            String::new()
                        } else {
                            format!("{k} = {v:?}\n")
                        }
                    };
                    format!(
                        "[[services.s.rules]]\neffect = \"{}\"\n{}{}{}{}{}{}{}{}{}{}",
                        if allow { "allow" } else { "deny" },
                        list("users", users),
                        list("orgs", orgs),
                        list("teams", teams),
                        list("emails", emails),
                        list("clients", clients),
                        list("scopes", scopes),
                        list("methods", methods),
                        list("tools", tools),
                        list("prompts", prompts),
                        list("resources", resources),
                    )
                },
            )
    }

    proptest! {
        #[test]
        fn decide_for_equals_decide(
            deny_default in any::<bool>(),
            rules in proptest::collection::vec(rule(), 0..8),
            name in proptest::sample::select(vec!["alice", "bob", "", "mallory"]),
            user_id in proptest::sample::select(vec!["github:7", "github:8"]),
            email in proptest::sample::select(vec!["", "carol@x.test", "dan@example.org"]),
            client in proptest::sample::select(vec!["c", "d", "e"]),
            scopes in proptest::sample::select(vec!["", "mcp", "mcp admin"]),
            groups in proptest::option::of(pick(&["acme", "acme/sre", "other/x"])),
            method in proptest::sample::select(vec!["tools/call", "prompts/get", "resources/read", "tools/list", "initialize", "x/y"]),
            target in proptest::option::of(proptest::sample::select(vec!["echo", "abxc", "greet", "file:///a", "zzz"])),
        ) {
            let text = format!(
                "[services.s]\ndefault = \"{}\"\n{}",
                if deny_default { "deny" } else { "allow" },
                rules.concat()
            );
            let policy = ToolPolicy::parse(&text).unwrap();
            let service = policy.service("s").unwrap();
            let groups: Option<Vec<String>> = groups.map(|g| g.iter().map(|s| s.to_string()).collect());
            let caller = Caller {
                user_id,
                user_name: name,
                email,
                client_id: client,
                scopes,
                groups: groups.as_deref(),
            };
            let call = Call { method, name: target };
            let applicable = service.applicable(&caller);
            prop_assert_eq!(service.decide_for(&applicable, &call), service.decide(&caller, &call));
        }
    }
}

#[test]
fn first_applying_rule_decides_then_the_default() {
    let p = ToolPolicy::parse(FILE).unwrap();
    let s = p.service("echo").unwrap();
    let none: &[String] = &[];
    let alice = caller("Alice", Some(none));
    assert!(s.decide(&alice, &call("tools/call", "echo")).allowed());
    let v = s.decide(&alice, &call("tools/call", "whoami"));
    assert_eq!((v.effect, v.by()), (Effect::Deny, "default"));
    assert!(s.decide(&alice, &call("tools/list", "")).allowed());
    assert!(s
        .decide(&alice, &call("notifications/initialized", ""))
        .allowed());
    assert!(!s.decide(&alice, &call("completion/complete", "")).allowed());

    let groups = ["acme/contractors".to_string()];
    let mut c = caller("bob", Some(&groups));
    c.scopes = "mcp mcp:write";
    assert!(s.decide(&c, &call("tools/call", "whoami")).allowed());
    let v = s.decide(&c, &call("tools/call", "secret_keys"));
    assert_eq!(
        (v.effect, v.by()),
        (Effect::Deny, "no secrets for contractors")
    );
    c.scopes = "mcp";
    assert!(!s.decide(&c, &call("tools/call", "whoami")).allowed());

    let mut e = caller("carol", Some(none));
    e.email = "Carol@EXAMPLE.org";
    assert!(s
        .decide(&e, &call("resources/read", "file:///docs/a.md"))
        .allowed());
    assert!(!s
        .decide(&e, &call("resources/read", "file:///etc/passwd"))
        .allowed());
    assert!(p
        .service("open")
        .unwrap()
        .decide(&e, &call("tools/call", "x"))
        .allowed());
    assert!(p.service("missing").is_none());
}

#[test]
fn unknown_groups_and_names_fail_closed() {
    let p = ToolPolicy::parse(FILE).unwrap();
    let s = p.service("echo").unwrap();
    let mut c = caller("bob", None);
    c.scopes = "mcp:write";
    // The deny rule for contractors applies when groups are unknown; the org allow does not.
    assert!(!s.decide(&c, &call("tools/call", "secret_x")).allowed());
    assert!(!s.decide(&c, &call("tools/call", "whoami")).allowed());
    let alice = caller("alice", None);
    let nameless = Call {
        method: "tools/call",
        name: None,
    };
    assert!(!s.decide(&alice, &nameless).allowed());
}

#[test]
fn lists_are_filtered_to_callable_entries() {
    let p = ToolPolicy::parse(FILE).unwrap();
    let s = p.service("echo").unwrap();
    let none: &[String] = &[];
    let alice = caller("alice", Some(none));
    let mut r = serde_json::json!({"tools":[{"name":"echo"},{"name":"whoami"},{"x":1}]});
    assert_eq!(s.filter_list(&alice, "tools/list", &mut r), 2);
    assert_eq!(r, serde_json::json!({"tools":[{"name":"echo"}]}));
    let mut r = serde_json::json!({"prompts":[{"name":"p"}]});
    assert_eq!(s.filter_list(&alice, "prompts/list", &mut r), 1);
    let mut r = serde_json::json!({"other":[]});
    assert_eq!(s.filter_list(&alice, "tools/list", &mut r), 0);
}

#[test]
fn errors_name_the_rule() {
    let cases = [
        (
            "[services.echo]\n[[services.echo.rules]]\neffect='allow'\n[[services.echo.rules]]\neffect='deny'\n[[services.echo.rules]]\neffect='allow'\ntols=['x']\n",
            "policy error: services.echo.rules[2]: unknown field \"tols\"",
        ),
        (
            "[[services.echo.rules]]\ntools=['x']\n",
            "policy error: services.echo.rules[0]: missing field \"effect\"",
        ),
        (
            "[services.echo]\ndefault='maybe'\n",
            "policy error: services.echo.default: must be",
        ),
        (
            "[[services.echo.rules]]\neffect='allow'\nteams=['acme']\n",
            "policy error: services.echo.rules[0].teams[0]: \"acme\" must be org/team",
        ),
        (
            "[[services.echo.rules]]\neffect='allow'\nusers='alice'\n",
            "policy error: services.echo.rules[0]: field \"users\" must be an array",
        ),
        (
            "[[services.echo.rules]]\neffect='allow'\nscopes=['a b']\n",
            "policy error: services.echo.rules[0].scopes[0]",
        ),
        ("\n\n[services.echo\n", "policy error: line 3: "),
        ("servces = 1\n", "policy error: file: unknown field \"servces\""),
    ];
    for (text, want) in cases {
        let e = ToolPolicy::parse(text).unwrap_err().to_string();
        assert!(e.starts_with(want), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn globs_match_star_runs_only() {
    for (p, yes, no) in [
        ("echo", "echo", "echo2"),
        ("search_*", "search_web", "research_web"),
        ("*_admin", "db_admin", "db_admin_x"),
        ("a*b*c", "a--b--c", "a--c--b"),
        ("*", "", "never"),
        ("file:///docs/*", "file:///docs/x/y", "file:///etc"),
        ("ab*ba", "abba", "aba"),
        ("a**b", "ab", "ba"),
        ("**", "x", "never"),
    ] {
        let g = Glob::new(p);
        assert!(g.is_match(yes), "{p} {yes}");
        if !p.chars().all(|c| c == '*') {
            assert!(!g.is_match(no), "{p} {no}");
        }
    }
}

#[test]
fn reloader_sees_changes_and_bad_files() {
    let dir = std::env::temp_dir().join(format!("tp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.toml");
    std::fs::write(&path, "[services.echo]\n").unwrap();
    let mut r = Reloader::new(path.clone());
    assert!(matches!(r.poll(), Reload::Unchanged));
    std::fs::write(&path, "[services.echo]\ndefault='deny'\n").unwrap();
    assert!(matches!(r.poll(), Reload::Changed(_)));
    std::fs::write(&path, "[services.echo]\ndefault=1\n").unwrap();
    assert!(matches!(r.poll(), Reload::Invalid(_)));
    assert!(matches!(r.poll(), Reload::Unchanged));
    std::fs::remove_dir_all(&dir).unwrap();
}
