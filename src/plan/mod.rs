//! The plan model and the one pure function that chooses an action.
//!
//! **Invariant:** nothing in this module does IO. The `Plan` struct is the
//! versioned document behind every format (`--format json`, `--out` files,
//! human and markdown renderings): renderers read it, never the engine.

pub use claw_provider::decide::{
    apply_ignore, decide, path_covered, Action, DecideInput, Reason, Refusal,
};
use claw_provider::{AttrChange, Value};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the plan document; bump on incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// One planned change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Change {
    pub address: String,
    #[serde(rename = "type")]
    pub rtype: String,
    /// `host.local`, `provider.docker`, ...
    pub provider: String,
    pub action: Action,
    /// Why, as data; its `Display` is the text the plan shows.
    pub reason: Reason,
    /// The live object's id, when it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Live attributes the change is measured against (the configured ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// Desired attributes; `{"$unknown": true}` for values known after apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    /// Attribute-level differences, in attribute order.
    #[serde(default)]
    pub diff: Vec<AttrChange>,
    /// Attribute paths whose values are sensitive (never shown).
    #[serde(default)]
    pub sensitive_paths: Vec<String>,
    /// Fingerprint of the live object the plan was made against ("" when absent).
    #[serde(default)]
    pub fingerprint: String,
    /// `[[moved]]`: the address this object had in the state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_from: Option<String>,
    /// The planning inputs (files read) that shaped `after`: keys of
    /// [`Plan::inputs`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    /// Addresses this change waits for (dependencies for create/update; for
    /// delete, the addresses that must be deleted first).
    #[serde(default)]
    pub after_addresses: Vec<String>,
}

/// What happens to an output's recorded value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputAction {
    Create,
    Update,
    Delete,
}

impl OutputAction {
    pub fn symbol(self) -> &'static str {
        match self {
            OutputAction::Create => "+",
            OutputAction::Update => "~",
            OutputAction::Delete => "-",
        }
    }
}

/// An `[output.*]` whose value changes (SPEC §1.1a).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OutputChange {
    pub name: String,
    pub action: OutputAction,
    /// The value the state records; a sensitive one as its keyed hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The value after apply (`{"$unknown": true}` when known only then); a
    /// sensitive one as its keyed hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    #[serde(default)]
    pub sensitive: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub forget: usize,
    #[serde(default)]
    pub adopt: usize,
    #[serde(default)]
    pub state_only: usize,
    #[serde(default)]
    pub moved: usize,
    pub unchanged: usize,
}

/// A whole plan: what `--format json` prints and `--out` saves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    pub format_version: u32,
    pub stack: String,
    /// sha256 of the configuration text and the resolved inputs (vars, secret hashes).
    pub config_hash: String,
    /// The state this plan was made against.
    pub state_lineage: String,
    pub state_serial: u64,
    /// Every input that shaped the plan, by name (`claw.toml`, `var.x`,
    /// `env.NAME`, `file:src.txt`), with its keyed digest (HMAC with the
    /// state's salt, which is not in the plan). A saved plan is refused when
    /// any differs at apply time.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    pub destroy: bool,
    #[serde(default)]
    pub targets: Vec<String>,
    /// `--replace` addresses the plan was made with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace: Vec<String>,
    /// Changes (no-ops excluded), sorted by address.
    pub changes: Vec<Change>,
    /// Outputs whose value changes, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputChange>,
    /// The `[check.*]` addresses apply will run (plan never runs them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    pub summary: Summary,
}

impl Plan {
    /// Objects or outputs change.
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty() || !self.outputs.is_empty()
    }
    pub fn summarize(changes: &[Change], unchanged: usize) -> Summary {
        let mut s = Summary {
            unchanged,
            ..Default::default()
        };
        for c in changes {
            match c.action {
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::DeleteCreate | Action::CreateDelete => s.replace += 1,
                Action::Delete => s.delete += 1,
                Action::Forget => s.forget += 1,
                Action::Adopt => s.adopt += 1,
                Action::StateOnly => s.state_only += 1,
                Action::Move => s.moved += 1,
                Action::NoOp => s.unchanged += 1,
            }
        }
        s
    }
}
