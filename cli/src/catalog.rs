//! The service catalog of one-machine mode: which MCP servers `up` can serve,
//! switched on as in the Python gateway with `MCP_<SERVICE>_ENABLED=true`.
//!
//! Each enabled service gets its own endpoint (`/<path>/mcp`), and with it its
//! own audience (the endpoint URL is its RFC 8707 resource), its own protected
//! resource metadata (RFC 9728 §3.1: `/.well-known/oauth-protected-resource/<path>/mcp`),
//! its own tool-policy section (the service name) and its own children.
//!
//! Pure logic: the caller passes the variables and the data directory; the
//! plan says what to serve, or why start-up must stop.

use std::path::Path;

use gateway_common::config::{ConfigError, Source};
use mcp_bridge::ProcessModel;

/// `{data}` in a catalog command or child variable: the data directory.
const DATA: &str = "{data}";

/// One service the launcher knows how to run.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// The service name, as in `MCP_<NAME>_ENABLED` (lower-cased): the key of
    /// its `MCP_<NAME>_*` variables and its tool-policy section.
    pub name: &'static str,
    /// The URL path piece: served at `/<path>/mcp`. Names such as
    /// `echo_stateless` become `echo-stateless` (host names have no `_`, and
    /// deployments route `<path>.<domain>` to the same service).
    pub path: &'static str,
    /// `BRIDGE_COMMAND`: a built-in, or a stdio server's command line.
    pub command: &'static str,
    pub process_model: ProcessModel,
    /// What to run when the program is missing.
    pub install: &'static str,
    /// Variables the child needs (`BRIDGE_ENV_<NAME>`), unless the operator set them.
    pub child_env: &'static [(&'static str, &'static str)],
}

/// The services of the Python gateway, with the commands of the bridge image
/// (`deploy/docker/bridge.Dockerfile`) and the process models of
/// `deploy/compose/compose.yml`.
pub const CATALOG: &[Entry] = &[
    Entry {
        name: "echo",
        path: "echo",
        command: "builtin:echo",
        process_model: ProcessModel::Session,
        install: "",
        child_env: &[],
    },
    Entry {
        name: "echo_stateless",
        path: "echo-stateless",
        command: "builtin:echo-stateless",
        process_model: ProcessModel::Session,
        install: "",
        child_env: &[],
    },
    Entry {
        name: "fetch",
        path: "fetch",
        command: "mcp-server-fetch",
        process_model: ProcessModel::Session,
        install: "pip install mcp-server-fetch",
        child_env: &[],
    },
    Entry {
        name: "fetchs",
        path: "fetchs",
        command: "builtin:fetch",
        process_model: ProcessModel::Session,
        install: "",
        child_env: &[],
    },
    Entry {
        name: "filesystem",
        path: "filesystem",
        command: "mcp-server-filesystem {data}/files",
        process_model: ProcessModel::Session,
        install: "npm install -g @modelcontextprotocol/server-filesystem",
        child_env: &[],
    },
    Entry {
        name: "memory",
        path: "memory",
        command: "mcp-server-memory",
        process_model: ProcessModel::Session,
        install: "npm install -g @modelcontextprotocol/server-memory",
        child_env: &[("MEMORY_FILE_PATH", "{data}/memory.jsonl")],
    },
    Entry {
        name: "sequentialthinking",
        path: "sequentialthinking",
        command: "mcp-server-sequential-thinking",
        process_model: ProcessModel::Session,
        install: "npm install -g @modelcontextprotocol/server-sequential-thinking",
        child_env: &[],
    },
    Entry {
        name: "time",
        path: "time",
        command: "mcp-server-time",
        process_model: ProcessModel::Shared,
        install: "pip install mcp-server-time",
        child_env: &[],
    },
    Entry {
        name: "tmux",
        path: "tmux",
        command: "tmux-mcp",
        process_model: ProcessModel::Shared,
        install: "pip install tmux-mcp (and tmux itself)",
        child_env: &[],
    },
    Entry {
        name: "playwright",
        path: "playwright",
        command: "playwright-mcp --headless --isolated",
        process_model: ProcessModel::Session,
        install: "npm install -g @playwright/mcp",
        child_env: &[],
    },
    Entry {
        name: "everything",
        path: "everything",
        command: "mcp-server-everything stdio",
        process_model: ProcessModel::Session,
        install: "npm install -g @modelcontextprotocol/server-everything",
        child_env: &[],
    },
];

