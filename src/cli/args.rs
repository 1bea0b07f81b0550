//! The clap definitions of every command and option (SPEC §2).

use crate::render::Format;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

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

/// The shells `claw completions` writes for.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum ShellArg {
    Bash,
    Zsh,
    Fish,
}

/// `claw check --format`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum CheckFormat {
    Human,
    Json,
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
    /// Plan a replace of ADDR even when it has not changed (repeatable; a
    /// resource name selects all its instances).
    #[arg(long = "replace", value_name = "ADDR")]
    pub replace: Vec<String>,
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
        /// Replace ADDR even when it has not changed (repeatable; a resource
        /// name selects all its instances).
        #[arg(long = "replace", value_name = "ADDR")]
        replace: Vec<String>,
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
    /// The stack's outputs, as the last apply recorded them.
    Output {
        /// Print only this output's value (a sensitive one too).
        name: Option<String>,
        /// One JSON object (sensitive values included, like `terraform output -json`).
        #[arg(long)]
        json: bool,
    },
    /// Run every [check.*] now, once each; exit 0 when all are healthy.
    Check {
        #[arg(long, value_enum, default_value = "human")]
        format: CheckFormat,
    },
    /// A shell completion script: `source <(claw completions bash)`.
    Completions {
        #[arg(value_enum)]
        shell: ShellArg,
    },
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
    /// Rename an address in the state (the object itself is left alone);
    /// a resource name moves all its instances.
    Mv { from: String, to: String },
}
