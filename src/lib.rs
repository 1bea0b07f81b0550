//! claw: config → graph → plan → apply → state. See docs/architecture.md.

pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod plan;
pub mod registry;
pub mod render;
pub mod schema;
pub mod state;
pub mod util;
