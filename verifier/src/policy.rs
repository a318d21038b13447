//! Per-service access policy (see [`crate::config::Policy`] for the rules).

use crate::config::Policy;
use crate::identity::Verified;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyDenial {
    /// The user is in none of the allow lists.
    NotAllowed,
    /// Scopes the token lacks, space-separated (the `scope` hint of the 403).
    InsufficientScope(String),
}

pub fn evaluate(policy: &Policy, token: &Verified) -> Result<(), PolicyDenial> {
    let any_list = !(policy.allowed_users.is_empty()
        && policy.allowed_orgs.is_empty()
        && policy.allowed_teams.is_empty());
    if any_list && !is_listed(policy, token) {
        return Err(PolicyDenial::NotAllowed);
    }
    if policy
        .required_scopes
        .iter()
        .any(|s| !token.identity.has_scope(s))
    {
        // RFC 6750 §3: the hint names every scope needed, not only the missing ones.
        return Err(PolicyDenial::InsufficientScope(
            policy.required_scopes.join(" "),
        ));
    }
    Ok(())
}

fn is_listed(policy: &Policy, token: &Verified) -> bool {
    let id = &token.identity;
    let user = policy.allowed_users.iter().any(|u| {
        if u.contains(':') {
            *u == id.user_id
        } else {
            !id.user_name.is_empty() && u.eq_ignore_ascii_case(&id.user_name)
        }
    });
    let org = policy.allowed_orgs.iter().any(|org| {
        token.groups.iter().any(|g| {
            let g_org = g.split_once('/').map_or(g.as_str(), |(o, _)| o);
            g_org.eq_ignore_ascii_case(org)
        })
    });
    let team = policy
        .allowed_teams
        .iter()
        .any(|t| token.groups.iter().any(|g| g.eq_ignore_ascii_case(t)));
    user || org || team
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn token(sub: &str, name: &str, groups: &[&str], scopes: &str) -> Verified {
        Verified {
            id_hash: 1,
            grant_hash: None,
            exp: 10,
            nbf: None,
            audiences: vec![],
            groups: groups.iter().map(|g| g.to_string()).collect(),
            identity: Identity {
                user_id: sub.into(),
                user_name: name.into(),
                scopes: scopes.into(),
                ..Identity::default()
            },
            tool_memo: Default::default(),
            jkt: None,
            header_values: Default::default(),
        }
    }

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_lists_admit_everyone() {
        assert_eq!(
            evaluate(&Policy::default(), &token("local:a", "a", &[], "")),
            Ok(())
        );
    }

    #[test]
    fn users_orgs_and_teams_admit_their_members_only() {
        let p = Policy {
            allowed_users: list(&["Alice", "github:42"]),
            allowed_orgs: list(&["acme"]),
            allowed_teams: list(&["globex/sre"]),
            ..Policy::default()
        };
        assert_eq!(evaluate(&p, &token("github:1", "alice", &[], "")), Ok(()));
        assert_eq!(evaluate(&p, &token("github:42", "bob", &[], "")), Ok(()));
        assert_eq!(
            evaluate(&p, &token("github:2", "carol", &["acme/dev"], "")),
            Ok(())
        );
        assert_eq!(
            evaluate(&p, &token("github:2", "carol", &["ACME"], "")),
            Ok(())
        );
        assert_eq!(
            evaluate(&p, &token("github:3", "dan", &["globex/sre"], "")),
            Ok(())
        );
        for t in [
            token("github:3", "dan", &["globex/dev", "globex"], ""),
            token("github:4", "", &[], ""),
            token("github:420", "alicex", &["acme-evil"], ""),
        ] {
            assert_eq!(evaluate(&p, &t), Err(PolicyDenial::NotAllowed), "{t:?}");
        }
    }

    #[test]
    fn required_scopes_must_all_be_granted() {
        let p = Policy {
            required_scopes: list(&["mcp", "mcp:write"]),
            ..Policy::default()
        };
        assert_eq!(evaluate(&p, &token("s", "n", &[], "mcp mcp:write")), Ok(()));
        assert_eq!(
            evaluate(&p, &token("s", "n", &[], "mcp")),
            Err(PolicyDenial::InsufficientScope("mcp mcp:write".into()))
        );
    }
}
