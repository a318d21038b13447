//! Serves stdio MCP servers over Streamable HTTP.
