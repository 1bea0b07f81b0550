//! Saved plans (`plan --out`, `apply FILE`): writing and reading the file,
//! and the checks that refuse, changing nothing, a plan that no longer
//! holds: another stack, another state, or a plan made now that differs.

use super::{Observed, Options, Workspace};
use crate::config::Config;
use crate::error::{Error, Problem, Result};
use crate::plan::{Plan, FORMAT_VERSION};
use crate::state::State;
use std::collections::BTreeMap;
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

fn stale(why: String) -> Error {
    Error::one(
        Problem::new(format!("the plan is stale: {why}"))
            .detail("nothing was changed")
            .hint("make a new plan with `claw plan --out FILE` and review it"),
    )
}

/// Checks `plan` against the state, then plans again (its targets, its
/// mode) and compares object by object and input by input; returns the
/// live objects as refreshed now.
pub async fn verify(
    ws: &Workspace,
    st: &State,
    plan: &Plan,
    o: &Options,
) -> Result<BTreeMap<String, Observed>> {
    if plan.state_lineage != st.lineage {
        return Err(stale("it was made against another state".into()));
    }
    if plan.state_serial != st.serial {
        return Err(stale(format!(
            "the state changed since the plan was made (serial {} → {})",
            plan.state_serial, st.serial
        )));
    }
    let again = Options {
        targets: plan.targets.clone(),
        replace: plan.replace.clone(),
        destroy: plan.destroy,
        ..o.clone()
    };
    let now = super::session::refresh_and_plan(ws, st, &again).await?;
    let problems = super::contract::compare_plans(plan, &now.plan);
    if !problems.is_empty() {
        let n = problems.len();
        let mut e = Error::many(problems);
        e.problems.push(
            Problem::new(format!(
                "the saved plan no longer holds ({n} difference{}); nothing was changed",
                if n == 1 { "" } else { "s" }
            ))
            .hint("make a new plan with `claw plan --out FILE` and review it"),
        );
        return Err(e);
    }
    Ok(now.observed)
}
