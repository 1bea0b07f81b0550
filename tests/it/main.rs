//! The one integration-test binary: CLI end-to-end tests against real things.

mod checks;
mod ci;
mod common;
mod completions;
mod config;
mod contract;
mod docker;
mod engine;
mod errors;
mod examples;
mod golden;
mod host;
mod kubernetes;
mod kubernetes_rollout;
mod moves;
mod outputs;
mod ownership;
mod refactor;
mod schemas;
mod secrets;
mod signals;
mod ssh_key;
mod state;
mod tailscale;
mod triggers;
mod worktree_crash;
