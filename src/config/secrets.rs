//! Secret references (`{ env = "NAME" }`, `{ file = "path" }`, either with
//! `optional = true`) and the values that are missing at evaluation, each
//! reported once with every place that uses it.

use super::node::{Entry, Node};
use super::shape::path_to;
use super::types::Source;
use crate::error::{closest, Problem};
use std::collections::BTreeMap;
use std::ops::Range;

/// How secrets and `${env.NAME}` are evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eval {
    /// `validate`, `graph`: no secret is read. Every secret is a placeholder,
    /// a `${env.NAME}` that is not set is unknown, and nothing is reported
    /// about missing values.
    Validate,
    /// `plan`, `apply`: every secret is read; a missing one is an error, once
    /// per variable or file, naming where it is used.
    Live,
}

/// What a placeholder secret holds in [`Eval::Validate`] (and in place of a
/// missing value, until the evaluation reports it).
pub const PLACEHOLDER: &str = "(no value: not read by this command)";

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin<'a> {
    Env(&'a str),
    File(&'a str),
}

/// A well-formed secret reference.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretRef<'a> {
    pub origin: Origin<'a>,
    /// The span of the variable name or path.
    pub span: Range<usize>,
    /// The span of `optional = true`, when given.
    pub optional: Option<Range<usize>>,
}

const KEYS: &[&str] = &["env", "file", "optional"];

/// Recognizes a secret reference: a table with a string `env` or `file`
/// whose other keys are `optional` or misspell one of those (an error). Any
/// other table is a plain table (`Ok(None)`).
pub fn secret_ref<'a>(
    t: &'a [Entry],
    source: &Source<'_>,
) -> Result<Option<SecretRef<'a>>, Problem> {
    let string = |k: &str| {
        t.iter()
            .find(|e| e.key == k)
            .and_then(|e| Some((e.value.as_str()?, e)))
    };
    let (env, file) = (string("env"), string("file"));
    if env.is_none() && file.is_none() {
        return Ok(None);
    }
    let mut optional = None;
    for e in t {
        match e.key.as_str() {
            "env" | "file" => {
                if e.value.as_str().is_none() {
                    return Err(source
                        .err(&e.value.span, format!("`{}` must be a string", e.key))
                        .hint(SHAPES));
                }
            }
            "optional" => match e.value.kind {
                super::node::Kind::Bool(true) => {
                    optional = Some(e.key_span.start..e.value.span.end)
                }
                super::node::Kind::Bool(false) => {}
                _ => {
                    return Err(source
                        .err(&e.value.span, "`optional` must be true or false")
                        .hint(SHAPES))
                }
            },
            k => match closest(k, KEYS.iter().copied()) {
                Some(c) => {
                    return Err(source
                        .err(
                            &e.key_span,
                            format!("unknown key `{k}` in a secret reference"),
                        )
                        .hint(format!("did you mean `{c}`? {SHAPES}")))
                }
                // A table that happens to have an `env` or `file` key.
                None => return Ok(None),
            },
        }
    }
    let (origin, span) = match (env, file) {
        (Some((n, e)), None) => (Origin::Env(n), e.value.span.clone()),
        (None, Some((p, e))) => (Origin::File(p), e.value.span.clone()),
        _ => {
            let span = t.first().map(|e| e.key_span.clone()).unwrap_or_default();
            return Err(source
                .err(
                    &span,
                    "a secret is read from `env` or from `file`, not both",
                )
                .hint(SHAPES));
        }
    };
    Ok(Some(SecretRef {
        origin,
        span,
        optional,
    }))
}

const SHAPES: &str =
    "secrets are written { env = \"NAME\" }, { file = \"path\" } or { env = \"NAME\", optional = true }";

/// `optional` where no entry can be left out: a whole attribute or a list item.
pub fn optional_not_here(span: &Range<usize>, source: &Source<'_>) -> Problem {
    source
        .err(span, "`optional = true` applies only to an entry of a table (it leaves the entry out); this secret is a whole value")
        .hint("remove `optional = true` (the value is then required), or use it inside a table attribute, e.g. env = { TOKEN = { env = \"TOKEN\", optional = true } }")
}

/// Who uses a value: an address or block, and the node its spans are in.
#[derive(Clone, Copy)]
pub struct Site<'a> {
    /// `file.a`, `k8s_secret.keys` (all instances of a for_each resource
    /// share their source), `[provider.k3s]`, `[vars] name`.
    pub label: &'a str,
    pub node: &'a Node,
}

/// Missing environment variables and unreadable secret files, each with
/// the places that use it.
#[derive(Default)]
pub struct Missing {
    /// Variable name → uses.
    env: BTreeMap<String, Vec<Use>>,
    /// File path → (the read error, uses).
    files: BTreeMap<String, (String, Vec<Use>)>,
}

#[derive(Clone, PartialEq)]
struct Use {
    label: String,
    span: Range<usize>,
}

impl Site<'_> {
    /// `file.a content`: the label and the attribute path holding `span`.
    pub fn describe(&self, span: &Range<usize>) -> String {
        let path = path_to(self.node, span);
        if path.is_empty() {
            self.label.to_string()
        } else {
            format!("{} {path}", self.label)
        }
    }
}

impl Missing {
    /// Adds `other`'s uses after this one's (the parts of a split evaluation, in order).
    pub fn merge(&mut self, other: Missing) {
        for (name, uses) in other.env {
            self.env.entry(name).or_default().extend(uses);
        }
        for (path, (error, uses)) in other.files {
            self.files
                .entry(path)
                .or_insert_with(|| (error, Vec::new()))
                .1
                .extend(uses);
        }
    }

