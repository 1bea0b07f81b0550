//! claw: config → graph → plan → apply → state. See docs/architecture.md.

// `Diagnostic` (the SDK's error type at every provider call) is a plain
// struct of a few strings; boxing it everywhere buys nothing here.
#![allow(clippy::result_large_err)]

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
