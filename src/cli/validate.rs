//! `claw validate`: parse, resolve, build the graph; touches nothing live.

use super::{Env, Outcome};
use crate::engine::Workspace;
use crate::error::Result;

pub fn run(env: Env) -> Result<Outcome> {
    let cfg = env.load()?;
    let resources = cfg.resources.len();
    let events = env.events();
    let ws = Workspace::build(cfg, env.reg, "validate", None, events, env.verbose)?;
    if !env.quiet {
        println!(
            "The configuration is valid: {} resources, {} instances (stack {}).",
            resources,
            ws.nodes.len(),
            ws.cfg.stack
        );
    }
    ws.finish();
    Ok(Outcome::Ok)
}
