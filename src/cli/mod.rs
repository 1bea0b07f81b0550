//! Command-line definitions and one thin function per command: parse →
//! engine → render. No provider calls here.

mod ui;

use crate::config::Config;
use crate::engine::{self, apply, Events, Options, Workspace};
use crate::error::{closest, Error, Problem, Result};
use crate::plan::{Plan, FORMAT_VERSION};
use crate::registry::Registry;
use crate::render::{self, Format};
use crate::state::{self, State, Store};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "claw",
    version,
    about = "Declarative provisioning for an AI-agent fleet: SSH hosts, Docker, Kubernetes and Tailscale in one graph"
)]
pub struct Cli {
    /// Run as if started in DIR.
    #[arg(short = 'C', long = "chdir", global = true, value_name = "DIR")]
    pub chdir: Option<PathBuf>,
    /// The configuration file.
    #[arg(
        short = 'f',
        long = "file",
        global = true,
        default_value = "claw.toml",
        value_name = "FILE"
    )]
    pub file: PathBuf,
    /// Set a variable (repeatable): --var name=value.
    #[arg(long = "var", global = true, value_name = "K=V")]
    pub vars: Vec<String>,
    /// No colour (also NO_COLOR).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Print only the essentials.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more: provider call counters, timings.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum FormatArg {
    Human,
    Markdown,
    Json,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Human => Format::Human,
            FormatArg::Markdown => Format::Markdown,
            FormatArg::Json => Format::Json,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// Save the plan to FILE (JSON, see schemas/plan.schema.json).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "human")]
    pub format: FormatArg,
    /// Limit to ADDR and what it depends on (repeatable).
    #[arg(long = "target", value_name = "ADDR")]
    pub targets: Vec<String>,
    /// Plan the deletion of everything the stack owns.
    #[arg(long)]
    pub destroy: bool,
    /// Exit 2 when the plan has changes, 0 when it has none.
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[arg(long, default_value_t = 10)]
    pub parallelism: usize,
}

/// Options of the commands that change things (apply, destroy).
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Do not ask for confirmation (required without a TTY).
    #[arg(long)]
    pub auto_approve: bool,
    /// Limit to ADDR and what it depends on (for destroy: what depends on it).
    #[arg(long = "target", value_name = "ADDR")]
    pub targets: Vec<String>,
    /// At most N operations at once.
    #[arg(long, default_value_t = 10)]
    pub parallelism: usize,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check the configuration; touches nothing live.
    Validate,
    /// Refresh live state and show what apply would change.
    Plan(PlanArgs),
    /// Converge the live fleet (or apply a saved plan exactly).
    Apply {
        /// A plan saved with `claw plan --out`.
        planfile: Option<PathBuf>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Delete everything the stack owns, dependents first.
    Destroy {
        #[command(flatten)]
        run: RunArgs,
    },
    /// Render a saved plan, or the current state.
    Show {
        planfile: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "human")]
        format: FormatArg,
    },
    /// The dependency graph as Graphviz DOT.
    Graph {
        #[arg(long)]
        destroy: bool,
    },
    /// Inspect and edit the state.
    #[command(subcommand)]
    State(StateCmd),
    /// Adopt an existing object into the state.
    Import { address: String, id: String },
    /// Remove a stale lock, after showing who held it.
    ForceUnlock,
}

#[derive(Subcommand, Debug)]
pub enum StateCmd {
    /// List the addresses in the state.
    List,
    /// Show one address.
    Show { address: String },
    /// Forget an address (the object itself is left alone).
    Rm { address: String },
}