/// One service `up` serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Lower-cased `MCP_<NAME>_ENABLED` name (`local` without a catalog).
    pub name: String,
    /// The endpoint path: `/<path>/mcp` (`/mcp` without a catalog).
    pub path: String,
    /// `BRIDGE_COMMAND` for its bridge.
    pub command: String,
    /// `BRIDGE_PROCESS_MODEL`; `None` leaves the operator's (or the default).
    pub process_model: Option<ProcessModel>,
    /// `BRIDGE_ENV_<NAME>` values the catalog adds.
    pub child_env: Vec<(String, String)>,
}

/// Why the services cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// One line, naming the service, how to install it and how to turn it off.
    #[error("{var}=true, but its MCP server {program:?} is not installed (not on PATH): {remedy}, or set {var}=false")]
    NotInstalled {
        var: String,
        program: String,
        remedy: String,
    },
    #[error("{var}=true names no service of the catalog ({known}); set MCP_{upper}_COMMAND to its stdio server's command line, or {var}=false")]
    Unknown {
        var: String,
        upper: String,
        known: String,
    },
}

/// The services to serve: every enabled one of the catalog (and every other
/// enabled name with `MCP_<NAME>_COMMAND`), or, when no `MCP_<NAME>_ENABLED`
/// is true, the single service `local` at `/mcp` running `bridge_command`.
pub fn plan(
    src: &Source,
    bridge_command: &str,
    data_dir: &Path,
) -> Result<Vec<Service>, CatalogError> {
    let names = src.enabled_services()?;
    if names.is_empty() {
        return Ok(vec![Service {
            name: "local".into(),
            path: "/mcp".into(),
            command: bridge_command.to_string(),
            process_model: None,
            child_env: Vec::new(),
        }]);
    }
    let search_path = src.string("PATH", "/usr/local/bin:/usr/bin:/bin");
    let data = data_dir.display().to_string();
    let mut services = Vec::with_capacity(names.len());
    for name in names {
        let upper = name.to_ascii_uppercase();
        let var = format!("MCP_{upper}_ENABLED");
        let command_var = format!("MCP_{upper}_COMMAND");
        let entry = CATALOG.iter().find(|e| e.name == name);
        let own_command = src.get(&command_var);
        let (path, template, process_model, install) = match (entry, own_command) {
            (Some(e), own) => (
                e.path.to_string(),
                own.unwrap_or(e.command).to_string(),
                e.process_model,
                e.install,
            ),
            (None, Some(own)) => (
                name.replace('_', "-"),
                own.to_string(),
                ProcessModel::Session,
                "",
            ),
            (None, None) => {
                return Err(CatalogError::Unknown {
                    var,
                    upper,
                    known: CATALOG
                        .iter()
                        .map(|e| e.name)
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        };
        if path.is_empty()
            || !path
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ConfigError::new(
                &var,
                "names a service whose name is not letters, digits and '_'",
                "true (e.g. MCP_ECHO_ENABLED=true)",
            )
            .into());
        }
        let command = if template.starts_with("builtin:") {
            template
        } else {
            let mut words = shell_words::split(&template).map_err(|e| {
                ConfigError::new(
                    &command_var,
                    format!("is not a valid command line ({e})"),
                    "mcp-server-time --local-timezone UTC",
                )
            })?;
            for w in &mut words {
                *w = w.replace(DATA, &data);
            }
            let Some(program) = words.first() else {
                return Err(ConfigError::new(
                    &command_var,
                    "is empty",
                    "mcp-server-time --local-timezone UTC",
                )
                .into());
            };
            if mcp_bridge::config::resolve_program(program, &search_path).is_none() {
                let remedy = match (own_command, install) {
                    (None, i) if !i.is_empty() => format!("install it with `{i}`"),
                    _ => format!("install it, fix {command_var}"),
                };
                return Err(CatalogError::NotInstalled {
                    var,
                    program: program.to_string(),
                    remedy,
                });
            }
            shell_words::join(words)
        };
        let child_env = entry
            .map(|e| e.child_env)
            .unwrap_or_default()
            .iter()
            .filter(|(k, _)| src.get(&format!("BRIDGE_ENV_{k}")).is_none())
            .map(|(k, v)| ((*k).to_string(), v.replace(DATA, &data)))
            .collect();
        services.push(Service {
            name,
            path: format!("/{path}/mcp"),
            command,
            process_model: Some(process_model),
            child_env,
        });
    }
    Ok(services)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(pairs: &[(&str, &str)]) -> Result<Vec<Service>, CatalogError> {
        plan(
            &Source::from_pairs(pairs.iter().copied()),
            "builtin:echo",
            Path::new("/srv/data"),
        )
    }

    #[test]
    fn without_a_catalog_one_local_service_runs_the_bridge_command() {
        let s = plan_of(&[("MCP_ECHO_ENABLED", "false")]).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].name.as_str(), s[0].path.as_str()), ("local", "/mcp"));
        assert_eq!(s[0].command, "builtin:echo");
        assert_eq!(s[0].process_model, None);
    }

    #[test]
    fn each_enabled_service_gets_its_own_path_command_and_process_model() {
        let s = plan_of(&[
            ("MCP_ECHO_ENABLED", "true"),
            ("MCP_ECHO_STATELESS_ENABLED", "yes"),
            ("MCP_FETCHS_ENABLED", "1"),
            ("MCP_TIME_ENABLED", "true"),
            ("MCP_TIME_COMMAND", "/bin/sh -c true"),
        ])
        .unwrap();
        let got: Vec<_> = s
            .iter()
            .map(|s| (s.name.as_str(), s.path.as_str(), s.command.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("echo", "/echo/mcp", "builtin:echo"),
                (
                    "echo_stateless",
                    "/echo-stateless/mcp",
                    "builtin:echo-stateless"
                ),
                ("fetchs", "/fetchs/mcp", "builtin:fetch"),
                ("time", "/time/mcp", "/bin/sh -c true"),
            ]
        );
        assert_eq!(s[3].process_model, Some(ProcessModel::Shared));
    }

    #[test]
    fn data_dir_goes_into_commands_and_child_variables() {
        let s = plan_of(&[
            ("MCP_FILESYSTEM_ENABLED", "true"),
            ("MCP_FILESYSTEM_COMMAND", "/bin/sh {data}/files"),
            ("MCP_MEMORY_ENABLED", "true"),
            ("MCP_MEMORY_COMMAND", "/bin/sh"),
        ])
        .unwrap();
        assert_eq!(s[0].command, "/bin/sh /srv/data/files");
        assert_eq!(
            s[1].child_env,
            [(
                "MEMORY_FILE_PATH".to_string(),
                "/srv/data/memory.jsonl".to_string()
            )]
        );
        // The operator's own value wins.
        let s = plan_of(&[
            ("MCP_MEMORY_ENABLED", "true"),
            ("MCP_MEMORY_COMMAND", "/bin/sh"),
            ("BRIDGE_ENV_MEMORY_FILE_PATH", "/elsewhere"),
        ])
        .unwrap();
        assert!(s[0].child_env.is_empty());
    }

    #[test]
    fn a_missing_server_stops_start_up_with_one_line_saying_how_to_install_or_disable_it() {
        let err = plan_of(&[("MCP_EVERYTHING_ENABLED", "true"), ("PATH", "/nonexistent")])
            .unwrap_err()
            .to_string();
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains("MCP_EVERYTHING_ENABLED=true"), "{err}");
        assert!(
            err.contains("npm install -g @modelcontextprotocol/server-everything"),
            "{err}"
        );
        assert!(err.contains("MCP_EVERYTHING_ENABLED=false"), "{err}");
        let err = plan_of(&[
            ("MCP_TIME_ENABLED", "true"),
            ("MCP_TIME_COMMAND", "nope-not-here"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("MCP_TIME_COMMAND"), "{err}");
    }

    #[test]
    fn unknown_services_need_a_command() {
        let err = plan_of(&[("MCP_WEATHER_ENABLED", "true")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("MCP_WEATHER_COMMAND"), "{err}");
        let s = plan_of(&[
            ("MCP_MY_TOOLS_ENABLED", "true"),
            ("MCP_MY_TOOLS_COMMAND", "/bin/sh"),
        ])
        .unwrap();
        assert_eq!(
            (s[0].name.as_str(), s[0].path.as_str()),
            ("my_tools", "/my-tools/mcp")
        );
    }

    #[test]
    fn catalog_names_and_paths_are_unique_and_fit_a_host_name() {
        for (i, e) in CATALOG.iter().enumerate() {
            assert!(CATALOG[..i]
                .iter()
                .all(|o| o.name != e.name && o.path != e.path));
            assert!(e.path.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'));
            assert_eq!(e.name.replace('_', "-"), e.path);
            assert_eq!(e.command.starts_with("builtin:"), e.install.is_empty());
        }
    }
}
