//! Shape errors: each instance checked against its resource type's shape,
//! with the failing attribute located in the source.

use super::node::{Kind, Node};
use super::template::{self, Ex, ExMap, Seg};
use super::types::{Config, Source, StateCfg};
use crate::error::{closest, Problem};
use claw_provider::Value;

/// Turns a substituted body into JSON for its shape check: secrets appear as
/// `{ env = "(sensitive)" }`, references and unknowns as their template text.
pub(super) fn body_json(body: &ExMap) -> serde_json::Value {
    fn ex(e: &Ex) -> serde_json::Value {
        match e {
            Ex::Val(v) => val(v),
            Ex::Str(segs) => serde_json::Value::String(
                segs.iter()
                    .map(|s| match s {
                        Seg::Val(v) => template::to_text(v),
                        Seg::Ref(r) => format!("${{{}}}", r.text),
                    })
                    .collect(),
            ),
            Ex::List(l) => serde_json::Value::Array(l.iter().map(ex).collect()),
            Ex::Map(m) => {
                serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), ex(v))).collect())
            }
        }
    }
    fn val(v: &Value) -> serde_json::Value {
        match v {
            Value::Secret(_) => serde_json::json!({"env": "(sensitive)"}),
            Value::Unknown => serde_json::Value::String("(known after apply)".into()),
            Value::List(l) => serde_json::Value::Array(l.iter().map(val).collect()),
            Value::Map(m) => {
                serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), val(v))).collect())
            }
            other => other.to_json(),
        }
    }
    serde_json::Value::Object(body.iter().map(|(k, v)| (k.clone(), ex(v))).collect())
}

/// Maps a shape error (a serde message and path) to a located problem.
pub(super) fn shape_problem(
    ce: &claw_provider::CheckError,
    node: &Node,
    source: &Source<'_>,
    what: &str,
) -> Problem {
    let msg = &ce.message;
    // serde: "unknown field `contnet`, expected one of `path`, `content`"
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default();
        let cands: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        let parent_path = ce.path.rsplit_once('.').map(|(p, _)| p).unwrap_or("");
        let parent_path = if ce.path == field { "" } else { parent_path };
        let parent_span = node.locate(parent_path);
        let parent = node_at(node, parent_path);
        let span = parent
            .and_then(|p| p.key_span(field))
            .unwrap_or(parent_span);
        let mut p = source.err(&span, format!("unknown key `{field}` in {what}"));
        p = match closest(field, cands.iter().copied()) {
            Some(c) => p.hint(format!("did you mean `{c}`?")),
            None if !cands.is_empty() => p.hint(format!("known keys: {}", cands.join(", "))),
            None => p,
        };
        return p;
    }
    let span = node.locate(&ce.path);
    let at = if ce.path.is_empty() {
        String::new()
    } else {
        format!(" at `{}`", ce.path)
    };
    let mut p = source.err(&span, format!("invalid value in {what}{at}: {msg}"));
    if msg.starts_with("missing field") {
        let f = msg.split('`').nth(1).unwrap_or_default();
        p = p.hint(format!("add `{f} = ...`"));
    } else if msg.starts_with("invalid type") {
        p = p.hint("check the value's type (string, number, boolean, list or table)");
    }
    p
}

impl Config {
    /// A provider's diagnostic about the `state = { ... }` table (from its
    /// `state_storage`), located at the attribute it names.
    pub fn state_problem(&self, d: &claw_provider::Diagnostic) -> Problem {
        let StateCfg::Provider { backend, node, .. } = &self.state else {
            return Problem::from_diag(d, None);
        };
        match &d.attr {
            Some(path) => {
                let ce = claw_provider::CheckError {
                    path: path.clone(),
                    message: d.summary.clone(),
                };
                let mut p = shape_problem(
                    &ce,
                    node,
                    &self.source(),
                    &format!("the {backend} state backend"),
                );
                if p.hint.is_none() {
                    p.hint = d.hint.clone();
                }
                p
            }
            None => Problem::from_diag(d, self.loc(&node.span)),
        }
    }
}

/// The attribute path (`data.token`, `mounts[0].source`) of the deepest
/// node under `node` whose span holds `span`; empty for `node` itself.
pub(super) fn path_to(node: &Node, span: &std::ops::Range<usize>) -> String {
    let holds = |n: &Node| n.span.start <= span.start && span.end <= n.span.end;
    let mut path = String::new();
    let mut cur = node;
    loop {
        let next = match &cur.kind {
            Kind::Table(t) => t.iter().find(|e| holds(&e.value)).map(|e| {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&e.key);
                &e.value
            }),
            Kind::Array(a) => a.iter().enumerate().find(|(_, n)| holds(n)).map(|(i, n)| {
                path.push_str(&format!("[{i}]"));
                n
            }),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return path,
        }
    }
}

fn node_at<'a>(node: &'a Node, path: &str) -> Option<&'a Node> {
    let mut cur = node;
    for seg in claw_provider::value::split_path(path) {
        cur = match (&cur.kind, seg) {
            (Kind::Table(t), claw_provider::value::PathSeg::Key(k)) => {
                &t.iter().find(|e| e.key == k)?.value
            }
            (Kind::Array(a), claw_provider::value::PathSeg::Index(i)) => a.get(i)?,
            _ => return None,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node;
    use std::path::Path;

    fn problem(src: &str, path: &str, message: &str) -> String {
        let root = node::parse(src).unwrap();
        let n = root.get("file").and_then(|f| f.get("a")).unwrap();
        let ce = claw_provider::CheckError {
            path: path.into(),
            message: message.into(),
        };
        let lines = crate::config::line_starts(src);
        let source = Source {
            path: Path::new("claw.toml"),
            src,
            lines: &lines,
        };
        shape_problem(&ce, n, &source, "file.a").to_string()
    }

    #[test]
    fn unknown_fields_point_at_the_key_with_a_suggestion() {
        let src = "[file.a]\npath = \"p\"\nmounts = [{ targte = \"/x\" }]\n";
        let e = problem(
            src,
            "mounts[0].targte",
            "unknown field `targte`, expected `target` or `source`",
        );
        assert!(e.contains("unknown key `targte` in file.a"), "{e}");
        assert!(e.contains("claw.toml:3:13"), "{e}");
        assert!(e.contains("did you mean `target`?"), "{e}");
    }

    #[test]
    fn wrong_values_point_at_the_value() {
        let src = "[file.a]\npath = \"p\"\nsensitive = \"yes\"\n";
        let e = problem(
            src,
            "sensitive",
            "invalid type: string \"yes\", expected a boolean",
        );
        assert!(
            e.contains("at `sensitive`") && e.contains("claw.toml:3:13"),
            "{e}"
        );
        assert!(e.contains("hint: check the value's type"), "{e}");
        let e = problem(src, "", "missing field `content`");
        assert!(e.contains("hint: add `content = ...`"), "{e}");
    }

    #[test]
    fn body_json_hides_secrets_and_shows_references() {
        let mut body = ExMap::new();
        body.insert(
            "s".to_string(),
            Ex::Val(Value::Secret(claw_provider::Secret::new("x", "salt"))),
        );
        body.insert("u".to_string(), Ex::Val(Value::Unknown));
        let j = body_json(&body);
        assert_eq!(j["s"], serde_json::json!({"env": "(sensitive)"}));
        assert_eq!(j["u"], "(known after apply)");
    }
}
