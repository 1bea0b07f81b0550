//! `[output.*]` (SPEC §1.1a): evaluated from the configuration and the
//! state through the one resolver ([`resolve::Sources`]). The plan lists the
//! outputs whose value changes, apply records them in the state, and
//! `claw output` reads them back.
//!
//! **Invariant:** no clear text of a sensitive output is written anywhere:
//! the state and the plan hold its keyed hash; `claw output NAME` evaluates
//! it again from the configuration and shows it only when that hash matches.

use super::build::Refs;
use super::resolve::Sources;
use super::*;
use crate::config::template::{Ex, Seg};
use crate::plan::{OutputAction, OutputChange};
use crate::state::{Store, StoredOutput};
use claw_provider::Secret;
use std::ops::Range;

/// One evaluated `[output.NAME]`.
#[derive(Debug, Clone)]
pub struct OutputNode {
    pub name: String,
    /// The value with vars, env and secrets substituted; references remain.
    pub ex: Ex,
    pub sensitive: bool,
    /// Where `value` is written.
    pub span: Range<usize>,
}

/// Evaluates every `[output.*]` and checks its references.
pub(super) fn build(refs: &Refs<'_>, errs: &mut Vec<Problem>) -> BTreeMap<String, OutputNode> {
    let cfg = refs.cfg;
    let mut out = BTreeMap::new();
    for o in &cfg.outputs {
        let label = format!("output.{}", o.name);
        let Some((ex, _)) = refs.free_value(&label, &o.node, &o.value, errs) else {
            continue;
        };
        if !o.sensitive && has_secret(&ex) {
            errs.push(not_marked(cfg, &o.name, &o.value.span));
            continue;
        }
        out.insert(
            o.name.clone(),
            OutputNode {
                name: o.name.clone(),
                ex,
                sensitive: o.sensitive,
                span: o.value.span.clone(),
            },
        );
    }
    out
}

/// Whether the known parts of `ex` hold a sensitive value.
fn has_secret(ex: &Ex) -> bool {
    match ex {
        Ex::Val(v) => v.contains_secret(),
        Ex::Str(segs) => segs.iter().any(|s| match s {
            Seg::Val(v) => v.contains_secret(),
            Seg::Ref(_) => false,
        }),
        Ex::List(l) => l.iter().any(has_secret),
        Ex::Map(m) => m.values().any(has_secret),
    }
}

fn not_marked(cfg: &Config, name: &str, span: &Range<usize>) -> Problem {
    Problem::new(format!(
        "output.{name}: its value is sensitive (it uses a secret), but the output is not"
    ))
    .at(cfg.loc(span))
    .hint(
        "add `sensitive = true`: it is then shown as (sensitive), and `claw output NAME` prints it",
    )
}

impl Workspace {
    /// Every output's value from `sources`: sensitive ones as secrets,
    /// `Value::Unknown` for what is known only after apply.
    pub fn output_values(&self, sources: &Sources<'_>) -> Result<BTreeMap<String, Value>> {
        let mut out = BTreeMap::new();
        let mut errs = Vec::new();
        for (name, o) in &self.outputs {
            match self.output_value(o, sources) {
                Ok(v) => {
                    out.insert(name.clone(), v);
                }
                Err(p) => errs.push(p),
            }
        }
        if !errs.is_empty() {
            return Err(Error::many(errs));
        }
        Ok(out)
    }

    fn output_value(
        &self,
        o: &OutputNode,
        sources: &Sources<'_>,
    ) -> std::result::Result<Value, Problem> {
        let v = o.ex.resolve(&|r| sources.value(r), &self.salt);
        if o.sensitive {
            Ok(self.sensitive(v))
        } else if v.contains_secret() {
            Err(not_marked(&self.cfg, &o.name, &o.span))
        } else {
            Ok(v)
        }
    }

