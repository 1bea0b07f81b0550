//! The plan model and the one pure function that chooses an action.
//!
//! **Invariant:** nothing in this module does IO. The `Plan` struct is the
//! versioned document behind every format (`--format json`, `--out` files,
//! human and markdown renderings): renderers read it, never the engine.

use crate::config::Lifecycle;
use claw_provider::{AttrChange, Owner, Value};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the plan document; bump on incompatible change.
pub const FORMAT_VERSION: u32 = 1;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    NoOp,
    Create,
    Update,
    /// Replace: delete the old object, then create the new one.
    DeleteCreate,
    /// Replace with `create_before_destroy`.
    CreateDelete,
    Delete,
    /// A drift note: the object is gone and only its state entry is removed.
    Forget,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::DeleteCreate => "-/+",
            Action::CreateDelete => "+/-",
            Action::Delete => "-",
            Action::Forget => "!",
        }
    }
    pub fn word(self) -> &'static str {
        match self {
            Action::NoOp => "no-op",
            Action::Create => "create",
            Action::Update => "update in place",
            Action::DeleteCreate | Action::CreateDelete => "replace",
            Action::Delete => "delete",
            Action::Forget => "forget",
        }
    }
    pub fn is_replace(self) -> bool {
        matches!(self, Action::DeleteCreate | Action::CreateDelete)
    }
}

/// One planned change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Change {
    pub address: String,
    #[serde(rename = "type")]
    pub rtype: String,
    /// `host.local`, `provider.docker`, ...
    pub provider: String,
    pub action: Action,
    /// Why, in a few words ("image changed", "session missing", "not in configuration").
    pub reason: String,
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
    /// Addresses this change waits for (dependencies for create/update; for
    /// delete, the addresses that must be deleted first).
    #[serde(default)]
    pub after_addresses: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub forget: usize,
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
    /// Only for a plan made before any state exists: the salt the new state
    /// will use, so that secret hashes in this plan stay comparable. (A salt
    /// is not secret; the state file holds it too.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_state_salt: Option<String>,
    pub destroy: bool,
    #[serde(default)]
    pub targets: Vec<String>,
    /// Changes (no-ops excluded), sorted by address.
    pub changes: Vec<Change>,
    pub summary: Summary,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
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
                Action::NoOp => s.unchanged += 1,
            }
        }
        s
    }
}

/// Everything `decide` looks at for one address.
pub struct DecideInput<'a> {
    /// Declared in the configuration (false for every address in destroy mode).
    pub in_config: bool,
    pub destroy_mode: bool,
    pub in_state: bool,
    /// The live object's owner, when it exists.
    pub live: Option<&'a Owner>,
    /// Differences after `ignore_changes` (empty when not compared).
    pub changes: &'a [AttrChange],
    /// Paths whose desired value equals what claw applied last time (so a
    /// difference is drift made outside claw).
    pub drifted: &'a [String],
    pub lifecycle: &'a Lifecycle,
    pub replace_note: Option<&'a str>,
}

/// Why no action can be chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// A same-name object exists without this stack's labels.
    Unmanaged { other_stack: Option<String> },
    /// `prevent_destroy` forbids the delete or replace.
    PreventDestroy { action: Action },
}

