//! The one pure function that chooses an action (Terraform's `getAction`),
//! with the `Action` and `Reason` it returns.
//!
//! It lives in the SDK so that the engine and the provider test harness
//! ([`crate::testing`]) run exactly the same logic.
//!
//! **Invariant:** no IO. A `Reason` is data; its display text comes from its
//! `Display` impl, and nothing anywhere branches on that text.

use crate::diff::AttrChange;
use crate::provider::Owner;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
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
    /// An existing object of this stack, missing from the state, is recorded.
    Adopt,
    /// Only the state entry changes (its lifecycle); the object is not touched.
    StateOnly,
    /// `[[moved]]`: the state entry takes a new address; the object is not touched.
    Move,
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
            Action::Adopt => "<=",
            Action::StateOnly => "~",
            Action::Move => ">",
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
            Action::Adopt => "adopt",
            Action::StateOnly => "update state only",
            Action::Move => "move",
        }
    }
    pub fn is_replace(self) -> bool {
        matches!(self, Action::DeleteCreate | Action::CreateDelete)
    }
    /// Whether the provider is called for this action (adopt and state-only
    /// changes touch the state alone).
    pub fn touches_object(self) -> bool {
        !matches!(
            self,
            Action::NoOp | Action::Forget | Action::Adopt | Action::StateOnly | Action::Move
        )
    }
}

/// Why an action was chosen. Shown through `Display`; never parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    #[default]
    None,
    /// Create: the object never existed.
    NotFound,
    /// Create: the state records it, but it is gone.
    DeletedOutside,
    /// Update: these top-level attributes differ; `outside`: every difference
    /// is drift made outside claw (the configuration did not change).
    Changed { attrs: Vec<String>, outside: bool },
    /// Replace forced by these attributes, with the provider's plain note
    /// ("kills the running session").
    Replace {
        attrs: Vec<String>,
        outside: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Replace asked for with `--replace`.
    Requested,
    /// Replace because a `replace_triggered_by` object changes.
    Triggered { by: Vec<String> },
    /// Update: objects the pod template reads (Secrets, ConfigMaps) change,
    /// so its pods roll; `attrs`: other attributes that change too.
    Rollout {
        by: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attrs: Vec<String>,
    },
    /// Delete: in the state, no longer configured.
    NotInConfig,
    /// Delete: `claw destroy`.
    Destroy,
    /// Delete: labelled for this stack, in neither configuration nor state.
    Orphan,
    /// Forget: gone outside claw; its state entry is removed.
    Forgotten,
    /// Adopt: this stack's object is missing from the state; `markers`: it
    /// carries the stack's ownership markers (else its content is identical).
    Adopt { markers: bool },
    /// State only: these lifecycle settings changed.
    Lifecycle { fields: Vec<String> },
    /// Move: a `[[moved]]` block renames this address.
    Moved { from: String },
}

impl Reason {
    /// Whether the plan shows this reason (a create of a new object needs none).
    pub fn is_plain(&self) -> bool {
        matches!(self, Reason::None | Reason::NotFound)
    }
}

fn names(attrs: &[String]) -> String {
    let shown: Vec<&str> = attrs.iter().take(3).map(String::as_str).collect();
    let more = if attrs.len() > 3 {
        format!(" and {} more", attrs.len() - 3)
    } else {
        String::new()
    };
    format!("{}{more}", shown.join(", "))
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outside = |o: &bool| if *o { " outside claw" } else { "" };
        match self {
            Reason::None => Ok(()),
            Reason::NotFound => f.write_str("not found"),
            Reason::DeletedOutside => f.write_str("deleted outside claw"),
            Reason::Changed { attrs, outside: o } => {
                write!(f, "{} changed{}", names(attrs), outside(o))
            }
            Reason::Replace {
                attrs,
                outside: o,
                note,
            } => {
                write!(f, "{} changed{}", names(attrs), outside(o))?;
                if let Some(n) = note {
                    write!(f, "; {n}")?;
                }
                Ok(())
            }
            Reason::Requested => f.write_str("replacement requested with --replace"),
            Reason::Triggered { by } => write!(
                f,
                "replace_triggered_by: {} {}",
                names(by),
                if by.len() == 1 { "changes" } else { "change" }
            ),
            Reason::Rollout { by, attrs } => {
                if !attrs.is_empty() {
                    write!(f, "{} changed; ", names(attrs))?;
                }
                write!(f, "rolls pods: {} changed", names(by))
            }
            Reason::NotInConfig => f.write_str("not in configuration"),
            Reason::Destroy => f.write_str("destroy"),
            Reason::Orphan => {
                f.write_str("orphan: labelled for this stack, in neither configuration nor state")
            }
            Reason::Forgotten => f.write_str("deleted outside claw; removed from state"),
            Reason::Adopt { markers: true } => {
                f.write_str("carries this stack's markers but is missing from the state")
            }
            Reason::Adopt { markers: false } => {
                f.write_str("exists with identical content but is missing from the state")
            }
            Reason::Moved { from } => write!(f, "moved from {from}; the object is not touched"),
            Reason::Lifecycle { fields } => write!(
                f,
                "lifecycle {} changed; the object is not touched",
                names(fields)
            ),
        }
    }
}

