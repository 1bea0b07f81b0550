//! `claw graph [--destroy]`: the dependency graph as Graphviz DOT.

use super::{Env, Outcome};
use crate::engine::Workspace;
use crate::error::Result;
use crate::render;

pub fn run(env: Env, destroy: bool) -> Result<Outcome> {
    let cfg = env.load()?;
    let events = env.events();
    let ws = Workspace::build(cfg, env.reg, "graph", None, events, env.verbose)?;
    print!("{}", render::graph::dot(&ws.graph, destroy));
    Ok(Outcome::Ok)
}