/// Runs the CLI; returns the exit code.
pub async fn run(cli: Cli) -> Result<i32> {
    if let Some(d) = &cli.chdir {
        std::env::set_current_dir(d)
            .map_err(|e| Error::msg(format!("cannot change to {}: {e}", d.display())))?;
    }
    let vars = parse_vars(&cli.vars)?;
    let color =
        !cli.no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
    let ui = ui::Ui::new(
        cli.quiet,
        cli.verbose,
        !cli.no_color && std::env::var_os("NO_COLOR").is_none(),
    );
    let events: Arc<dyn Events> = ui.clone();
    let reg = Registry::builtin();
    let opts = |targets: Vec<String>, destroy: bool, parallelism: usize| Options {
        file: cli.file.clone(),
        vars: vars.clone(),
        targets,
        destroy,
        parallelism,
        verbose: cli.verbose,
    };
    match cli.command {
        Command::Validate => {
            let cfg = Config::load(&cli.file, &vars, &reg)?;
            let resources = cfg.resources.len();
            let ws = Workspace::build(cfg, reg, "validate", None, events, cli.verbose)?;
            if !cli.quiet {
                println!(
                    "The configuration is valid: {} resources, {} instances (stack {}).",
                    resources,
                    ws.nodes.len(),
                    ws.cfg.stack
                );
            }
            Ok(0)
        }
        Command::Plan(a) => {
            let o = opts(a.targets.clone(), a.destroy, a.parallelism);
            let cfg = Config::load(&cli.file, &vars, &reg)?;
            let storage = engine::open_storage(&cfg, &reg).await?;
            let store = Store::read(storage, &cfg.stack).await?;
            print_notices(&store, &ui);
            let st = store.snapshot().await;
            let ws = Workspace::build(cfg, reg, &st.salt, Some(&st), events, cli.verbose)?;
            let (plan, _) = make_plan(&ws, &st, &o, &ui).await?;
            print!("{}", render::render(&plan, a.format.into(), color));
            if let Some(out) = &a.out {
                save_plan(out, &plan)?;
                ui.info(&format!(
                    "Saved the plan to {}. Apply it exactly with: claw apply {}",
                    out.display(),
                    out.display()
                ));
            }
            Ok(if a.detailed_exitcode && plan.has_changes() {
                2
            } else {
                0
            })
        }
        Command::Apply { planfile, run } => {
            let auto_approve = run.auto_approve;
            let o = opts(run.targets, false, run.parallelism);
            apply_cmd(
                &cli.file,
                &vars,
                reg,
                events,
                &ui,
                o,
                planfile.as_deref(),
                auto_approve,
                color,
            )
            .await
        }
        Command::Destroy { run } => {
            let auto_approve = run.auto_approve;
            let o = opts(run.targets, true, run.parallelism);
            apply_cmd(
                &cli.file,
                &vars,
                reg,
                events,
                &ui,
                o,
                None,
                auto_approve,
                color,
            )
            .await
        }
        Command::Show { planfile, format } => {
            match planfile {
                Some(p) => {
                    let plan = load_plan(&p)?;
                    print!("{}", render::render(&plan, format.into(), color));
                }
                None => {
                    let cfg = Config::load(&cli.file, &vars, &reg)?;
                    let store =
                        Store::read(engine::open_storage(&cfg, &reg).await?, &cfg.stack).await?;
                    let st = store.snapshot().await;
                    print!("{}", show_state(&st, format));
                }
            }
            Ok(0)
        }
        Command::Graph { destroy } => {
            let cfg = Config::load(&cli.file, &vars, &reg)?;
            let ws = Workspace::build(cfg, reg, "graph", None, events, cli.verbose)?;
            print!("{}", ws.graph.dot(destroy));
            Ok(0)
        }
        Command::State(sc) => {
            let cfg = Config::load(&cli.file, &vars, &reg)?;
            let storage = engine::open_storage(&cfg, &reg).await?;
            match sc {
                StateCmd::List => {
                    let st = Store::read(storage, &cfg.stack).await?.snapshot().await;
                    for (a, e) in &st.resources {
                        println!("{a}\t{}", e.id);
                    }
                }
                StateCmd::Show { address } => {
                    let st = Store::read(storage, &cfg.stack).await?.snapshot().await;
                    let e = st
                        .resources
                        .get(&address)
                        .ok_or_else(|| no_such_address(&address, &st))?;
                    let mut one = BTreeMap::new();
                    one.insert(address.clone(), e.clone());
                    println!("{}", serde_json::to_string_pretty(&one).unwrap_or_default());
                }
                StateCmd::Rm { address } => {
                    let store = lock_store(storage, &cfg.stack, "state rm", &ui).await?;
                    let removed = store.state.lock().await.resources.remove(&address);
                    let r = match removed {
                        Some(e) => {
                            store.save().await?;
                            println!("Removed {address} (id {}) from the state; the object itself was not touched.", e.id);
                            Ok(0)
                        }
                        None => {
                            let st = store.snapshot().await;
                            Err(no_such_address(&address, &st))
                        }
                    };
                    store.unlock().await;
                    return r;
                }
            }
            Ok(0)
        }
        Command::Import { address, id } => {
            let cfg = Config::load(&cli.file, &vars, &reg)?;
            let storage = engine::open_storage(&cfg, &reg).await?;
            let store =
                lock_store(storage, &cfg.stack, &format!("import {address} {id}"), &ui).await?;
            let r = import_cmd(cfg, reg, events, &store, &address, &id, cli.verbose).await;
            store.unlock().await;
            r
        }
        Command::ForceUnlock => {
            let cfg = Config::load(&cli.file, &vars, &reg)?;
            let storage = engine::open_storage(&cfg, &reg).await?;
            match storage
                .force_unlock()
                .await
                .map_err(|d| Error::one(Problem::from_diag(&d, None)))?
            {
                Some(h) => println!(
                    "Removed the lock on {} held by {}.",
                    storage.describe(),
                    state::describe_holder(&h)
                ),
                None => println!("The state {} is not locked.", storage.describe()),
            }
            Ok(0)
        }
    }
}

