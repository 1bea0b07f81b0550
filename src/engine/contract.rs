//! The plan is the contract (SPEC §3): what a saved plan says is what apply
//! does, or nothing happens.
//!
//! - [`compare_plans`]: a saved plan against the plan re-derived now from the
//!   same configuration, inputs and live objects. Any difference refuses the
//!   apply before anything changes, naming the object and the input.
//! - [`incompatible`]: a value re-derived (or reported by a provider) against
//!   the planned `after`; unknown planned parts accept anything.
//! - [`merge_ignored`]: `ignore_changes` paths keep their live value.

use crate::error::Problem;
use crate::plan::{path_covered, Change, Plan};
use claw_provider::value::{split_path, PathSeg};
use claw_provider::{Attrs, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Paths where `actual` differs from the known parts of `planned`.
pub fn incompatible(planned: &Value, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk("", planned, actual, &mut out);
    out
}

fn walk(path: &str, planned: &Value, actual: &Value, out: &mut Vec<String>) {
    match (planned, actual) {
        (Value::Unknown, _) => {}
        (Value::Map(p), Value::Map(a)) => {
            for (k, pv) in p {
                let sub = claw_provider::value::join_key(path, k);
                match a.get(k) {
                    Some(av) => walk(&sub, pv, av, out),
                    None if matches!(pv, Value::Null | Value::Unknown) => {}
                    None => out.push(sub),
                }
            }
            for (k, av) in a {
                if !p.contains_key(k) && !matches!(av, Value::Null) {
                    out.push(claw_provider::value::join_key(path, k));
                }
            }
        }
        (Value::List(p), Value::List(a)) if p.len() == a.len() => {
            for (i, (pv, av)) in p.iter().zip(a).enumerate() {
                walk(&format!("{path}[{i}]"), pv, av, out);
            }
        }
        (p, a) if p == a => {}
        _ => out.push(if path.is_empty() {
            "(the whole object)".into()
        } else {
            path.to_string()
        }),
    }
}

/// Replaces each `ignore_changes` path of `desired` with the live value (or
/// drops it when the live object has none), so neither the plan nor apply
/// changes it.
pub fn merge_ignored(desired: &mut Attrs, live: &Attrs, ignore: &[String]) {
    if ignore.is_empty() {
        return;
    }
    let mut root = Value::Map(std::mem::take(desired));
    for path in ignore {
        set_path(&mut root, path, super::resolve::get_in(live, path).cloned());
    }
    if let Value::Map(m) = root {
        *desired = m;
    }
}

/// Sets (or with `None`, removes) the value at a dotted path, creating maps on
/// the way. List indexes out of range are left alone.
pub fn set_path(root: &mut Value, path: &str, new: Option<Value>) {
    let segs = split_path(path);
    let Some((last, init)) = segs.split_last() else {
        return;
    };
    let mut cur = root;
    for seg in init {
        cur = match seg {
            PathSeg::Key(k) => {
                let Value::Map(m) = cur else { return };
                m.entry(k.clone())
                    .or_insert_with(|| Value::Map(Default::default()))
            }
            PathSeg::Index(i) => {
                let Value::List(l) = cur else { return };
                let Some(x) = l.get_mut(*i) else { return };
                x
            }
        };
    }
    match (last, cur, new) {
        (PathSeg::Key(k), Value::Map(m), Some(v)) => {
            m.insert(k.clone(), v);
        }
        (PathSeg::Key(k), Value::Map(m), None) => {
            m.remove(k);
        }
        (PathSeg::Index(i), Value::List(l), Some(v)) if *i < l.len() => l[*i] = v,
        _ => {}
    }
}

/// Whether an attribute path is ignored by `ignore_changes`.
pub fn ignored(path: &str, ignore: &[String]) -> bool {
    ignore.iter().any(|ig| path_covered(path, ig))
}

/// Every difference between a saved plan and the plan re-derived now, as
/// problems naming the object and the input. Empty: apply may go ahead.
pub fn compare_plans(saved: &Plan, now: &Plan) -> Vec<Problem> {
    let mut out = Vec::new();
    let hint = "make a new plan with `claw plan --out FILE` and review it";
    // Inputs that changed, and which changes they shaped.
    let mut changed_inputs: BTreeSet<&str> = BTreeSet::new();
    let names: BTreeSet<&String> = saved.inputs.keys().chain(now.inputs.keys()).collect();
    for name in names {
        if saved.inputs.get(name) != now.inputs.get(name) {
            changed_inputs.insert(name.as_str());
        }
    }
    fn by_addr(p: &Plan) -> BTreeMap<&str, &Change> {
        p.changes.iter().map(|c| (c.address.as_str(), c)).collect()
    }
    let (old, new) = (by_addr(saved), by_addr(now));
    let mut named_inputs: BTreeSet<String> = BTreeSet::new();
    let mut global = Vec::new();
    for (addr, c) in &old {
        let touched: Vec<&str> = c
            .inputs
            .iter()
            .map(String::as_str)
            .filter(|i| changed_inputs.contains(i))
            .collect();
        for i in &touched {
            named_inputs.insert(i.to_string());
            out.push(
                Problem::new(format!("{addr}: {} changed since the plan", input_label(i)))
                    .hint(hint),
            );
        }
        if !touched.is_empty() {
            continue;
        }
        let Some(n) = new.get(addr).copied() else {
            out.push(
                Problem::new(format!(
                    "{addr}: the plan says {}, but nothing is to be done now",
                    c.action.word()
                ))
                .hint(hint),
            );
            continue;
        };
        if n.action != c.action {
            out.push(
                Problem::new(format!(
                    "{addr}: the plan says {}, but it would now be {} ({})",
                    c.action.word(),
                    n.action.word(),
                    n.reason
                ))
                .hint(hint),
            );
            continue;
        }
        if n.fingerprint != c.fingerprint {
            out.push(
                Problem::new(format!(
                    "{addr}: the live object changed since the plan was made"
                ))
                .hint(hint),
            );
            continue;
        }
        let diffs = match (&c.after, &n.after) {
            (Some(p), Some(a)) => incompatible(p, a),
            (None, None) => vec![],
            _ => vec!["(the whole object)".into()],
        };
        if !diffs.is_empty() {
            let sensitive = diffs
                .iter()
                .any(|d| c.sensitive_paths.iter().any(|s| path_covered(d, s)));
            out.push(
                Problem::new(format!(
                    "{addr}: {} would differ from the plan{}",
                    list(&diffs),
                    if sensitive {
                        " (a secret's value changed since the plan)"
                    } else {
                        ""
                    }
                ))
                .hint(hint),
            );
        }
    }
    for (addr, n) in &new {
        if !old.contains_key(addr) {
            out.push(
                Problem::new(format!(
                    "{addr}: not in the plan, but it would now be {} ({})",
                    n.action.word(),
                    n.reason
                ))
                .hint(hint),
            );
        }
    }
    // Inputs that changed without shaping a listed change (claw.toml, vars).
    for i in changed_inputs {
        if !named_inputs.contains(i) && !i.starts_with("file:") {
            global.push(
                Problem::new(format!("{} changed since the plan", input_label(i))).hint(hint),
            );
        }
    }
    global.extend(out);
    global
}

fn input_label(name: &str) -> String {
    match name.split_once(':') {
        Some(("file", p)) => p.to_string(),
        _ => name.to_string(),
    }
}

fn list(paths: &[String]) -> String {
    let shown: Vec<String> = paths.iter().take(3).map(|p| format!("`{p}`")).collect();
    if paths.len() > 3 {
        format!("{} and {} more", shown.join(", "), paths.len() - 3)
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use claw_provider::Secret;

    fn m(pairs: &[(&str, Value)]) -> Value {
        Value::Map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn unknown_planned_parts_accept_anything() {
        let planned = m(&[("id", Value::Unknown), ("path", "/a".into())]);
        let actual = m(&[("id", "x1".into()), ("path", "/a".into())]);
        assert!(incompatible(&planned, &actual).is_empty());
        let actual = m(&[("id", "x1".into()), ("path", "/b".into())]);
        assert_eq!(incompatible(&planned, &actual), vec!["path"]);
    }

    #[test]
    fn secrets_compare_by_keyed_hash() {
        let a = m(&[("c", Value::Secret(Secret::new("v1", "s")))]);
        let b = m(&[("c", Value::Secret(Secret::new("v2", "s")))]);
        assert!(incompatible(&a, &a.clone()).is_empty());
        assert_eq!(incompatible(&a, &b), vec!["c"]);
    }

    #[test]
    fn extra_and_missing_keys_are_differences() {
        let planned = m(&[("a", 1.into()), ("n", Value::Null)]);
        assert_eq!(incompatible(&planned, &m(&[])), vec!["a"]);
        assert_eq!(
            incompatible(&planned, &m(&[("a", 1.into()), ("b", 2.into())])),
            vec!["b"]
        );
    }

    fn attrs(v: Value) -> Attrs {
        match v {
            Value::Map(m) => m,
            _ => unreachable!("a map"),
        }
    }

    #[test]
    fn ignored_paths_keep_the_live_value() {
        let mut desired = attrs(m(&[("mode", "0644".into()), ("content", "new".into())]));
        let live = attrs(m(&[("mode", "0600".into()), ("content", "old".into())]));
        merge_ignored(&mut desired, &live, &["mode".into()]);
        assert_eq!(
            Value::Map(desired),
            m(&[("mode", "0600".into()), ("content", "new".into())])
        );
        let mut d = attrs(m(&[("env", m(&[("A", "1".into()), ("B", "2".into())]))]));
        let live = attrs(m(&[("env", m(&[("A", "9".into())]))]));
        merge_ignored(&mut d, &live, &["env.A".into(), "env.B".into()]);
        assert_eq!(Value::Map(d), m(&[("env", m(&[("A", "9".into())]))]));
    }
}
