//! `claw force-unlock`: remove a stale lock, after showing who held it.

use super::{Env, Outcome};
use crate::engine::unlock::{force_unlock, Unlocked};
use crate::error::Result;

pub async fn run(env: Env) -> Result<Outcome> {
    let cfg = env.load()?;
    match force_unlock(&cfg, &env.reg).await? {
        Unlocked::Removed { state, holder } => {
            println!("Removed the lock on {state} held by {holder}.")
        }
        Unlocked::NotLocked { state } => println!("The state {state} is not locked."),
    }
    Ok(Outcome::Ok)
}
