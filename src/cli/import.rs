//! `claw import ADDR ID`: adopt an existing object into the state.

use super::signals::Signals;
use super::{lock, Env, Outcome};
use crate::engine::import::import;
use crate::error::Result;

pub async fn run(env: Env, address: String, id: String) -> Result<Outcome> {
    let cfg = env.load()?;
    // A first Ctrl-C lets the import finish; a second abandons it.
    let signals = Signals::listen(env.ui.clone(), "the import")?;
    let store = lock(&env, &cfg, &format!("import {address} {id}")).await?;
    signals.working();
    let events = env.events();
    let work = import(cfg, env.reg, events, &store, &address, &id, env.verbose);
    let imported = tokio::select! {
        r = work => Some(r),
        _ = signals.interrupt.abandon.cancelled() => None,
    };
    let Some(imported) = imported else {
        store.close(Ok(())).await?;
        eprintln!("Abandoned the import; nothing was recorded.");
        return Ok(Outcome::Interrupted(None));
    };
    let id = store.close(imported).await?;
    println!(
        "Imported {address} (id {id}). Run `claw plan` to see how it differs from the configuration."
    );
    Ok(match signals.stopped() {
        true => Outcome::Interrupted(None),
        false => Outcome::Ok,
    })
}
