//! `mcp-gateway`: the one-machine launcher (`up`) and operator commands.

pub mod guard;
pub mod up;
pub mod users;