/// Takes the state lock and prints what the backend noticed (e.g. an
/// expired lock taken over, with its former holder).
async fn lock_store(
    storage: Box<dyn claw_provider::StateStorage>,
    stack: &str,
    command: &str,
    ui: &ui::Ui,
) -> Result<Store> {
    let store = Store::lock(storage, stack, command).await?;
    print_notices(&store, ui);
    Ok(store)
}

/// Prints what the state store noticed (a lock taken over, a journal folded).
fn print_notices(store: &Store, ui: &ui::Ui) {
    for d in store.take_notices() {
        ui.note_always(&Problem::from_diag(&d, None).to_string());
    }
}

fn no_such_address(address: &str, st: &State) -> Error {
    let p = Problem::new(format!("{address} is not in the state"));
    Error::one(
        match closest(address, st.resources.keys().map(String::as_str)) {
            Some(c) => p.hint(format!("did you mean `{c}`?")),
            None => p.hint("`claw state list` shows the addresses"),
        },
    )
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

/// Refreshes and plans, printing the provider counters with `-v`.
async fn make_plan(
    ws: &Workspace,
    st: &State,
    o: &Options,
    ui: &ui::Ui,
) -> Result<(Plan, BTreeMap<String, engine::Observed>)> {
    let started = std::time::Instant::now();
    ui.status("Refreshing live state...");
    let only = ws.select_targets(&o.targets, st, o.destroy)?;
    let observed = ws.refresh(st, only.as_ref()).await?;
    let plan = ws.plan(st, &observed, o).await?;
    if ui.verbose {
        for (key, p) in &ws.providers {
            for (name, n) in p.counters() {
                ui.info(&format!("{key}: {n} {name}"));
            }
        }
        ui.info(&format!(
            "refresh and plan took {} ms",
            started.elapsed().as_millis()
        ));
    }
    Ok((plan, observed))
}

fn save_plan(path: &Path, plan: &Plan) -> Result<()> {
    crate::state::local::write_atomic(path, render::json(plan).as_bytes())
        .map_err(|e| Error::msg(format!("cannot write the plan to {}: {e}", path.display())))
}

fn load_plan(path: &Path) -> Result<Plan> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::msg(format!("cannot read the plan file {}: {e}", path.display())))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::one(
            Problem::new(format!("{} is not a claw plan file: {e}", path.display()))
                .hint("make one with `claw plan --out FILE`"),
        )
    })?;
    let ver = v
        .get("format_version")
        .and_then(|x| x.as_u64())
        .unwrap_or(0);
    if ver != FORMAT_VERSION as u64 {
        return Err(Error::one(
            Problem::new(format!(
                "{} has plan format version {ver}; this claw reads version {FORMAT_VERSION}",
                path.display()
            ))
            .hint("make a new plan with this claw: `claw plan --out FILE`"),
        ));
    }
    serde_json::from_value(v).map_err(|e| {
        Error::one(
            Problem::new(format!(
                "{} is not a valid claw plan file: {e}",
                path.display()
            ))
            .hint("make one with `claw plan --out FILE`"),
        )
    })
}

#[allow(clippy::too_many_arguments)]
async fn apply_cmd(
    file: &Path,
    vars: &[(String, String)],
    reg: Registry,
    events: Arc<dyn Events>,
    ui: &Arc<ui::Ui>,
    o: Options,
    planfile: Option<&Path>,
    auto_approve: bool,
    color: bool,
) -> Result<i32> {
    let saved = planfile.map(load_plan).transpose()?;
    let cfg = Config::load(file, vars, &reg)?;
    if let Some(p) = &saved {
        if p.stack != cfg.stack {
            return Err(Error::one(
                Problem::new(format!(
                    "the plan is for stack `{}`, but claw.toml is stack `{}`",
                    p.stack, cfg.stack
                ))
                .detail("nothing was changed")
                .hint("apply the plan from the folder of its stack, or make a new plan"),
            ));
        }
    }
    let storage = engine::open_storage(&cfg, &reg).await?;
    let command = if o.destroy { "destroy" } else { "apply" };
    let store = Arc::new(lock_store(storage, &cfg.stack, command, ui).await?);
    let result = apply_locked(
        cfg,
        reg,
        events,
        ui,
        &o,
        saved,
        auto_approve,
        color,
        store.clone(),
    )
    .await;
    store.close(result).await
}