/// Chooses the action for one address (Terraform's `getAction`).
pub fn decide(i: &DecideInput<'_>) -> Result<(Action, String), Refusal> {
    let foreign = |o: &Owner| match o {
        Owner::Unmanaged => Some(None),
        Owner::OtherStack(s) => Some(Some(s.clone())),
        _ => None,
    };
    if !i.in_config {
        return match i.live {
            None if i.in_state => Ok((
                Action::Forget,
                "deleted outside claw; removed from state".into(),
            )),
            None => Ok((Action::NoOp, String::new())),
            Some(o) => {
                if let Some(other) = foreign(o) {
                    // Never delete what this stack does not own.
                    if i.in_state {
                        return Err(Refusal::Unmanaged { other_stack: other });
                    }
                    return Ok((Action::NoOp, String::new()));
                }
                if i.lifecycle.prevent_destroy {
                    return Err(Refusal::PreventDestroy {
                        action: Action::Delete,
                    });
                }
                let reason = if i.destroy_mode {
                    "destroy"
                } else if i.in_state {
                    "not in configuration"
                } else {
                    "orphan: labelled for this stack, in neither configuration nor state"
                };
                Ok((Action::Delete, reason.into()))
            }
        };
    }
    let Some(owner) = i.live else {
        let reason = if i.in_state {
            "deleted outside claw"
        } else {
            "not found"
        };
        return Ok((Action::Create, reason.into()));
    };
    if let Some(other) = foreign(owner) {
        return Err(Refusal::Unmanaged { other_stack: other });
    }
    if i.changes.is_empty() {
        return Ok((Action::NoOp, String::new()));
    }
    let names = changed_names(i.changes, i.drifted);
    if i.changes.iter().any(|c| c.replace) {
        if i.lifecycle.prevent_destroy {
            return Err(Refusal::PreventDestroy {
                action: Action::DeleteCreate,
            });
        }
        let forcing = changed_names(
            &i.changes
                .iter()
                .filter(|c| c.replace)
                .cloned()
                .collect::<Vec<_>>(),
            i.drifted,
        );
        let mut reason = forcing;
        if let Some(n) = i.replace_note {
            reason.push_str("; ");
            reason.push_str(n);
        }
        let action = if i.lifecycle.create_before_destroy {
            Action::CreateDelete
        } else {
            Action::DeleteCreate
        };
        return Ok((action, reason));
    }
    Ok((Action::Update, names))
}

/// "image changed", "content changed outside claw", "env, mounts changed".
fn changed_names(changes: &[AttrChange], drifted: &[String]) -> String {
    let mut names: Vec<String> = Vec::new();
    let mut all_drift = true;
    for c in changes {
        let top = top_name(&c.path);
        if !names.contains(&top) {
            names.push(top);
        }
        if !drifted.contains(&c.path) {
            all_drift = false;
        }
    }
    let shown: Vec<&str> = names.iter().take(3).map(String::as_str).collect();
    let more = if names.len() > 3 {
        format!(" and {} more", names.len() - 3)
    } else {
        String::new()
    };
    let suffix = if all_drift { " outside claw" } else { "" };
    format!("{}{more} changed{suffix}", shown.join(", "))
}

fn top_name(path: &str) -> String {
    match claw_provider::value::split_path(path).first() {
        Some(claw_provider::value::PathSeg::Key(k)) => k.clone(),
        _ => path.to_string(),
    }
}

