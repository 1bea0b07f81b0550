//! `claw force-unlock`: remove a lock, naming who held it.

use super::open_storage;
use crate::config::Config;
use crate::error::{Error, Problem, Result};
use crate::registry::Registry;

pub enum Unlocked {
    /// The lock on `state` (where it lives), held by `holder`, was removed.
    Removed {
        state: String,
        holder: String,
    },
    NotLocked {
        state: String,
    },
}

pub async fn force_unlock(cfg: &Config, reg: &Registry) -> Result<Unlocked> {
    let storage = open_storage(cfg, reg).await?;
    let held = storage
        .force_unlock()
        .await
        .map_err(|d| Error::one(Problem::from_diag(&d, None)))?;
    let name = storage.describe();
    Ok(match held {
        Some(h) => Unlocked::Removed {
            state: name,
            holder: crate::state::describe_holder(&h),
        },
        None => Unlocked::NotLocked { state: name },
    })
}