#[allow(clippy::too_many_arguments)]
async fn apply_locked(
    cfg: Config,
    reg: Registry,
    events: Arc<dyn Events>,
    ui: &Arc<ui::Ui>,
    o: &Options,
    saved: Option<Plan>,
    auto_approve: bool,
    color: bool,
    store: Arc<Store>,
) -> Result<i32> {
    if let Some(p) = &saved {
        // A plan made before the first apply fixes the new state's identity.
        let mut st = store.state.lock().await;
        if st.serial == 0 && st.resources.is_empty() {
            if let Some(salt) = &p.new_state_salt {
                st.salt = salt.clone();
                st.lineage = p.state_lineage.clone();
            }
        }
    }
    let st = store.snapshot().await;
    let ws = Workspace::build(cfg, reg, &st.salt, Some(&st), events, o.verbose)?;
    // Operations left in flight by a run that died: re-checked and recorded.
    for n in state::recover::in_flight(&ws, &store).await? {
        ui.note_always(&n);
    }
    let st = store.snapshot().await;
    let (plan, observed) = match saved {
        Some(p) => {
            let stale = |why: String| {
                Error::one(
                    Problem::new(format!("the plan is stale: {why}"))
                        .detail("nothing was changed")
                        .hint("make a new plan with `claw plan --out FILE` and review it"),
                )
            };
            if p.state_lineage != st.lineage {
                return Err(stale("it was made against another state".into()));
            }
            if p.state_serial != st.serial {
                return Err(stale(format!(
                    "the state changed since the plan was made (serial {} → {})",
                    p.state_serial, st.serial
                )));
            }
            ui.status("Checking that the saved plan still holds...");
            let again = Options {
                targets: p.targets.clone(),
                destroy: p.destroy,
                ..o.clone()
            };
            let (now, observed) = make_plan(&ws, &st, &again, ui).await?;
            let problems = engine::contract::compare_plans(&p, &now);
            if !problems.is_empty() {
                let n = problems.len();
                let mut e = Error::many(problems);
                e.problems.push(
                    Problem::new(format!(
                        "the saved plan no longer holds ({n} difference{}); nothing was changed",
                        if n == 1 { "" } else { "s" }
                    ))
                    .hint("make a new plan with `claw plan --out FILE` and review it"),
                );
                return Err(e);
            }
            (p, observed)
        }
        None => {
            let (plan, observed) = make_plan(&ws, &st, o, ui).await?;
            print!("{}", render::render(&plan, Format::Human, color));
            if !plan.has_changes() {
                return Ok(0);
            }
            if !auto_approve {
                if !std::io::stdin().is_terminal() {
                    return Err(Error::one(Problem::new(format!("refusing to {} without confirmation: standard input is not a terminal", if o.destroy { "destroy" } else { "apply" })).detail("nothing was changed").hint("review the plan above and pass --auto-approve, or apply a saved plan: claw plan --out plan.json && claw apply plan.json")));
                }
                eprint!("\nDo you want to perform these actions? Only 'yes' will be accepted: ");
                let _ = std::io::stderr().flush();
                let mut line = String::new();
                let _ = std::io::stdin().read_line(&mut line);
                if line.trim() != "yes" {
                    eprintln!("Cancelled; nothing was changed.");
                    return Ok(1);
                }
            }
            (plan, observed)
        }
    };
    if !plan.has_changes() {
        println!("No changes.");
        return Ok(0);
    }
    let cancel = Arc::new(AtomicBool::new(false));
    let c2 = cancel.clone();
    let ui2 = ui.clone();
    let sig = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            c2.store(true, Ordering::SeqCst);
            ui2.interrupt("Interrupted: finishing the running operations and saving the state (Ctrl-C again to abandon)...");
            if tokio::signal::ctrl_c().await.is_ok() {
                ui2.interrupt("Abandoned. The state holds every operation that completed.");
                std::process::exit(130);
            }
        }
    });
    ui.start_apply(plan.changes.len());
    let ws = Arc::new(ws);
    let out = apply::run(
        ws.clone(),
        &plan,
        store.clone(),
        Arc::new(observed),
        o.parallelism,
        cancel.clone(),
    )
    .await;
    sig.abort();
    ui.finish_apply();
    // Summary.
    let mut s = String::new();
    s.push_str(&format!(
        "\n{} complete: {} done, {} failed, {} skipped.\n",
        if o.destroy { "Destroy" } else { "Apply" },
        out.done.len(),
        out.failed.len(),
        out.skipped.len()
    ));
    for (a, p) in &out.failed {
        s.push_str(&format!("  failed:  {a}: {}\n", p.message));
    }
    for (a, why) in &out.skipped {
        s.push_str(&format!("  skipped: {a} ({why})\n"));
    }
    print!("{s}");
    if !out.failed.is_empty() {
        let mut e = Error::many(out.failed.into_iter().map(|(_, p)| p).collect());
        e.problems.push(
            Problem::new("some operations failed; the state records everything that completed")
                .hint("fix the errors above and run `claw apply` again: it continues from here"),
        );
        if out.interrupted {
            e.code = 130;
        }
        return Err(e);
    }
    if out.interrupted {
        let mut e = Error::msg("interrupted; the state records every operation that completed");
        e.code = 130;
        return Err(e);
    }
    Ok(0)
}

