//! ForwardAuth token verifier for MCP services.
