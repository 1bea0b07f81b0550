//! `claw plan`: refresh, diff, print the plan; `--out` saves it.

use super::{ui::Ui, Env, Outcome, PlanArgs};
use crate::engine::session::{self, Planned};
use crate::engine::{saved, Options, Workspace};
use crate::error::Result;
use crate::render;
use crate::state::State;
use crate::util::timing;

pub async fn run(env: Env, a: PlanArgs) -> Result<Outcome> {
    let o = env.options(
        a.targets.clone(),
        a.replace.clone(),
        a.destroy,
        a.parallelism,
    );
    session::read_ahead(&env.file);
    let cfg = env.load()?;
    timing::phase("load");
    let st = super::read_state(&env, &cfg).await?;
    timing::phase("read state");
    let events = env.events();
    let ws = Workspace::build(cfg, env.reg, &st.salt, Some(&st), events, env.verbose)?;
    timing::phase("build");
    let plan = refresh_and_plan(&env.ui, &ws, &st, &o).await?.plan;
    print!("{}", render::render(&plan, a.format.into(), env.color));
    timing::phase("render");
    if let Some(out) = &a.out {
        saved::save(out, &plan)?;
        env.ui.info(&format!(
            "Saved the plan to {}. Apply it exactly with: claw apply {}",
            out.display(),
            out.display()
        ));
    }
    let outcome = match a.detailed_exitcode && plan.has_changes() {
        true => Outcome::Changes,
        false => Outcome::Ok,
    };
    ws.finish();
    crate::engine::leave_to_exit((plan, st));
    Ok(outcome)
}

/// Refreshes and plans; with `-v`, prints the provider call counters and the time.
pub async fn refresh_and_plan(ui: &Ui, ws: &Workspace, st: &State, o: &Options) -> Result<Planned> {
    ui.status("Refreshing live state...");
    let planned = session::refresh_and_plan(ws, st, o).await?;
    if ui.verbose {
        for (key, name, n) in &planned.counters {
            ui.info(&format!("{key}: {n} {name}"));
        }
        ui.info(&format!(
            "refresh and plan took {} ms",
            planned.elapsed.as_millis()
        ));
    }
    Ok(planned)
}