async fn import_cmd(
    cfg: Config,
    reg: Registry,
    events: Arc<dyn Events>,
    store: &Store,
    address: &str,
    id: &str,
    verbose: bool,
) -> Result<i32> {
    let st = store.snapshot().await;
    if st.resources.contains_key(address) {
        return Err(Error::one(
            Problem::new(format!("{address} is already in the state")).hint(format!(
                "to adopt another object, first `claw state rm {address}`"
            )),
        ));
    }
    let ws = Workspace::build(cfg, reg, &st.salt, Some(&st), events, verbose)?;
    let Some(node) = ws.nodes.get(address) else {
        let p = Problem::new(format!("{address} is not declared in the configuration"));
        return Err(Error::one(
            match closest(address, ws.nodes.keys().map(String::as_str)) {
                Some(c) => p.hint(format!("did you mean `{c}`?")),
                None => p.hint("declare the resource in claw.toml first, then import it"),
            },
        ));
    };
    let lookup = |r: &crate::config::template::ResRef| {
        st.resources
            .get(&r.instance())
            .and_then(|e| {
                claw_provider::Value::Map(e.attrs.clone())
                    .get_path(&r.attr)
                    .cloned()
            })
            .unwrap_or(claw_provider::Value::Unknown)
    };
    let desired = ws.desired(address, &lookup).ok();
    let obj = ws.providers[&node.inst.provider_key]
        .import(claw_provider::ImportRequest {
            ctx: ws.ctx(),
            address: address.to_string(),
            rtype: node.inst.rtype.clone(),
            id: id.to_string(),
            desired,
        })
        .await
        .into_state()
        .map_err(|d| Error::one(ws.diag_problem(&d, address)))?;
    store.state.lock().await.resources.insert(
        address.to_string(),
        crate::state::Entry {
            rtype: node.inst.rtype.clone(),
            provider: node.inst.provider_key.clone(),
            id: obj.id.clone(),
            attrs: obj.attrs,
            private: obj.private,
            deps: node.deps.iter().cloned().collect(),
            prevent_destroy: node.lifecycle.prevent_destroy,
        },
    );
    store.save().await?;
    println!(
        "Imported {address} (id {}). Run `claw plan` to see how it differs from the configuration.",
        obj.id
    );
    Ok(0)
}

fn show_state(st: &State, format: FormatArg) -> String {
    match format {
        FormatArg::Json => {
            let mut s = String::from_utf8(st.to_bytes()).unwrap_or_default();
            if !s.ends_with('\n') {
                s.push('\n');
            }
            s
        }
        _ => {
            let mut s = format!(
                "Stack {} (state serial {}, {} objects)\n",
                st.stack,
                st.serial,
                st.resources.len()
            );
            for (a, e) in &st.resources {
                s.push_str(&format!(
                    "\n{a}\n    id = {}\n",
                    serde_json::to_string(&e.id).unwrap_or_default()
                ));
                for (k, v) in &e.attrs {
                    s.push_str(&format!(
                        "    {} = {}\n",
                        claw_provider::value::render_key(k),
                        v.render_inline()
                    ));
                }
            }
            s
        }
    }
}
