//! `claw output [NAME] [--json]`: the outputs the last apply recorded.
//! Sensitive ones are shown as `(sensitive)` in the list; `claw output NAME`
//! and `--json` print them in clear, evaluated again from the configuration
//! (the state holds only their keyed hash).

use super::{read_state, Env, Outcome};
use crate::engine::{outputs::no_such_output, Workspace};
use crate::error::Result;
use crate::render;
use std::collections::BTreeMap;

pub async fn run(env: Env, name: Option<String>, json: bool) -> Result<Outcome> {
    let cfg = env.load()?;
    let st = read_state(&env, &cfg).await?;
    let needs_secrets = match &name {
        Some(n) => st.outputs.get(n).is_some_and(|o| o.sensitive),
        None => json && st.outputs.values().any(|o| o.sensitive),
    };
    // The workspace (secrets read) only when a sensitive value is shown.
    let ws = if needs_secrets || name.as_ref().is_some_and(|n| !st.outputs.contains_key(n)) {
        let events = env.events();
        Some(Workspace::build(
            cfg,
            env.reg,
            &st.salt,
            Some(&st),
            events,
            env.verbose,
        )?)
    } else {
        None
    };
    let clear = |n: &str| {
        let o = &st.outputs[n];
        match (&ws, o.sensitive) {
            (Some(ws), true) => ws.reveal(&st, n),
            _ => Ok(o.value.clone()),
        }
    };
    match name {
        Some(n) => {
            if let (false, Some(ws)) = (st.outputs.contains_key(&n), &ws) {
                return Err(no_such_output(&n, &st, ws));
            }
            let v = clear(&n)?;
            if json {
                print!("{}", render::outputs::json_value(&v));
            } else {
                print!("{}", render::outputs::bare(&v));
            }
        }
        None if json => {
            let mut all = BTreeMap::new();
            for (n, o) in &st.outputs {
                all.insert(n.clone(), (clear(n)?, o.sensitive));
            }
            print!("{}", render::outputs::json(&all));
        }
        None => {
            if st.outputs.is_empty() {
                env.ui.note_always(
                    "No outputs recorded: declare [output.NAME] tables in claw.toml and run `claw apply`.",
                );
            }
            print!("{}", render::outputs::list(&st.outputs));
        }
    }
    Ok(Outcome::Ok)
}
