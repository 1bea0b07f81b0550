//! `claw.toml`: parsing with spans, the typed model, `for_each` expansion and
//! interpolation of vars, env, each and secrets.
//!
//! **Invariant:** every error names `file:line:column`; nothing here does IO
//! beyond reading the config file and `{ file = ... }` secrets.

pub mod checks;
mod evaluate;
pub mod lifecycle;
pub mod moved;
pub mod node;
pub mod outputs;
mod parse;
mod secrets;
mod settings;
mod shape;
pub mod template;
mod types;

pub use evaluate::{body_refs, expand_home, value_to_ex};
pub use parse::{base_dir_of, default_state_path};
pub use secrets::Eval;
pub use settings::valid_stack_name;
pub use types::*;
