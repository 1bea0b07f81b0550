//! `claw apply [PLANFILE]` and `claw destroy`: plan (or check the saved
//! plan), ask `yes`, walk the operations, print the summary. Ctrl-C or
//! SIGTERM at any point releases the lock and ends in `Outcome::Interrupted`.

use super::plan::refresh_and_plan;
use super::signals::Signals;
use super::{lock, Env, Outcome, RunArgs};
use crate::engine::apply::{self, Outcome as Walked};
use crate::engine::{saved, session, Options, Workspace};
use crate::error::{Error, Problem, Result};
use crate::plan::Plan;
use crate::render::{self, Format};
use crate::state::Store;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

pub async fn run(
    env: Env,
    a: RunArgs,
    replace: Vec<String>,
    planfile: Option<PathBuf>,
    destroy: bool,
) -> Result<Outcome> {
    if planfile.is_some() && !replace.is_empty() {
        return Err(Error::one(
            Problem::new(
                "--replace cannot be combined with a plan file: the plan says what it replaces",
            )
            .hint("make the plan with it: `claw plan --replace ADDR --out FILE`"),
        ));
    }
    let o = env.options(a.targets, replace, destroy, a.parallelism);
    let saved = planfile.as_deref().map(saved::load).transpose()?;
    session::read_ahead(&env.file);
    let cfg = env.load()?;
    if let Some(p) = &saved {
        saved::check_stack(p, &cfg)?;
    }
    // From here on a signal never kills claw while it holds the lock.
    let signals = Signals::listen(env.ui.clone(), "the running operations")?;
    let command = if destroy { "destroy" } else { "apply" };
    let store = lock(&env, &cfg, command).await?;
    let r = locked(env, cfg, &o, saved, a.auto_approve, store.clone(), &signals).await;
    store.close(r).await
}

/// Interrupted before anything changed.
fn nothing_changed() -> Result<Outcome> {
    eprintln!("\nInterrupted; nothing was changed.");
    Ok(Outcome::Interrupted(None))
}

async fn locked(
    env: Env,
    cfg: crate::config::Config,
    o: &Options,
    saved: Option<Plan>,
    auto_approve: bool,
    store: Arc<Store>,
    signals: &Signals,
) -> Result<Outcome> {
    let st = store.snapshot().await;
    let events = env.events();
    let ws = Workspace::build(cfg, env.reg, &st.salt, Some(&st), events, o.verbose)?;
    let ui = &env.ui;
    // Operations left in flight by a run that died: re-checked and recorded.
    for n in session::recover(&ws, &store).await? {
        ui.note_always(&n);
    }
    let st = store.snapshot().await;
    let from_file = saved.is_some();
    let (plan, observed) = match saved {
        Some(p) => {
            ui.status("Checking that the saved plan still holds...");
            let Some(observed) = signals
                .unless_stopped(saved::verify(&ws, &st, &p, o))
                .await?
            else {
                return nothing_changed();
            };
            (p, observed)
        }
        None => {
            let Some(planned) = signals
                .unless_stopped(refresh_and_plan(ui, &ws, &st, o))
                .await?
            else {
                return nothing_changed();
            };
            let plan = planned.plan;
            print!("{}", render::render(&plan, Format::Human, env.color));
            if plan.has_changes() && !auto_approve {
                let verb = if o.destroy { "destroy" } else { "apply" };
                match confirm(verb, signals).await? {
                    None => return nothing_changed(),
                    Some(false) => {
                        eprintln!("Cancelled; nothing was changed.");
                        return Ok(Outcome::Failed(None));
                    }
                    Some(true) => {}
                }
            }
            (plan, planned.observed)
        }
    };
    if signals.stopped() {
        return nothing_changed();
    }
    let ws = Arc::new(ws);
    // Checks run on every apply, changed or not; with nothing to change
    // and no check, there is nothing to walk.
    let walked = if plan.changes.is_empty() && plan.checks.is_empty() {
        if from_file && !plan.has_changes() {
            println!("No changes.");
        }
        None
    } else {
        signals.working();
        ui.start_apply(plan.changes.len() + plan.checks.len());
        let out = apply::run(
            ws.clone(),
            &plan,
            store.clone(),
            Arc::new(observed.clone()),
            o.parallelism,
            &signals.interrupt,
        )
        .await;
        ui.finish_apply();
        print!("{}", render::summary::apply(&out, o.destroy));
        if out.interrupted {
            return Ok(outcome(out));
        }
        Some(out)
    };
    let everything = plan.destroy && plan.targets.is_empty();
    let outputs = ws.record_outputs(&store, &observed, everything).await;
    if let Ok(recorded) = &outputs {
        if !recorded.is_empty() {
            print!("\nOutputs:\n\n{}", render::outputs::list(recorded));
        }
    }
    let done = walked.map(outcome).unwrap_or(Outcome::Ok);
    Ok(match (done, outputs) {
        (done, Ok(_)) => done,
        (Outcome::Failed(Some(mut e)), Err(o)) => {
            e.problems.extend(o.problems);
            Outcome::Failed(Some(e))
        }
        (_, Err(o)) => Outcome::Failed(Some(o)),
    })
}

/// Asks for `yes` on the terminal: `None` when a signal comes first. The
/// line is read on a thread of its own so that the signal can win the race.
async fn confirm(verb: &str, signals: &Signals) -> Result<Option<bool>> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::one(
            Problem::new(format!(
                "refusing to {verb} without confirmation: standard input is not a terminal"
            ))
            .detail("nothing was changed")
            .hint("review the plan above and pass --auto-approve, or apply a saved plan: claw plan --out plan.json && claw apply plan.json"),
        ));
    }
    eprint!("\nDo you want to perform these actions? Only 'yes' will be accepted: ");
    let _ = std::io::stderr().flush();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        let _ = tx.send(line);
    });
    let answer = async { Ok(rx.await.is_ok_and(|l| l.trim() == "yes")) };
    signals.unless_stopped(answer).await
}

fn outcome(out: Walked) -> Outcome {
    let mut problems: Vec<Problem> = out.failed.into_iter().map(|(_, p)| p).collect();
    if out.interrupted {
        problems.push(
            Problem::new("interrupted; the state records every operation that completed")
                .hint("run `claw apply` again: it continues from here"),
        );
        return Outcome::Interrupted(Some(Error::many(problems)));
    }
    if problems.is_empty() {
        return Outcome::Ok;
    }
    problems.push(
        Problem::new("some operations failed; the state records everything that completed")
            .hint("fix the errors above and run `claw apply` again: it continues from here"),
    );
    Outcome::Failed(Some(Error::many(problems)))
}
