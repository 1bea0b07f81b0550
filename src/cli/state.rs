//! `claw state list | show ADDR | rm ADDR | mv FROM TO`.

use super::{lock, read_state, Env, Outcome, StateCmd};
use crate::engine::session;
use crate::error::Result;
use crate::render;

pub async fn run(env: Env, cmd: StateCmd) -> Result<Outcome> {
    let cfg = env.load()?;
    match cmd {
        StateCmd::List => {
            let st = read_state(&env, &cfg).await?;
            print!("{}", render::state::list(&st));
        }
        StateCmd::Show { address } => {
            let st = read_state(&env, &cfg).await?;
            print!(
                "{}",
                render::state::entry(&address, session::entry(&st, &address)?)
            );
        }
        StateCmd::Rm { address } => {
            let store = lock(&env, &cfg, "state rm").await?;
            let removed = store.close(session::forget(&store, &address).await).await?;
            println!(
                "Removed {address} (id {}) from the state; the object itself was not touched.",
                removed.id
            );
        }
        StateCmd::Mv { from, to } => {
            let store = lock(&env, &cfg, "state mv").await?;
            let moved = store
                .close(session::rename(&store, &from, &to).await)
                .await?;
            for (f, t) in &moved {
                println!("Moved {f} to {t} in the state; the object itself was not touched.");
            }
        }
    }
    Ok(Outcome::Ok)
}