    /// A sensitive output's value as one secret (its whole text, hashed).
    fn sensitive(&self, v: Value) -> Value {
        match v {
            Value::Secret(_) | Value::Unknown => v,
            v if v.contains_unknown() => Value::Unknown,
            Value::String(s) => Value::Secret(Secret::new(s, &self.salt)),
            v if !v.contains_secret() => {
                Value::Secret(Secret::new(v.to_json().to_string(), &self.salt))
            }
            v => {
                let exposed = v.to_json_exposed().to_string();
                Value::Secret(Secret::new(exposed, &self.salt))
            }
        }
    }

    /// The outputs whose value changes, from the plan's `after` values (or,
    /// in destroy mode, every recorded output, deleted).
    pub(super) fn plan_outputs(
        &self,
        state: &State,
        sources: &Sources<'_>,
        destroy: bool,
    ) -> Result<Vec<OutputChange>> {
        let now = if destroy {
            BTreeMap::new()
        } else {
            self.output_values(sources)?
        };
        Ok(changes(&state.outputs, &now, &self.outputs))
    }

    /// After apply: records every output evaluated from the state as it is
    /// now (one not known yet, because what it refers to failed, is left
    /// out) and saves the state when they changed. Returns what is recorded.
    pub async fn record_outputs(
        &self,
        store: &Store,
        observed: &BTreeMap<String, Observed>,
        destroy: bool,
    ) -> Result<BTreeMap<String, StoredOutput>> {
        let st = store.snapshot().await;
        let now = if destroy {
            BTreeMap::new()
        } else {
            let sources = Sources {
                after: None,
                state: Some(&st),
                observed: Some(observed),
            };
            self.output_values(&sources)?
        };
        let stored: BTreeMap<String, StoredOutput> = now
            .into_iter()
            .filter(|(_, v)| !v.contains_unknown())
            .map(|(name, value)| {
                let sensitive = self.outputs.get(&name).is_some_and(|o| o.sensitive);
                (name, StoredOutput { value, sensitive })
            })
            .collect();
        if stored != st.outputs {
            store.state.lock().await.outputs = stored.clone();
            store.save().await?;
        }
        Ok(stored)
    }

    /// The clear value of the recorded output `name`, evaluated again from
    /// the configuration (secrets read now) and the state; refused unless it
    /// is the value the last apply recorded (by its keyed hash).
    pub fn reveal(&self, state: &State, name: &str) -> Result<Value> {
        let Some(o) = self.outputs.get(name) else {
            return Err(no_such_output(name, state, self));
        };
        let Some(stored) = state.outputs.get(name) else {
            return Err(no_such_output(name, state, self));
        };
        // The referenced objects' configured values (secrets in clear) over
        // what the state records (computed attributes).
        let lookup = |r: &template::ResRef| {
            Sources {
                state: Some(state),
                ..Default::default()
            }
            .value(r)
        };
        let mut rs = Vec::new();
        o.ex.refs(&mut rs);
        let mut after = BTreeMap::new();
        for r in rs {
            let addr = r.instance();
            if after.contains_key(&addr) {
                continue;
            }
            let mut attrs = state
                .resources
                .get(&addr)
                .map(|e| e.attrs.clone())
                .unwrap_or_default();
            if let Ok(desired) = self.desired(&addr, &lookup) {
                attrs.extend(desired);
            }
            after.insert(addr, (Action::NoOp, attrs));
        }
        let sources = Sources {
            after: Some(&after),
            state: Some(state),
            observed: None,
        };
        let v = self.output_value(o, &sources).map_err(Error::one)?;
        if v != stored.value {
            return Err(Error::one(
                Problem::new(format!(
                    "output {name} evaluates to another value than the last apply recorded"
                ))
                .detail("claw shows only the value it applied")
                .hint("run `claw apply` to record the new value, then `claw output` again"),
            ));
        }
        match &v {
            Value::Secret(s) if s.expose().is_none() => Err(Error::one(
                Problem::new(format!(
                    "output {name} comes from a sensitive attribute that claw keeps only as a hash"
                ))
                .hint("refer to the configured secret (`{ env = ... }`, `{ file = ... }`) rather than a computed attribute"),
            )),
            _ => Ok(v),
        }
    }
}

