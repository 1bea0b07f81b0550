//! Saved plans (`plan --out`, `apply FILE`): writing and reading the file,
//! and the checks that refuse, changing nothing, a plan that no longer
//! matches the stack, the configuration, the state or the live objects.

use super::{fingerprint, Observed, Workspace};
use crate::config::Config;
use crate::error::{Error, Problem, Result};
use crate::plan::{Plan, FORMAT_VERSION};
use crate::state::{State, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Writes `plan` to `path` atomically (the JSON format of `schemas/plan.schema.json`).
pub fn save(path: &Path, plan: &Plan) -> Result<()> {
    crate::state::local::write_atomic(path, crate::render::json(plan).as_bytes())
        .map_err(|e| Error::msg(format!("cannot write the plan to {}: {e}", path.display())))
}

/// Reads a plan file, refusing other format versions.
pub fn load(path: &Path) -> Result<Plan> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::msg(format!("cannot read the plan file {}: {e}", path.display())))?;
    let not_a_plan =
        |why: String| Error::one(Problem::new(why).hint("make one with `claw plan --out FILE`"));
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| not_a_plan(format!("{} is not a claw plan file: {e}", path.display())))?;
    let ver = v
        .get("format_version")
        .and_then(|x| x.as_u64())
        .unwrap_or(0);
    if ver != FORMAT_VERSION as u64 {
        return Err(Error::one(
            Problem::new(format!(
                "{} has plan format version {ver}; this claw reads version {FORMAT_VERSION}",
                path.display()
            ))
            .hint("make a new plan with this claw: `claw plan --out FILE`"),
        ));
    }
    serde_json::from_value(v).map_err(|e| {
        not_a_plan(format!(
            "{} is not a valid claw plan file: {e}",
            path.display()
        ))
    })
}

/// Refuses a plan made for another stack.
pub fn check_stack(plan: &Plan, cfg: &Config) -> Result<()> {
    if plan.stack == cfg.stack {
        return Ok(());
    }
    Err(Error::one(
        Problem::new(format!(
            "the plan is for stack `{}`, but claw.toml is stack `{}`",
            plan.stack, cfg.stack
        ))
        .detail("nothing was changed")
        .hint("apply the plan from the folder of its stack, or make a new plan"),
    ))
}

/// A plan made before the first apply fixes the new state's identity
/// (lineage and salt).
pub async fn adopt_identity(plan: &Plan, store: &Store) {
    let mut st = store.state.lock().await;
    if st.serial == 0 && st.resources.is_empty() {
        if let Some(salt) = &plan.new_state_salt {
            st.salt = salt.clone();
            st.lineage = plan.state_lineage.clone();
        }
    }
}

fn stale(why: String) -> Error {
    Error::one(
        Problem::new(format!("the plan is stale: {why}"))
            .detail("nothing was changed")
            .hint("make a new plan with `claw plan --out FILE` and review it"),
    )
}

/// Checks `plan` against the state, the configuration and the live objects
/// it changes; returns those objects as refreshed now.
pub async fn verify(ws: &Workspace, st: &State, plan: &Plan) -> Result<BTreeMap<String, Observed>> {
    if plan.state_lineage != st.lineage {
        return Err(stale("it was made against another state".into()));
    }
    if plan.state_serial != st.serial {
        return Err(stale(format!(
            "the state changed since the plan was made (serial {} → {})",
            plan.state_serial, st.serial
        )));
    }
    if plan.config_hash != ws.config_hash() {
        return Err(Error::one(
            Problem::new("the plan was made from another configuration (claw.toml, its vars or its secrets changed since)")
                .detail("nothing was changed")
                .hint("make a new plan with `claw plan --out FILE`"),
        ));
    }
    let addrs: BTreeSet<String> = plan.changes.iter().map(|c| c.address.clone()).collect();
    let mut observed = ws.refresh(st, Some(&addrs)).await?;
    // Orphans were found by a full refresh at plan time.
    let full = if plan.changes.iter().any(|c| c.reason.starts_with("orphan")) {
        Some(ws.refresh(st, None).await?)
    } else {
        None
    };
    for c in &plan.changes {
        if let Some(o) = full.as_ref().and_then(|f| f.get(&c.address)) {
            observed.insert(c.address.clone(), o.clone());
        }
        let now = observed
            .get(&c.address)
            .and_then(|o| o.live.as_ref())
            .map(fingerprint)
            .unwrap_or_default();
        if now != c.fingerprint {
            return Err(stale(format!(
                "{} changed since the plan was made",
                c.address
            )));
        }
    }
    Ok(observed)
}