/// Everything `decide` looks at for one address.
#[derive(Debug, Clone, Default)]
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
    pub prevent_destroy: bool,
    pub create_before_destroy: bool,
    /// The provider's plain words for a replace ("kills the running session").
    pub replace_note: Option<&'a str>,
    /// Lifecycle settings that differ from what the state records.
    pub lifecycle_changed: &'a [String],
    /// A replace is asked for even without a difference (`--replace`, or
    /// `replace_triggered_by`).
    pub force_replace: Option<Reason>,
}

/// Why no action can be chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// A same-name object exists without this stack's ownership markers.
    Unmanaged { other_stack: Option<String> },
    /// An object without ownership markers (a file) exists where this
    /// address would create one, with other content.
    NotOwned,
    /// `prevent_destroy` forbids the delete or replace.
    PreventDestroy { action: Action },
}

/// Chooses the action for one address.
pub fn decide(i: &DecideInput<'_>) -> Result<(Action, Reason), Refusal> {
    let foreign = |o: &Owner| match o {
        Owner::Unmanaged => Some(None),
        Owner::OtherStack(s) => Some(Some(s.clone())),
        _ => None,
    };
    if !i.in_config {
        return match i.live {
            None if i.in_state => Ok((Action::Forget, Reason::Forgotten)),
            None => Ok((Action::NoOp, Reason::None)),
            Some(o) => {
                if let Some(other) = foreign(o) {
                    // Never delete what this stack does not own.
                    if i.in_state {
                        return Err(Refusal::Unmanaged { other_stack: other });
                    }
                    return Ok((Action::NoOp, Reason::None));
                }
                if !i.in_state && *o == Owner::NotApplicable {
                    // Without markers, only the state makes an object ours.
                    return Ok((Action::NoOp, Reason::None));
                }
                if i.prevent_destroy {
                    return Err(Refusal::PreventDestroy {
                        action: Action::Delete,
                    });
                }
                let reason = if i.destroy_mode {
                    Reason::Destroy
                } else if i.in_state {
                    Reason::NotInConfig
                } else {
                    Reason::Orphan
                };
                Ok((Action::Delete, reason))
            }
        };
    }
    let Some(owner) = i.live else {
        let reason = if i.in_state {
            Reason::DeletedOutside
        } else {
            Reason::NotFound
        };
        return Ok((Action::Create, reason));
    };
    if let Some(other) = foreign(owner) {
        return Err(Refusal::Unmanaged { other_stack: other });
    }
    let replace = |reason: Reason| {
        if i.prevent_destroy {
            return Err(Refusal::PreventDestroy {
                action: Action::DeleteCreate,
            });
        }
        let action = if i.create_before_destroy {
            Action::CreateDelete
        } else {
            Action::DeleteCreate
        };
        Ok((action, reason))
    };
    if !i.in_state {
        // Not recorded: adopt what is provably ours, refuse the rest.
        let ours = *owner == Owner::Stack || i.changes.is_empty();
        if !ours {
            return Err(Refusal::NotOwned);
        }
        if i.changes.is_empty() && i.force_replace.is_none() {
            return Ok((
                Action::Adopt,
                Reason::Adopt {
                    markers: *owner == Owner::Stack,
                },
            ));
        }
    }
    if let Some(r) = &i.force_replace {
        return replace(r.clone());
    }
    if i.changes.is_empty() {
        if !i.lifecycle_changed.is_empty() {
            return Ok((
                Action::StateOnly,
                Reason::Lifecycle {
                    fields: i.lifecycle_changed.to_vec(),
                },
            ));
        }
        return Ok((Action::NoOp, Reason::None));
    }
    let (attrs, outside) = changed_names(i.changes, i.drifted);
    if i.changes.iter().any(|c| c.replace) {
        let forcing: Vec<AttrChange> = i.changes.iter().filter(|c| c.replace).cloned().collect();
        let (attrs, outside) = changed_names(&forcing, i.drifted);
        return replace(Reason::Replace {
            attrs,
            outside,
            note: i.replace_note.map(str::to_string),
        });
    }
    Ok((Action::Update, Reason::Changed { attrs, outside }))
}

/// The top-level names of `changes`, in order, and whether all are drift.
fn changed_names(changes: &[AttrChange], drifted: &[String]) -> (Vec<String>, bool) {
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
    (names, all_drift)
}

fn top_name(path: &str) -> String {
    match crate::value::split_path(path).first() {
        Some(crate::value::PathSeg::Key(k)) => k.clone(),
        _ => path.to_string(),
    }
}

