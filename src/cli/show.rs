//! `claw show [PLANFILE]`: a saved plan, or the current state.

use super::{Env, Outcome};
use crate::engine::saved;
use crate::error::Result;
use crate::render::{self, Format};
use std::path::PathBuf;

pub async fn run(env: Env, planfile: Option<PathBuf>, format: Format) -> Result<Outcome> {
    match planfile {
        Some(p) => {
            let plan = saved::load(&p)?;
            print!("{}", render::render(&plan, format, env.color));
        }
        None => {
            let cfg = env.load()?;
            let st = super::read_state(&env, &cfg).await?;
            print!("{}", render::state::show(&st, format));
        }
    }
    Ok(Outcome::Ok)
}