    fn push(uses: &mut Vec<Use>, label: String, span: &Range<usize>) {
        uses.push(Use {
            label,
            span: span.clone(),
        });
    }

    /// An unset variable, used by `label` at `span`.
    pub fn env(&mut self, name: &str, label: String, span: &Range<usize>) {
        Missing::push(self.env.entry(name.to_string()).or_default(), label, span);
    }

    /// An unreadable file, used by `label` at `span`.
    pub fn file(&mut self, path: &str, error: String, label: String, span: &Range<usize>) {
        let e = self
            .files
            .entry(path.to_string())
            .or_insert((error, Vec::new()));
        Missing::push(&mut e.1, label, span);
    }

    /// One problem per variable and per file, in the order of first use.
    pub fn problems(self, source: &Source<'_>) -> Vec<Problem> {
        let mut out: Vec<(usize, Problem)> = Vec::new();
        for (name, uses) in self.env {
            let msg = format!(
                "environment variable `{name}` is not set; used by {}",
                list(&uses, source)
            );
            let hint = format!("export {name}=... before running claw; nothing was changed");
            out.push((first(&uses), Problem::new(msg).hint(hint)));
        }
        for (path, (error, uses)) in self.files {
            let msg = format!(
                "cannot read secret file {path}: {error}; used by {}",
                list(&uses, source)
            );
            let hint = "paths are relative to the folder of claw.toml; nothing was changed";
            out.push((first(&uses), Problem::new(msg).hint(hint)));
        }
        out.sort_by_key(|(start, _)| *start);
        out.into_iter().map(|(_, p)| p).collect()
    }
}

fn first(uses: &[Use]) -> usize {
    uses.iter().map(|u| u.span.start).min().unwrap_or(0)
}

/// `file.a content (claw.toml:4:11), k8s_secret.b data.token (claw.toml:9:3)`,
/// at most ten, then how many more.
fn list(uses: &[Use], source: &Source<'_>) -> String {
    const MAX: usize = 10;
    // The instances of a for_each resource share their source: one use.
    let mut uses: Vec<&Use> = uses.iter().collect();
    uses.sort_by(|a, b| (a.span.start, &a.label).cmp(&(b.span.start, &b.label)));
    uses.dedup();
    let mut parts: Vec<String> = uses
        .iter()
        .take(MAX)
        .map(|u| {
            let at = source
                .loc(&u.span)
                .map(|l| format!("{}:{}:{}", l.file, l.line, l.col))
                .unwrap_or_default();
            if u.label.is_empty() {
                at
            } else {
                format!("{} ({at})", u.label)
            }
        })
        .collect();
    if uses.len() > MAX {
        parts.push(format!("and {} more", uses.len() - MAX));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node;
    use std::path::Path;

    const SRC: &str = "a = { env = \"X\" }\nb = { file = \"p\", optional = true }\nc = { env = \"prod\", team = \"t\" }\nd = { env = \"X\", optinal = true }\ne = { env = 1 }\nf = { env = \"X\", file = \"p\" }\n";

    fn check(key: &str) -> Result<Option<(Origin<'static>, bool)>, String> {
        let root: &'static Node = Box::leak(Box::new(node::parse(SRC).unwrap()));
        let lines = crate::config::line_starts(SRC);
        let source = Source {
            path: Path::new("claw.toml"),
            src: SRC,
            lines: &lines,
        };
        let t = root.get(key).and_then(Node::as_table).unwrap();
        secret_ref(t, &source)
            .map(|r| r.map(|r| (r.origin, r.optional.is_some())))
            .map_err(|p| p.to_string())
    }

    #[test]
    fn recognizes_secret_references() {
        assert_eq!(check("a"), Ok(Some((Origin::Env("X"), false))));
        assert_eq!(check("b"), Ok(Some((Origin::File("p"), true))));
        assert_eq!(check("c"), Ok(None), "a plain table with an `env` key");
        let e = check("d").unwrap_err();
        assert!(
            e.contains("unknown key `optinal`")
                && e.contains("claw.toml:4:18")
                && e.contains("did you mean `optional`?"),
            "{e}"
        );
        assert_eq!(check("e"), Ok(None), "no string env or file: a plain table");
        assert!(check("f").unwrap_err().contains("not both"));
    }

    #[test]
    fn missing_values_are_one_problem_each_with_sorted_uses() {
        let src = "x\ny\nz\n";
        let lines = crate::config::line_starts(src);
        let source = Source {
            path: Path::new("c.toml"),
            src,
            lines: &lines,
        };
        let mut m = Missing::default();
        m.env("B", "file.b content".into(), &(4..5));
        m.env("A", "file.a content".into(), &(2..3));
        m.env("B", "file.a env.B".into(), &(0..1));
        m.env("B", "file.a env.B".into(), &(0..1));
        m.file(
            "k.txt",
            "No such file".into(),
            "file.k content".into(),
            &(2..3),
        );
        let p: Vec<String> = m
            .problems(&source)
            .iter()
            .map(|p| p.message.clone())
            .collect();
        assert_eq!(
            p,
            [
                "environment variable `B` is not set; used by file.a env.B (c.toml:1:1), file.b content (c.toml:3:1)",
                "environment variable `A` is not set; used by file.a content (c.toml:2:1)",
                "cannot read secret file k.txt: No such file; used by file.k content (c.toml:2:1)",
            ]
        );
        let mut m = Missing::default();
        for i in 0..12 {
            m.env("M", format!("file.f{i} content"), &(i..i + 1));
        }
        let p = &m.problems(&source)[0];
        assert!(p.message.ends_with(", and 2 more"), "{}", p.message);
    }
}