/// Whether `path` is `ignore` or below it.
pub fn path_covered(path: &str, ignore: &str) -> bool {
    path == ignore
        || path
            .strip_prefix(ignore)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// Drops changes under `ignore_changes` paths (a path covers everything below it).
pub fn apply_ignore(changes: Vec<AttrChange>, ignore: &[String]) -> Vec<AttrChange> {
    changes
        .into_iter()
        .filter(|c| !ignore.iter().any(|ig| path_covered(&c.path, ig)))
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
        prevent_destroy: bool,
        cbd: bool,
        lifecycle_changed: Vec<String>,
        force: Option<Reason>,
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
            prevent_destroy: false,
            cbd: false,
            lifecycle_changed: vec![],
            force: None,
            destroy: false,
            expect: Ok((Action::NoOp, "")),
        }
    }

    #[test]
    fn decide_table() {
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
            // many names are cut
            Row {
                changes: vec![
                    ch("a", false),
                    ch("b.x", false),
                    ch("b.y", false),
                    ch("c", false),
                    ch("d", false),
                ],
                expect: Ok((Action::Update, "a, b, c and 1 more changed")),
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
                cbd: true,
                expect: Ok((Action::CreateDelete, "image changed")),
                ..row()
            },
            // replace blocked
            Row {
                changes: vec![ch("image", true)],
                prevent_destroy: true,
                expect: Err(Refusal::PreventDestroy {
                    action: Action::DeleteCreate,
                }),
                ..row()
            },
            // replace requested without a difference
            Row {
                force: Some(Reason::Requested),
                expect: Ok((Action::DeleteCreate, "replacement requested with --replace")),
                ..row()
            },
            // replace triggered, create first
            Row {
                force: Some(Reason::Triggered {
                    by: vec!["file.cfg".into()],
                }),
                cbd: true,
                expect: Ok((
                    Action::CreateDelete,
                    "replace_triggered_by: file.cfg changes",
                )),
                ..row()
            },
            // lifecycle alone
            Row {
                lifecycle_changed: vec!["prevent_destroy".into()],
                expect: Ok((
                    Action::StateOnly,
                    "lifecycle prevent_destroy changed; the object is not touched",
                )),
                ..row()
            },
            // lifecycle with a real change: the update carries it
            Row {
                lifecycle_changed: vec!["prevent_destroy".into()],
                changes: vec![ch("content", false)],
                expect: Ok((Action::Update, "content changed")),
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
                prevent_destroy: true,
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
            // a marker-less object in neither config nor state is not ours
            Row {
                in_config: false,
                in_state: false,
                live: Some(Owner::NotApplicable),
                expect: Ok((Action::NoOp, "")),
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
            // adopt: ours by markers, missing from state
            Row {
                in_state: false,
                live: Some(Owner::Stack),
                expect: Ok((
                    Action::Adopt,
                    "carries this stack's markers but is missing from the state",
                )),
                ..row()
            },
            // adopt: identical content, no markers
            Row {
                in_state: false,
                live: Some(Owner::NotApplicable),
                expect: Ok((
                    Action::Adopt,
                    "exists with identical content but is missing from the state",
                )),
                ..row()
            },
            // ours by markers, missing from state, and different: update
            Row {
                in_state: false,
                live: Some(Owner::Stack),
                changes: vec![ch("env.A", false)],
                expect: Ok((Action::Update, "env changed")),
                ..row()
            },
            // no markers, not in state, other content: refused
            Row {
                in_state: false,
                live: Some(Owner::NotApplicable),
                changes: vec![ch("content", false)],
                expect: Err(Refusal::NotOwned),
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
                prevent_destroy: r.prevent_destroy,
                create_before_destroy: r.cbd,
                replace_note: None,
                lifecycle_changed: &r.lifecycle_changed,
                force_replace: r.force.clone(),
            })
            .map(|(a, r)| (a, r.to_string()));
            let want = r.expect.map(|(a, s)| (a, s.to_string()));
            assert_eq!(got, want, "row {n}");
        }
    }

    #[test]
    fn replace_note_is_said() {
        let c = vec![ch("cwd", true)];
        let (a, r) = decide(&DecideInput {
            in_config: true,
            in_state: true,
            live: Some(&Owner::NotApplicable),
            changes: &c,
            replace_note: Some("kills the running session"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(a, Action::DeleteCreate);
        assert_eq!(r.to_string(), "cwd changed; kills the running session");
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

    #[test]
    fn a_rollout_says_what_it_reads() {
        let r = Reason::Rollout {
            by: vec!["k8s_secret.keys".into()],
            attrs: vec![],
        };
        assert_eq!(r.to_string(), "rolls pods: k8s_secret.keys changed");
        let r = Reason::Rollout {
            by: vec![
                "k8s_secret.keys".into(),
                "k8s_manifest.cm[\"v1/ConfigMap/ns/c\"]".into(),
            ],
            attrs: vec!["spec".into()],
        };
        assert_eq!(
            r.to_string(),
            "spec changed; rolls pods: k8s_secret.keys, k8s_manifest.cm[\"v1/ConfigMap/ns/c\"] changed"
        );
    }

    #[test]
    fn reason_round_trips_as_data() {
        let r = Reason::Replace {
            attrs: vec!["cwd".into()],
            outside: false,
            note: Some("kills the running session".into()),
        };
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(
            j,
            r#"{"kind":"replace","attrs":["cwd"],"outside":false,"note":"kills the running session"}"#
        );
        assert_eq!(serde_json::from_str::<Reason>(&j).unwrap(), r);
    }
}
