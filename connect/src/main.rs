//! `mcp-connect <url>`: a remote MCP server (OAuth-protected or not) as a local stdio
//! MCP server; see the library's documentation for the options and exit codes.

use gateway_common::config::Source;
use gateway_common::lifecycle;

const HELP: &str = "\
Serves a remote MCP server (Streamable HTTP, OAuth-protected or not) as a local
stdio MCP server: give this command to an MCP client that only speaks stdio.

Usage:
  mcp-connect https://host/mcp [--device] [--no-browser]
      [--client-metadata-url URL] [--token-store DIR] [--scope SCOPE]
      [--client-id ID [--client-secret-file FILE]]
      [--client-credentials [--private-key-file PEM [--key-id KID]]]
  mcp-connect --help | --version

Sign-in opens a browser (MCP_CONNECT_BROWSER overrides the opener) or, with
--device, prints a code to enter elsewhere. Tokens are kept per server in
$XDG_CONFIG_HOME/mcp-gateway/connect/ (mode 0600). A pre-registered client's
secret comes from --client-secret-file or MCP_CONNECT_CLIENT_SECRET, never argv.
Exit codes: 0 stdin closed, 64 bad arguments, 69 remote unreachable, 77 refused
or sign-in failed, 70 anything else. Guide: docs/src/clients.md.";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(flag) = lifecycle::early_flag(&args) {
        lifecycle::print_early(flag, "mcp-connect", env!("CARGO_PKG_VERSION"), HELP);
        return;
    }
    // Only the process env counts: no .env from wherever the MCP client started us.
    let env = Source::from_pairs(std::env::vars());
    let code = mcp_connect::main(&args, &env, gateway_common::clock::system());
    std::process::exit(code);
}
