//! `mcp-gateway`: the one-machine launcher (`up`) and operator commands.
//!
//! Each operator command is a plain function over `&dyn Store` and the current
//! time, returning what it did; [`commands`] wires them to the command line and
//! [`dispatch`] runs it.

pub mod admin;
pub mod backup;
pub mod catalog;
pub mod clients;
pub mod commands;
pub mod dispatch;
pub mod error;
pub mod exposure;
pub mod flows;
pub mod glob;
pub mod guard;
pub mod health;
pub mod import_python;
pub mod records;
pub mod revoke;
pub mod secrets;
pub mod tls;
pub mod tokens;
pub mod up;
pub mod users;
