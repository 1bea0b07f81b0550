//! `claw check [--format human|json]`: every `[check.*]` once, now, from the
//! state as it is (no refresh, no lock); exit 0 when all are healthy.

use super::{read_state, CheckFormat, Env, Outcome};
use crate::engine::Workspace;
use crate::error::Result;
use crate::render;

pub async fn run(env: Env, format: CheckFormat) -> Result<Outcome> {
    let cfg = env.load()?;
    let st = read_state(&env, &cfg).await?;
    let events = env.events();
    let ws = Workspace::build(cfg, env.reg, &st.salt, Some(&st), events, env.verbose)?;
    let reports = ws.run_checks_now(&st).await;
    match format {
        CheckFormat::Human => print!("{}", render::checks::human(&reports)),
        CheckFormat::Json => print!("{}", render::checks::json(&reports)),
    }
    Ok(match reports.iter().all(|r| r.healthy) {
        true => Outcome::Ok,
        false => Outcome::Failed(None),
    })
}
