//! `claw completions bash|zsh|fish`: the completion script, from the clap
//! definitions (clap_complete), on stdout.

use super::{Cli, Outcome, ShellArg};
use crate::error::Result;
use clap::CommandFactory;
use clap_complete::Shell;

pub fn run(shell: ShellArg) -> Result<Outcome> {
    let shell = match shell {
        ShellArg::Bash => Shell::Bash,
        ShellArg::Zsh => Shell::Zsh,
        ShellArg::Fish => Shell::Fish,
    };
    clap_complete::generate(shell, &mut Cli::command(), "claw", &mut std::io::stdout());
    Ok(Outcome::Ok)
}
