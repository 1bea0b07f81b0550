//! What the harness plans with: resources, recorded state, plans.

use crate::decide::{Action, Reason};
use crate::diag::Diagnostic;
use crate::diff::AttrChange;
use crate::provider::*;
use crate::value::{Attrs, Value};
use std::collections::BTreeMap;

/// `lifecycle = { ... }` of a resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lifecycle {
    pub prevent_destroy: bool,
    pub create_before_destroy: bool,
    pub ignore_changes: Vec<String>,
}

/// One configured resource (one instance; a provider may expand it).
#[derive(Debug, Clone)]
pub struct Resource {
    pub rtype: String,
    pub name: String,
    /// The `for_each` key, if any.
    pub key: Option<String>,
    pub attrs: Attrs,
    pub lifecycle: Lifecycle,
    /// Addresses (`type.name`, or an instance's) this one waits for.
    pub depends_on: Vec<String>,
}

impl Resource {
    pub fn new(rtype: &str, name: &str, attrs: Attrs) -> Resource {
        Resource {
            rtype: rtype.into(),
            name: name.into(),
            key: None,
            attrs,
            lifecycle: Lifecycle::default(),
            depends_on: Vec::new(),
        }
    }
    /// A resource from a JSON object of attributes.
    pub fn json(rtype: &str, name: &str, attrs: serde_json::Value) -> Resource {
        match Value::from_json(&attrs) {
            Value::Map(m) => Resource::new(rtype, name, m),
            other => panic!("the attributes of {rtype}.{name} must be an object, not {other:?}"),
        }
    }
    /// This instance's `for_each` key.
    pub fn key(mut self, key: &str) -> Resource {
        self.key = Some(key.into());
        self
    }
    pub fn lifecycle(mut self, lifecycle: Lifecycle) -> Resource {
        self.lifecycle = lifecycle;
        self
    }
    pub fn depends_on(mut self, address: &str) -> Resource {
        self.depends_on.push(address.into());
        self
    }
    /// `type.name` or `type.name["key"]`.
    pub fn address(&self) -> String {
        address(&self.rtype, &self.name, self.key.as_deref())
    }
}

/// The address of an instance, as the engine writes it.
pub fn address(rtype: &str, name: &str, key: Option<&str>) -> String {
    match key {
        Some(k) => format!(
            "{rtype}.{name}[{}]",
            serde_json::to_string(k).unwrap_or_default()
        ),
        None => format!("{rtype}.{name}"),
    }
}

/// What the harness recorded about an object (the engine's state entry).
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub rtype: String,
    pub object: StateObject,
    /// The addresses it depended on when applied (deletes wait for it).
    pub deps: Vec<String>,
    pub prevent_destroy: bool,
}

/// One planned change (no-ops are only counted).
#[derive(Debug, Clone)]
pub struct Change {
    pub address: String,
    pub rtype: String,
    pub action: Action,
    pub reason: Reason,
    /// The prepared attributes (`None` for deletes of unconfigured objects).
    pub desired: Option<Attrs>,
    pub live: Option<LiveObject>,
    pub prior: Option<StateObject>,
    pub diff: Vec<AttrChange>,
    pub replace_note: Option<String>,
    pub deps: Vec<String>,
    pub prevent_destroy: bool,
}

/// A plan, as the engine would make it.
#[derive(Debug, Default)]
pub struct Plan {
    /// Sorted by address; no-ops left out.
    pub changes: Vec<Change>,
    pub unchanged: usize,
    /// Errors and warnings of every call (and the refusals of `decide`).
    pub diagnostics: Vec<Diagnostic>,
    /// Every file read while planning.
    pub inputs: Vec<Input>,
    /// The provider's implicit edges.
    pub edges: Vec<Edge>,
    /// Everything the one refresh call returned, by address (orphans too).
    pub live: BTreeMap<String, Option<LiveObject>>,
    /// The provider's counters spent making the plan (`counters()` summed).
    pub calls: u64,
}

impl Plan {
    pub fn get(&self, address: &str) -> Option<&Change> {
        self.changes.iter().find(|c| c.address == address)
    }
    pub fn action(&self, address: &str) -> Option<Action> {
        self.get(address).map(|c| c.action)
    }
    /// The addresses planned for `action`.
    pub fn with(&self, action: Action) -> Vec<&str> {
        self.changes
            .iter()
            .filter(|c| c.action == action)
            .map(|c| c.address.as_str())
            .collect()
    }
    pub fn errors(&self) -> Vec<&Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error()).collect()
    }
    pub fn error(&self) -> Option<&Diagnostic> {
        self.diagnostics.iter().find(|d| d.is_error())
    }
    /// No change and no error.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.error().is_none()
    }
}
