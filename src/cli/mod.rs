//! The command line: clap types in `args.rs`, one small file per command
//! (parse → engine → render). Nothing here calls a provider, the state
//! backend or the SDK: that is `engine/`. A command returns an [`Outcome`];
//! `main.rs` alone turns it into the exit code.

mod apply;
mod args;
mod check;
mod completions;
mod force_unlock;
mod graph;
mod import;
mod output;
mod plan;
mod show;
mod signals;
mod state;
mod ui;
mod validate;

pub use args::{CheckFormat, Cli, Command, FormatArg, PlanArgs, RunArgs, ShellArg, StateCmd};

use crate::config::Config;
use crate::engine::{session, Events, Options};
use crate::error::{Error, Problem, Result};
use crate::registry::Registry;
use crate::state::{State, Store};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

/// How a command ended; `main.rs` maps it to the exit code (SPEC §2).
#[derive(Debug)]
pub enum Outcome {
    /// Exit 0.
    Ok,
    /// `plan --detailed-exitcode` found changes: exit 2.
    Changes,
    /// Exit 1, after printing the errors (if any are left to print).
    Failed(Option<Error>),
    /// Interrupted by SIGINT or SIGTERM: exit 130, after printing the errors.
    Interrupted(Option<Error>),
}

/// What every command gets from the global options.
pub(crate) struct Env {
    pub file: PathBuf,
    pub vars: Vec<(String, String)>,
    pub reg: Registry,
    pub ui: Arc<ui::Ui>,
    /// Colour on stdout (a TTY, without `--no-color` or `NO_COLOR`).
    pub color: bool,
    pub verbose: bool,
    pub quiet: bool,
}

impl Env {
    fn load(&self) -> Result<Config> {
        Config::load(&self.file, &self.vars, &self.reg)
    }

    /// What the state store noticed: shown even with `-q`.
    fn notices(&self, notices: &[Problem]) {
        for n in notices {
            self.ui.note_always(&n.to_string());
        }
    }

    fn events(&self) -> Arc<dyn Events> {
        self.ui.clone()
    }

    fn options(
        &self,
        targets: Vec<String>,
        replace: Vec<String>,
        destroy: bool,
        parallelism: usize,
    ) -> Options {
        Options {
            file: self.file.clone(),
            vars: self.vars.clone(),
            targets,
            replace,
            destroy,
            parallelism,
            verbose: self.verbose,
        }
    }
}

/// Runs one command.
pub async fn run(cli: Cli) -> Result<Outcome> {
    if let Some(d) = &cli.chdir {
        std::env::set_current_dir(d)
            .map_err(|e| Error::msg(format!("cannot change to {}: {e}", d.display())))?;
    }
    let no_color = cli.no_color || std::env::var_os("NO_COLOR").is_some();
    let env = Env {
        vars: parse_vars(&cli.vars)?,
        file: cli.file,
        reg: Registry::builtin(),
        ui: ui::Ui::new(cli.quiet, cli.verbose, !no_color),
        color: !no_color && std::io::stdout().is_terminal(),
        verbose: cli.verbose,
        quiet: cli.quiet,
    };
    match cli.command {
        Command::Validate => validate::run(env),
        Command::Plan(a) => plan::run(env, a).await,
        Command::Apply {
            planfile,
            replace,
            run,
        } => apply::run(env, run, replace, planfile, false).await,
        Command::Destroy { run } => apply::run(env, run, vec![], None, true).await,
        Command::Show { planfile, format } => show::run(env, planfile, format.into()).await,
        Command::Graph { destroy } => graph::run(env, destroy),
        Command::State(sc) => state::run(env, sc).await,
        Command::Completions { shell } => completions::run(shell),
        Command::Check { format } => check::run(env, format).await,
        Command::Output { name, json } => output::run(env, name, json).await,
        Command::Import { address, id } => import::run(env, address, id).await,
        Command::ForceUnlock => force_unlock::run(env).await,
    }
}

/// Takes the state lock for `command` and prints what the store noticed
/// (e.g. a dead holder's lock taken over). The caller closes the store
/// (folds the journal, unlocks) however its work ends.
async fn lock(env: &Env, cfg: &Config, command: &str) -> Result<Arc<Store>> {
    let locked = session::lock(cfg, &env.reg, command).await?;
    env.notices(&locked.notices);
    Ok(locked.store)
}

/// Reads the state without locking it; prints what the store noticed.
async fn read_state(env: &Env, cfg: &Config) -> Result<State> {
    let (st, notices) = session::read_state(cfg, &env.reg).await?;
    env.notices(&notices);
    Ok(st)
}

fn parse_vars(raw: &[String]) -> Result<Vec<(String, String)>> {
    raw.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Error::one(
                Problem::new(format!("--var {kv:?}: expected NAME=VALUE"))
                    .hint("e.g. --var namespace=clawdbot"),
            )),
        })
        .collect()
}