/// `now` against what the state records: creates, updates, deletes.
fn changes(
    recorded: &BTreeMap<String, StoredOutput>,
    now: &BTreeMap<String, Value>,
    nodes: &BTreeMap<String, OutputNode>,
) -> Vec<OutputChange> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = recorded.keys().chain(now.keys()).collect();
    for name in names {
        let before = recorded.get(name);
        let after = now.get(name);
        let sensitive = nodes
            .get(name)
            .map(|n| n.sensitive)
            .or(before.map(|b| b.sensitive))
            .unwrap_or(false);
        let action = match (before, after) {
            (None, Some(_)) => OutputAction::Create,
            (Some(_), None) => OutputAction::Delete,
            (Some(b), Some(a)) if b.value != *a || b.sensitive != sensitive || a.is_unknown() => {
                OutputAction::Update
            }
            _ => continue,
        };
        out.push(OutputChange {
            name: name.clone(),
            action,
            before: before.map(|b| b.value.clone()),
            after: after.cloned(),
            sensitive,
        });
    }
    out
}

/// An output that is not recorded: never applied, or not declared.
pub fn no_such_output(name: &str, state: &State, ws: &Workspace) -> Error {
    if ws.outputs.contains_key(name) {
        return Error::one(
            Problem::new(format!("output {name} has no value yet")).hint("`claw apply` records it"),
        );
    }
    let names = state
        .outputs
        .keys()
        .chain(ws.outputs.keys())
        .map(String::as_str);
    let p = Problem::new(format!("no output {name}"));
    Error::one(match closest(name, names) {
        Some(c) => p.hint(format!("did you mean `{c}`?")),
        None => p.hint("outputs are declared as [output.NAME] tables in claw.toml"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, sensitive: bool) -> (String, OutputNode) {
        (
            name.to_string(),
            OutputNode {
                name: name.into(),
                ex: Ex::Val(Value::Null),
                sensitive,
                span: 0..0,
            },
        )
    }

    #[test]
    fn output_changes_are_creates_updates_and_deletes() {
        let recorded: BTreeMap<String, StoredOutput> =
            [("same", "a"), ("moved", "b"), ("gone", "c")]
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        StoredOutput {
                            value: Value::str(v),
                            sensitive: false,
                        },
                    )
                })
                .collect();
        let now: BTreeMap<String, Value> = [
            ("same".to_string(), Value::str("a")),
            ("moved".to_string(), Value::str("B")),
            ("new".to_string(), Value::Unknown),
        ]
        .into();
        let nodes: BTreeMap<String, OutputNode> = [
            node("same", false),
            node("moved", false),
            node("new", false),
        ]
        .into();
        let c = changes(&recorded, &now, &nodes);
        let got: Vec<(&str, OutputAction)> =
            c.iter().map(|c| (c.name.as_str(), c.action)).collect();
        assert_eq!(
            got,
            [
                ("gone", OutputAction::Delete),
                ("moved", OutputAction::Update),
                ("new", OutputAction::Create)
            ]
        );
        // A sensitive value compares by its keyed hash: the same secret is no change.
        let salt = "s";
        let rec: BTreeMap<String, StoredOutput> = [(
            "tok".to_string(),
            StoredOutput {
                value: Value::Secret(Secret::from_hash(Secret::new("x", salt).hash())),
                sensitive: true,
            },
        )]
        .into();
        let now: BTreeMap<String, Value> =
            [("tok".to_string(), Value::Secret(Secret::new("x", salt)))].into();
        assert!(changes(&rec, &now, &[node("tok", true)].into()).is_empty());
    }
}
