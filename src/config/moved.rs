//! `[[moved]]` blocks (SPEC §1.1a): a rename keeps the live object.
//!
//! ```toml
//! [[moved]]
//! from = 'tmux_session.agent["dev"]'
//! to   = 'tmux_session.agent["developer"]'
//! ```
//!
//! `from` and `to` are addresses of one resource type: whole resources
//! (`file.old` → `file.new`, every instance moves with its key) or single
//! instances. The engine applies them to the state before planning.

use super::node::{Kind, Node};
use super::template::{instance_address, parse_address};
use super::types::Source;
use crate::error::Problem;
use crate::registry::Registry;
use std::collections::BTreeSet;
use std::ops::Range;

#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    pub from: String,
    pub to: String,
    /// Both are whole resources (`type.name`): every instance moves.
    pub whole: bool,
    pub span: Range<usize>,
}

/// Parses the top-level `moved` array of tables.
pub fn parse(
    node: &Node,
    source: &Source<'_>,
    reg: &Registry,
    errs: &mut Vec<Problem>,
) -> Vec<Moved> {
    let Kind::Array(items) = &node.kind else {
        errs.push(
            source
                .err(
                    &node.span,
                    format!(
                        "`moved` must be an array of tables, found {}",
                        node.type_name()
                    ),
                )
                .hint("write each move as a [[moved]] block with `from` and `to`"),
        );
        return vec![];
    };
    let mut out: Vec<Moved> = Vec::new();
    let mut froms = BTreeSet::new();
    for item in items {
        let Some(t) = item.as_table() else {
            errs.push(
                source
                    .err(&item.span, "a [[moved]] entry must be a table")
                    .hint("write it as [[moved]] with `from = \"...\"` and `to = \"...\"`"),
            );
            continue;
        };
        for e in t {
            if e.key != "from" && e.key != "to" {
                let mut p = source.err(&e.key_span, format!("[[moved]]: unknown key `{}`", e.key));
                p = p.hint(match crate::error::closest(&e.key, ["from", "to"]) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => "a [[moved]] block has exactly `from` and `to`".into(),
                });
                errs.push(p);
            }
        }
        let addr = |key: &str,
                    errs: &mut Vec<Problem>|
         -> Option<(String, String, Option<String>, Range<usize>)> {
            let Some(n) = item.get(key) else {
                errs.push(
                    source
                        .err(&item.span, format!("[[moved]] needs `{key}`"))
                        .hint("e.g. from = 'file.old' and to = 'file.new'"),
                );
                return None;
            };
            let Some(s) = n.as_str() else {
                errs.push(source.err(
                    &n.span,
                    format!(
                        "[[moved]] `{key}` must be an address string, found {}",
                        n.type_name()
                    ),
                ));
                return None;
            };
            let Some((t, name, k)) = parse_address(s) else {
                errs.push(
                    source
                        .err(&n.span, format!("[[moved]] `{key}`: `{s}` is not an address"))
                        .hint("an address is TYPE.NAME or TYPE.NAME[\"KEY\"], e.g. 'tmux_session.agent[\"dev\"]'"),
                );
                return None;
            };
            if reg.resource_type(&t).is_none() {
                errs.push(source.err(
                    &n.span,
                    format!("[[moved]] `{key}`: unknown resource type `{t}`"),
                ));
                return None;
            }
            Some((t, name, k, n.span.clone()))
        };
        let (Some(from), Some(to)) = (addr("from", errs), addr("to", errs)) else {
            continue;
        };
        let span = from.3.start..to.3.end.max(from.3.end);
        if from.0 != to.0 {
            errs.push(
                source
                    .err(
                        &span,
                        format!(
                            "[[moved]] from a {} to a {}: a move keeps the resource type",
                            from.0, to.0
                        ),
                    )
                    .hint("to change the type, remove the old resource and create the new one"),
            );
            continue;
        }
        if from.2.is_some() != to.2.is_some() {
            errs.push(
                source
                    .err(&span, "[[moved]]: `from` and `to` must both be whole resources or both instances")
                    .hint("move every instance with 'type.old' → 'type.new', or one with 'type.x[\"a\"]' → 'type.x[\"b\"]'"),
            );
            continue;
        }
        let f = instance_address(&from.0, &from.1, from.2.as_deref());
        let t = instance_address(&to.0, &to.1, to.2.as_deref());
        if f == t {
            errs.push(source.err(&span, format!("[[moved]] from {f} to itself")));
            continue;
        }
        if !froms.insert(f.clone()) {
            errs.push(
                source
                    .err(&span, format!("[[moved]]: {f} is moved twice"))
                    .hint("keep one [[moved]] block per old address"),
            );
            continue;
        }
        out.push(Moved {
            from: f,
            to: t,
            whole: from.2.is_none(),
            span,
        });
    }
    out
}