/// Drops changes under `ignore_changes` paths (a path covers everything below it).
pub fn apply_ignore(changes: Vec<AttrChange>, ignore: &[String]) -> Vec<AttrChange> {
    changes
        .into_iter()
        .filter(|c| {
            !ignore.iter().any(|ig| {
                c.path == *ig
                    || c.path.starts_with(&format!("{ig}."))
                    || c.path.starts_with(&format!("{ig}["))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(path: &str, replace: bool) -> AttrChange {
        let mut c = AttrChange::new(path, Some("a".into()), Some("b".into()));
        c.replace = replace;
        c
    }

    struct Row {
        in_config: bool,
        in_state: bool,
        live: Option<Owner>,
        changes: Vec<AttrChange>,
        drifted: Vec<String>,
        lc: Lifecycle,
        destroy: bool,
        expect: Result<(Action, &'static str), Refusal>,
    }

    fn row() -> Row {
        Row {
            in_config: true,
            in_state: true,
            live: Some(Owner::NotApplicable),
            changes: vec![],
            drifted: vec![],
            lc: Lifecycle::default(),
            destroy: false,
            expect: Ok((Action::NoOp, "")),
        }
    }

    #[test]
    fn decide_table() {
        let pd = Lifecycle {
            prevent_destroy: true,
            ..Default::default()
        };
        let cbd = Lifecycle {
            create_before_destroy: true,
            ..Default::default()
        };
        let rows = vec![
            // unchanged
            row(),
            // create: never existed
            Row {
                in_state: false,
                live: None,
                expect: Ok((Action::Create, "not found")),
                ..row()
            },
            // create: deleted by hand
            Row {
                live: None,
                expect: Ok((Action::Create, "deleted outside claw")),
                ..row()
            },
            // update from config
            Row {
                changes: vec![ch("content", false)],
                expect: Ok((Action::Update, "content changed")),
                ..row()
            },
            // update from drift
            Row {
                changes: vec![ch("mode", false)],
                drifted: vec!["mode".into()],
                expect: Ok((Action::Update, "mode changed outside claw")),
                ..row()
            },
            // replace
            Row {
                changes: vec![ch("image", true), ch("env.A", false)],
                expect: Ok((Action::DeleteCreate, "image changed")),
                ..row()
            },
            // replace, create first
            Row {
                changes: vec![ch("image", true)],
                lc: cbd,
                expect: Ok((Action::CreateDelete, "image changed")),
                ..row()
            },
            // replace blocked
            Row {
                changes: vec![ch("image", true)],
                lc: pd.clone(),
                expect: Err(Refusal::PreventDestroy {
                    action: Action::DeleteCreate,
                }),
                ..row()
            },
            // delete: removed from config
            Row {
                in_config: false,
                expect: Ok((Action::Delete, "not in configuration")),
                ..row()
            },
            // delete blocked
            Row {
                in_config: false,
                lc: pd,
                expect: Err(Refusal::PreventDestroy {
                    action: Action::Delete,
                }),
                ..row()
            },
            // destroy
            Row {
                in_config: false,
                destroy: true,
                expect: Ok((Action::Delete, "destroy")),
                ..row()
            },
            // orphan
            Row {
                in_config: false,
                in_state: false,
                live: Some(Owner::Stack),
                expect: Ok((
                    Action::Delete,
                    "orphan: labelled for this stack, in neither configuration nor state",
                )),
                ..row()
            },
            // gone and forgotten
            Row {
                in_config: false,
                live: None,
                expect: Ok((Action::Forget, "deleted outside claw; removed from state")),
                ..row()
            },
            // nothing anywhere
            Row {
                in_config: false,
                in_state: false,
                live: None,
                expect: Ok((Action::NoOp, "")),
                ..row()
            },
            // unmanaged same-name object
            Row {
                in_state: false,
                live: Some(Owner::Unmanaged),
                expect: Err(Refusal::Unmanaged { other_stack: None }),
                ..row()
            },
            // another stack's object
            Row {
                in_state: false,
                live: Some(Owner::OtherStack("b".into())),
                expect: Err(Refusal::Unmanaged {
                    other_stack: Some("b".into()),
                }),
                ..row()
            },
            // an unmanaged object not in config nor state is left alone
            Row {
                in_config: false,
                in_state: false,
                live: Some(Owner::Unmanaged),
                expect: Ok((Action::NoOp, "")),
                ..row()
            },
        ];
        for (n, r) in rows.into_iter().enumerate() {
            let got = decide(&DecideInput {
                in_config: r.in_config,
                destroy_mode: r.destroy,
                in_state: r.in_state,
                live: r.live.as_ref(),
                changes: &r.changes,
                drifted: &r.drifted,
                lifecycle: &r.lc,
                replace_note: None,
            });
            let want = r.expect.map(|(a, s)| (a, s.to_string()));
            assert_eq!(got, want, "row {n}");
        }
    }

    #[test]
    fn replace_note_is_said() {
        let c = vec![ch("cwd", true)];
        let (a, r) = decide(&DecideInput {
            in_config: true,
            destroy_mode: false,
            in_state: true,
            live: Some(&Owner::NotApplicable),
            changes: &c,
            drifted: &[],
            lifecycle: &Lifecycle::default(),
            replace_note: Some("kills the running session"),
        })
        .unwrap();
        assert_eq!(a, Action::DeleteCreate);
        assert_eq!(r, "cwd changed; kills the running session");
    }

    #[test]
    fn ignore_changes_covers_subpaths() {
        let c = vec![
            ch("env.A", false),
            ch("envx", false),
            ch("labels[\"a\"]", false),
        ];
        let kept = apply_ignore(c, &["env".into(), "labels".into()]);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].path, "envx");
    }
}
